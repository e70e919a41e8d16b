"""`flusso run` as a real process against Postgres and the embedded OpenSearch (or the
recording stub), for the sinks spec §10 cases that only hold end to end: prefix override
(2, 3), schema rotation (7, 8), shard settings and an orphan-skipping reindex (9, 22),
restart (10, 27), `--skip-backfill` (11), a kill mid backfill (12), two sinks (13, 25), a
slow online rebuild (16–18, 23, 26), throttling and rejections (38, 40–42), status and
metrics (44), SIGTERM (46) and the lock (48). docs/acceptance.md maps every case.

Slow cluster moments are made with `HoldingProxy`: a loopback proxy in front of the
embedded server that can hold chosen `/_bulk` requests until released.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import psycopg
import pytest
from aiohttp import web
from devstack.postgres import free_port
from tests.conftest import unique_name

from flusso.adapters.journal.sqlite import SqliteJournal
from opensearch_fixtures import Recorded, StubOpenSearch

SCHEMA = """\
version: 1
table: users
primary_key: id
fields:
  - integer: id
    required: true
  - keyword: email
    required: false
"""

PRIMARY = """\
[sinks.primary]
type = "opensearch"
url = { env = "TEST_OS_URL" }
number_of_replicas = 0
"""

AUDIT = """\
[sinks.audit]
type = "stdout"
"""

INDEX = """\
[[index]]
name = "users"
schema = "users.schema.yml"
enabled = true
"""

ADMIN_PASSWORD = "s3cret"
SIGKILL_EXIT = -signal.SIGKILL


def config(*, top: str = "", primary_extra: str = "", audit: bool = False) -> str:
    parts = [top, '[source]\ntype = "postgres"\n', PRIMARY + primary_extra]
    if audit:
        parts.append(AUDIT)
    parts.append(INDEX)
    return "\n".join(part for part in parts if part)


# -- the process ------------------------------------------------------------------------


class Flusso:
    """One deployment: fixed slot, publication, journal and prefix; fresh ports per start."""

    def __init__(self, workdir: Path, pg_url: str, os_url: str, *, prefix: str | None) -> None:
        slot = unique_name("acc")
        self.workdir = workdir
        self.journal = workdir / "journal.sqlite3"
        self.base_env = {
            **os.environ,
            "DATABASE_URL": pg_url,
            "TEST_OS_URL": os_url,
            "FLUSSO_SLOT": slot,
            "FLUSSO_PUBLICATION": slot,
            "FLUSSO_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "FLUSSO_LAG_POLL_SECS": "1",
            "FLUSSO_JOURNAL": str(self.journal),
            "FLUSSO_LOG": "info",
        }
        if prefix is not None:
            self.base_env["FLUSSO_INDEX_PREFIX"] = prefix
        self.proc: asyncio.subprocess.Process | None = None
        self.stderr: list[str] = []
        self.stdout: list[str] = []
        self._readers: list[asyncio.Task[None]] = []

    async def start(self, *args: str) -> None:
        self.public = f"127.0.0.1:{free_port()}"
        self.private = f"127.0.0.1:{free_port()}"
        self.env = {
            **self.base_env,
            "FLUSSO_PUBLIC_ADDRESS": self.public,
            "FLUSSO_PRIVATE_ADDRESS": self.private,
        }
        self.stderr, self.stdout = [], []
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "flusso", "run", *args,
            cwd=self.workdir, env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self._readers = [
            asyncio.create_task(_drain(self.proc.stdout, self.stdout)),
            asyncio.create_task(_drain(self.proc.stderr, self.stderr)),
        ]

    @property
    def log(self) -> str:
        return "".join(self.stderr)

    @property
    def envelopes(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout]

    async def get(self, path: str, *, private: bool = False) -> httpx.Response:
        address = self.private if private else self.public
        auth = ("admin", ADMIN_PASSWORD) if private else None
        async with httpx.AsyncClient(timeout=5) as client:
            return await client.get(f"http://{address}{path}", auth=auth)

    async def post(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient(timeout=5) as client:
            return await client.post(f"http://{self.private}{path}", auth=("admin", ADMIN_PASSWORD))

    async def status(self) -> dict[str, Any]:
        return (await self.get("/status")).json()

    async def metrics(self) -> list[str]:
        return (await self.get("/metrics")).text.splitlines()

    async def wait_live(self, timeout: float = 60) -> dict[str, Any]:
        async def live() -> dict[str, Any] | None:
            self._check_running()
            try:
                status = await self.status()
            except httpx.HTTPError:
                return None
            done = status["phase"] == "live" and status["changes_in_flight"] == 0
            return status if done else None

        return await eventually(live, timeout, "the server to go live")

    async def wait_log(self, text: str, timeout: float = 30) -> None:
        async def logged() -> bool:
            return text in self.log

        await eventually(logged, timeout, f"log line {text!r}")

    def _check_running(self) -> None:
        assert self.proc is not None
        if self.proc.returncode is not None:
            raise AssertionError(f"flusso exited with {self.proc.returncode}:\n{self.log[-4000:]}")

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    async def wait(self, timeout: float = 30) -> int:
        assert self.proc is not None
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise
        await asyncio.gather(*self._readers)
        return code

    async def stop(self) -> int:
        self.signal(signal.SIGTERM)
        return await self.wait()

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.wait()

    async def cli(self, *args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "flusso", *args,
            "--server", self.private, "--admin-password", ADMIN_PASSWORD,
            env=self.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()


async def _drain(stream: asyncio.StreamReader | None, into: list[str]) -> None:
    assert stream is not None
    async for line in stream:
        into.append(line.decode())


async def eventually(probe: Callable[[], Awaitable[Any]], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


# -- the cluster, read back directly ------------------------------------------------------


class Cluster:
    """Reads the embedded server (never through flusso)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.AsyncClient(base_url=url, timeout=10)

    async def indices(self, pattern: str) -> list[str]:
        reply = await self.http.get(
            f"/_cat/indices/{pattern}", params={"h": "index", "format": "json"}
        )
        return [] if reply.status_code == 404 else sorted(row["index"] for row in reply.json())

    async def holders(self, alias: str) -> list[str]:
        reply = await self.http.get(f"/_alias/{alias}")
        return [] if reply.status_code == 404 else sorted(reply.json())

    async def meta(self, prefix: str, hash_alias: str) -> dict[str, Any] | None:
        reply = await self.http.get(f"/{prefix}flusso_meta/_doc/{hash_alias}")
        return reply.json().get("_source") if reply.status_code == 200 else None

    async def settings(self, index: str) -> dict[str, Any]:
        return (await self.http.get(f"/{index}/_settings")).json()[index]["settings"]["index"]

    async def mapping(self, index: str) -> dict[str, Any]:
        return (await self.http.get(f"/{index}/_mapping")).json()[index]["mappings"]

    async def documents(self, name: str) -> dict[str, dict[str, Any]]:
        await self.http.post(f"/{name}/_refresh")
        reply = await self.http.post(f"/{name}/_search", json={"size": 1000})
        if reply.status_code == 404:
            return {}
        return {hit["_id"]: hit["_source"] for hit in reply.json()["hits"]["hits"]}

    async def count(self, name: str) -> int:
        await self.http.post(f"/{name}/_refresh")
        return (await self.http.get(f"/{name}/_count")).json()["count"]

    async def hash_alias(self, prefix: str, logical: str = "users") -> str:
        """The one hash alias of `logical` under `prefix`, read off its generation names."""
        pattern = re.compile(rf"^({re.escape(prefix)}{logical}_[0-9a-f]{{8}})_\d+$")
        found = {
            m.group(1)
            for n in await self.indices(f"{prefix}{logical}_*")
            if (m := pattern.match(n))
        }
        assert len(found) == 1, found
        return found.pop()

    async def close(self) -> None:
        await self.http.aclose()


# -- a proxy that can hold bulk requests ------------------------------------------------------


class HoldingProxy:
    """Forwards every request to `upstream`; while holding, `/_bulk` requests whose target
    indexes satisfy the predicate wait until `release()`. A held request whose client has
    gone away by then is dropped, as if it never reached the cluster."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.url = ""
        self.waiting = 0
        self.dropped = 0
        self._predicate: Callable[[set[str]], bool] | None = None
        self._gate = asyncio.Event()
        self._gate.set()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def hold(self, predicate: Callable[[set[str]], bool] = lambda _indexes: True) -> None:
        self._predicate = predicate
        self._gate.clear()

    def release(self) -> None:
        self._predicate = None
        self._gate.set()

    async def wait_holding(self, timeout: float = 30) -> None:
        async def holding() -> bool:
            return self.waiting > 0

        await eventually(holding, timeout, "a held bulk request")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        predicate = self._predicate
        if request.path == "/_bulk" and predicate is not None:
            recorded = Recorded(request.method, request.path_qs, body.decode(), "")
            indexes = {action[op]["_index"] for action in recorded.bulk_actions for op in action}
            if predicate(indexes):
                self.waiting += 1
                try:
                    await self._gate.wait()
                finally:
                    self.waiting -= 1
                if request.transport is None or request.transport.is_closing():
                    self.dropped += 1
                    return web.Response(status=499)
        assert self._session is not None
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("content-type", "authorization")
        }
        async with self._session.request(
            request.method, self.upstream + request.path_qs, data=body, headers=headers
        ) as reply:
            payload = await reply.read()
            kept = {k: v for k, v in reply.headers.items() if k.lower() == "content-type"}
            return web.Response(body=payload, status=reply.status, headers=kept)

    async def start(self) -> HoldingProxy:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def stop(self) -> None:
        self.release()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()


# -- fixtures -------------------------------------------------------------------------------


def execute(pg_url: str, *statements: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement.encode())


@pytest.fixture
def workdir(tmp_path: Path, pg_url: str) -> Path:
    (tmp_path / "users.schema.yml").write_text(SCHEMA)
    execute(
        pg_url,
        "CREATE TABLE users (id int PRIMARY KEY, email text)",
        "INSERT INTO users VALUES (1, 'a@x.io'), (2, 'b@x.io'), (3, 'c@x.io')",
    )
    return tmp_path


@pytest.fixture
async def cluster(embedded_opensearch):
    reader = Cluster(embedded_opensearch.url)
    try:
        yield reader
    finally:
        await reader.close()


@pytest.fixture
async def proxy(embedded_opensearch):
    holding = await HoldingProxy(embedded_opensearch.url).start()
    try:
        yield holding
    finally:
        await holding.stop()


@pytest.fixture
async def processes():
    """Every Flusso a test creates is killed at the end, whatever happened."""
    started: list[Flusso] = []
    yield started
    for flusso in started:
        await flusso.kill()


def prefix() -> str:
    return f"{unique_name('acc')}_"


# -- cases 1, 2, 9, 10, 27, 44 ----------------------------------------------------------------


async def test_prefix_flag_names_everything_then_a_restart_skips_backfill_and_reindex_applies_new_shards(
    workdir, pg_url, embedded_opensearch, cluster, processes
):
    dev = prefix()
    staging = prefix()
    (workdir / "flusso.toml").write_text(config(top=f'prefix = "{staging}"\n'))
    flusso = Flusso(workdir, pg_url, embedded_opensearch.url, prefix=None)
    processes.append(flusso)

    await flusso.start("--index-prefix", dev)
    await flusso.wait_live()
    execute(
        pg_url,
        "UPDATE users SET email = 'a2@x.io' WHERE id = 1",
        "UPDATE users SET email = 'b2@x.io' WHERE id = 2",
    )

    async def five_committed() -> dict[str, Any] | None:
        status = await flusso.status()
        done = status["changes_committed"] == 5 and status["slot_lag_bytes"] is not None
        return status if done else None

    status = await eventually(five_committed, 30, "five committed changes")
    scrape = await flusso.metrics()

    # Case 44.
    assert status["phase"] == "live" and status["indexes"] == {"users": "seeded"}
    assert (status["changes_captured"], status["changes_committed"]) == (5, 5)
    assert (status["changes_in_flight"], status["documents_built"]) == (0, 5)
    assert status["batches"] >= 2 and isinstance(status["slot_lag_bytes"], int)
    assert (status["errors"], status["last_error"]) == (0, None)
    for line in (
        "flusso_changes_captured_total 5.0",
        'flusso_documents_built_total{index="users"} 5.0',
        "flusso_indexes 1.0",
        'flusso_indexes_seeded_total{index="users"} 1.0',
        "flusso_changes_in_flight 0.0",
    ):
        assert line in scrape, line
    assert any(line.startswith("flusso_flush_duration_seconds_bucket{") for line in scrape)
    assert not any("_created" in line for line in scrape)

    # Cases 1 and 2: the flag's prefix roots every name; the config's is never used.
    alias = await cluster.hash_alias(dev)
    gen1 = f"{alias}_1"
    assert await cluster.indices(f"{dev}users_*") == [gen1]
    assert await cluster.holders(alias) == [gen1]
    assert await cluster.holders(f"{dev}users") == [gen1]
    assert await cluster.indices(f"{dev}flusso_meta") == [f"{dev}flusso_meta"]
    assert await cluster.meta(dev, alias) == {"active_generation": 1, "seeded": True}
    assert (await cluster.settings(gen1))["refresh_interval"] == "10s"
    assert (await cluster.mapping(gen1))["dynamic"] == "strict"
    assert await cluster.indices(f"{staging}*") == []
    assert (await cluster.documents(f"{dev}users"))["2"] == {"id": 2, "email": "b2@x.io"}
    assert await flusso.stop() == 0

    # Case 9 (first half) and case 10: only the shard count changed, so the hash did not;
    # the restart reuses generation 1 without a backfill. Case 27: the journal is gone.
    (workdir / "flusso.toml").write_text(
        config(top=f'prefix = "{staging}"\n', primary_extra="number_of_shards = 2\n")
    )
    for leftover in workdir.glob("journal.sqlite3*"):
        leftover.unlink()
    await flusso.start("--index-prefix", dev)
    status = await flusso.wait_live()
    assert status["indexes"] == {"users": "seeded"}
    assert "no unseeded indexes; skipping backfill" in flusso.log
    assert "seeding indexes" not in flusso.log
    assert 'flusso_indexes_seeded_total{index="users"} 1.0' not in await flusso.metrics()
    assert await cluster.indices(f"{dev}users_*") == [gen1]
    assert (await cluster.settings(gen1))["number_of_shards"] == "1"
    detail = (await flusso.get("/indexes?detail=true", private=True)).json()
    primary = detail["users"]["sinks"]["primary"]
    assert (primary["lifecycle"], primary["hash_alias"]) == ("serving", alias)
    assert (primary["serving_generation"], primary["target_generation"]) == (1, None)

    # Case 9 (second half): the rebuild's new generation takes the new shard count.
    # Case 22: an unaliased orphan generation 3 is skipped over (target 4) and dropped.
    assert (await cluster.http.put(f"/{alias}_3")).status_code == 200
    code, out, err = await flusso.cli("reindex", "users", "--wait")
    assert code == 0, err
    assert "reindex of users queued" in out
    assert await cluster.indices(f"{dev}users_*") == [f"{alias}_4"]
    assert (await cluster.settings(f"{alias}_4"))["number_of_shards"] == "2"
    assert await cluster.holders(f"{dev}users") == [f"{alias}_4"]
    assert await cluster.meta(dev, alias) == {"active_generation": 4, "seeded": True}
    assert await flusso.stop() == 0

    journal = SqliteJournal.open(str(flusso.journal))
    try:
        kinds = [str(r.event) for r in await journal.events("primary", alias)]
    finally:
        await journal.close()
    assert kinds[0] == "reconciled"  # case 27: rebuilt from the sink's facts
    assert kinds[-1] == "seeded"


# -- case 3 -----------------------------------------------------------------------------------


async def test_an_invalid_prefix_flag_exits_before_binding_or_calling_the_cluster(
    tmp_path, stub_opensearch: StubOpenSearch
):
    (tmp_path / "users.schema.yml").write_text(SCHEMA)
    (tmp_path / "flusso.toml").write_text(config())
    public = f"127.0.0.1:{free_port()}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flusso", "run", "--index-prefix", "Dev_",
        cwd=tmp_path,
        env={**os.environ, "DATABASE_URL": "postgresql://x@127.0.0.1:1/x",
             "TEST_OS_URL": stub_opensearch.url, "FLUSSO_PUBLIC_ADDRESS": public,
             "FLUSSO_PRIVATE_ADDRESS": f"127.0.0.1:{free_port()}",
             "FLUSSO_JOURNAL": str(tmp_path / "journal.sqlite3")},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    stderr = err.decode()
    assert proc.returncode == 1, stderr
    assert 'Error: invalid index prefix: index prefix "Dev_"' in stderr
    assert "HTTP surface listening" not in stderr
    assert "Traceback" not in stderr
    assert stub_opensearch.requests == []


# -- case 11 ----------------------------------------------------------------------------------


async def test_skip_backfill_on_a_fresh_cluster_creates_an_unseeded_generation_and_follows_live(
    workdir, pg_url, embedded_opensearch, cluster, processes
):
    (workdir / "flusso.toml").write_text(config())
    name = prefix()
    flusso = Flusso(workdir, pg_url, embedded_opensearch.url, prefix=name)
    processes.append(flusso)
    await flusso.start("--skip-backfill")
    await flusso.wait_live()
    assert "skipping backfill (skip_backfill set)" in flusso.log
    assert (await flusso.get("/indexes", private=True)).json() == {"users": "seeded"}

    alias = await cluster.hash_alias(name)
    gen1 = f"{alias}_1"
    assert await cluster.holders(alias) == [gen1]
    assert await cluster.holders(f"{name}users") == [gen1]
    assert await cluster.meta(name, alias) == {"active_generation": 1, "seeded": False}
    assert (await cluster.settings(gen1))["refresh_interval"] == "-1"

    execute(pg_url, "INSERT INTO users VALUES (4, 'd@x.io')")

    async def only_the_live_row() -> bool:
        return await cluster.documents(alias) == {"4": {"id": 4, "email": "d@x.io"}}

    await eventually(only_the_live_row, 30, "the live row without the backfill")
    assert await flusso.stop() == 0


# -- cases 12 and 46 --------------------------------------------------------------------------


async def test_a_kill_mid_backfill_reuses_generation_one_and_sigterm_drains_the_open_batch(
    workdir, pg_url, cluster, proxy, processes
):
    (workdir / "flusso.toml").write_text(config())
    name = prefix()
    flusso = Flusso(workdir, pg_url, proxy.url, prefix=name)
    processes.append(flusso)

    # Case 12: the initial backfill's bulk never lands; the process is killed meanwhile.
    proxy.hold()
    await flusso.start()
    await proxy.wait_holding()
    await flusso.kill()
    assert flusso.proc is not None and flusso.proc.returncode == SIGKILL_EXIT
    proxy.release()
    alias = await cluster.hash_alias(name)
    assert await cluster.meta(name, alias) == {"active_generation": 1, "seeded": False}

    await flusso.start()
    await flusso.wait_live()
    assert "seeding indexes" in flusso.log
    assert await cluster.indices(f"{name}users_*") == [f"{alias}_1"]
    assert await cluster.meta(name, alias) == {"active_generation": 1, "seeded": True}
    assert set(await cluster.documents(alias)) == {"1", "2", "3"}

    # Case 46: SIGTERM while a batch is being flushed; the batch lands and is confirmed.
    proxy.hold()
    execute(pg_url, "UPDATE users SET email = 'drained@x.io' WHERE id = 1")
    await proxy.wait_holding()
    flusso.signal(signal.SIGTERM)
    await flusso.wait_log("shutdown requested; stopping pipeline")
    proxy.release()
    assert await flusso.wait() == 0
    assert (await cluster.documents(alias))["1"]["email"] == "drained@x.io"
    with pytest.raises(httpx.ConnectError):
        await flusso.get("/healthz")

    await flusso.start()
    await flusso.wait_live()
    await asyncio.sleep(1.5)  # one more feedback round: nothing may be redelivered
    assert (await flusso.status())["changes_captured"] == 0

    # A second SIGTERM while the flush is stalled exits at once with 143, unconfirmed.
    dropped = proxy.dropped
    proxy.hold()
    execute(pg_url, "UPDATE users SET email = 'abandoned@x.io' WHERE id = 2")
    await proxy.wait_holding()
    flusso.signal(signal.SIGTERM)
    await flusso.wait_log("shutdown requested; stopping pipeline")
    flusso.signal(signal.SIGTERM)
    assert await flusso.wait(timeout=10) == 143
    proxy.release()
    await eventually(lambda: _true(proxy.dropped == dropped + 1), 10, "the abandoned bulk dropped")
    assert (await cluster.documents(alias))["2"]["email"] == "b@x.io"

    await flusso.start()
    await flusso.wait_live()

    async def redelivered() -> bool:
        return (await cluster.documents(alias))["2"]["email"] == "abandoned@x.io"

    await eventually(redelivered, 30, "the unconfirmed change to be redelivered")
    assert (await flusso.status())["changes_captured"] >= 1
    assert await flusso.stop() == 0


async def _true(value: bool) -> bool:
    return value


# -- cases 13, 25 and 48 ----------------------------------------------------------------------


async def test_with_a_stdout_audit_sink_every_start_reseeds_and_reindex_still_rebuilds(
    workdir, pg_url, embedded_opensearch, cluster, processes
):
    (workdir / "flusso.toml").write_text(config(audit=True))
    (workdir / "flusso.lock").write_text("stale\n")
    name = prefix()
    flusso = Flusso(workdir, pg_url, embedded_opensearch.url, prefix=name)
    processes.append(flusso)

    await flusso.start()
    await flusso.wait_live()
    assert "seeding indexes" in flusso.log
    assert sorted(e["id"] for e in flusso.envelopes if e["op"] == "upsert") == ["1", "2", "3"]
    # Case 48: with flusso.toml present the lock is compiled and rewritten.
    lock = (workdir / "flusso.lock").read_bytes()
    assert json.loads(lock)["config"]["indexes"][0]["name"] == "users"

    # Case 25 (D1): the rebuild happens in the OpenSearch sink despite the fan-out.
    alias = await cluster.hash_alias(name)
    code, out, err = await flusso.cli("reindex", "users", "--wait")
    assert code == 0, err
    assert await cluster.indices(f"{name}users_*") == [f"{alias}_2"]
    assert await cluster.holders(f"{name}users") == [f"{alias}_2"]
    assert set(await cluster.documents(alias)) == {"1", "2", "3"}
    assert await flusso.stop() == 0

    # Case 13: stdout never answers seeded, so the next start seeds again.
    # Case 48: `--locked` runs the lock as is, whatever flusso.toml now says.
    (workdir / "flusso.toml").write_text(config(audit=True, primary_extra="number_of_shards = 3\n"))
    await flusso.start("--locked")
    await flusso.wait_live()
    assert "seeding indexes" in flusso.log
    assert sorted(e["id"] for e in flusso.envelopes if e["op"] == "upsert") == ["1", "2", "3"]
    assert [e["seq"] for e in flusso.envelopes][:1] == [1]
    assert await flusso.stop() == 0
    assert (workdir / "flusso.lock").read_bytes() == lock
    assert await cluster.indices(f"{name}users_*") == [f"{alias}_2"]


# -- cases 16, 17, 18, 23 and 26 --------------------------------------------------------------


async def test_during_a_slow_online_rebuild_reads_stay_put_live_sync_continues_and_the_swap_is_fresh(
    workdir, pg_url, cluster, proxy, processes
):
    (workdir / "flusso.toml").write_text(config())
    name = prefix()
    flusso = Flusso(workdir, pg_url, proxy.url, prefix=name)
    processes.append(flusso)
    await flusso.start()
    await flusso.wait_live()
    alias = await cluster.hash_alias(name)
    gen1, gen2 = f"{alias}_1", f"{alias}_2"
    # Case 18: a document whose row does not exist.
    reply = await cluster.http.put(
        f"/{gen1}/_doc/999", params={"refresh": "true"}, json={"id": 999, "email": "ghost@x.io"}
    )
    assert reply.status_code in (200, 201), reply.text

    # Hold only the rebuild's own backfill bulk (it targets generation 2 alone).
    proxy.hold(lambda indexes: indexes == {gen2})
    queued = await flusso.post("/reindex?index=users")
    assert (queued.status_code, queued.text) == (202, "reindex of users queued\n")
    await proxy.wait_holding()
    uptime = (await flusso.status())["uptime_seconds"]

    # Case 16: reads stay on generation 1; generation 2 exists, unaliased.
    assert await cluster.holders(alias) == [gen1]
    assert await cluster.indices(f"{alias}_*") == [gen1, gen2]
    assert await cluster.count(alias) == 4
    assert (await flusso.get("/indexes", private=True)).json() == {"users": "backfilling"}
    detail = (await flusso.get("/indexes?detail=true", private=True)).json()
    primary = detail["users"]["sinks"]["primary"]
    assert (primary["lifecycle"], primary["serving_generation"], primary["target_generation"]) == (
        "reindexing", 1, 2,
    )  # fmt: skip
    # Case 23 (D2).
    again = await flusso.post("/reindex?index=users")
    assert (again.status_code, again.text) == (409, "reindex of users already in progress\n")

    # Case 17: changes during the rebuild keep flowing to the served generation (no pause).
    execute(
        pg_url,
        "INSERT INTO users VALUES (501, 'new@x.io')",
        "UPDATE users SET email = 'a2@x.io' WHERE id = 1",
        "DELETE FROM users WHERE id = 2",
    )

    async def served_live() -> bool:
        docs = await cluster.documents(alias)
        return "501" in docs and docs["1"]["email"] == "a2@x.io" and "2" not in docs

    await eventually(served_live, 30, "live changes through generation 1 during the rebuild")

    # Case 26, adapted: no restart, so readiness never flaps and the phase stays live.
    await asyncio.sleep(1.1)
    status = await flusso.status()
    assert (status["phase"], status["indexes"]) == ("live", {"users": "backfilling"})
    assert status["uptime_seconds"] > uptime
    assert (await flusso.get("/readyz")).status_code == 200
    assert (await flusso.get("/healthz")).status_code == 200

    proxy.release()

    async def swapped() -> bool:
        listed = (await flusso.get("/indexes", private=True)).json()
        return listed == {"users": "seeded"} and await cluster.holders(alias) == [gen2]

    await eventually(swapped, 30, "the swap to generation 2")
    assert await cluster.indices(f"{alias}_*") == [gen2]
    assert await cluster.holders(f"{name}users") == [gen2]
    assert await cluster.documents(alias) == {
        "1": {"id": 1, "email": "a2@x.io"},
        "3": {"id": 3, "email": "c@x.io"},
        "501": {"id": 501, "email": "new@x.io"},
    }
    assert (await flusso.wait_live())["changes_in_flight"] == 0
    assert await flusso.stop() == 0


# -- cases 7 and 8 ----------------------------------------------------------------------------


async def test_a_schema_change_seeds_a_new_hash_behind_the_old_name_and_a_revert_rebuilds_the_old_hash(
    workdir, pg_url, cluster, proxy, processes
):
    execute(pg_url, "ALTER TABLE users ADD COLUMN name text")
    (workdir / "flusso.toml").write_text(config())
    name = prefix()
    bare = f"{name}users"
    flusso = Flusso(workdir, pg_url, proxy.url, prefix=name)
    processes.append(flusso)
    await flusso.start()
    await flusso.wait_live()
    h = await cluster.hash_alias(name)
    assert await flusso.stop() == 0

    # Case 7: a structural change (hash K). While K seeds, the bare name stays on H (D5).
    (workdir / "users.schema.yml").write_text(SCHEMA + "  - keyword: name\n    required: false\n")
    proxy.hold()
    await flusso.start()
    await proxy.wait_holding()
    k = next(a for a in {n.rsplit("_", 1)[0] for n in await cluster.indices(f"{bare}_*")} if a != h)
    assert await cluster.holders(k) == [f"{k}_1"]
    assert await cluster.holders(bare) == [f"{h}_1"]
    assert await cluster.meta(name, h) == {"active_generation": 2, "seeded": False}  # D11
    proxy.release()
    await flusso.wait_live()
    assert await cluster.holders(bare) == [f"{k}_1"]
    assert await cluster.meta(name, k) == {"active_generation": 1, "seeded": True}
    assert await cluster.indices(f"{h}_*") == [f"{h}_1"]
    assert await cluster.holders(h) == [f"{h}_1"]  # the old hash is left as it was

    # Case 8: changes while K serves, then the schema is reverted: H is rebuilt into
    # generation 2 behind generation 1, which serves until the swap.
    execute(
        pg_url,
        "UPDATE users SET email = 'b2@x.io' WHERE id = 2",
        "DELETE FROM users WHERE id = 3",
    )

    async def applied() -> bool:
        docs = await cluster.documents(k)
        return docs.get("2", {}).get("email") == "b2@x.io" and "3" not in docs

    await eventually(applied, 30, "the changes in hash K")
    assert await flusso.stop() == 0
    (workdir / "users.schema.yml").write_text(SCHEMA)
    proxy.hold()
    await flusso.start()
    await proxy.wait_holding()
    assert await cluster.holders(h) == [f"{h}_1"]
    assert await cluster.indices(f"{h}_*") == [f"{h}_1", f"{h}_2"]
    assert set(await cluster.documents(h)) == {"1", "2", "3"}  # stale, but still served
    proxy.release()
    await flusso.wait_live()
    assert await cluster.indices(f"{h}_*") == [f"{h}_2"]
    assert await cluster.holders(bare) == [f"{h}_2"]
    assert await cluster.meta(name, h) == {"active_generation": 2, "seeded": True}
    assert await cluster.documents(h) == {
        "1": {"id": 1, "email": "a@x.io"},
        "2": {"id": 2, "email": "b2@x.io"},
    }
    assert await flusso.stop() == 0


# -- cases 38, 40, 41 and 42, against the recording stub --------------------------------------


def reject_42(actions: list[dict[str, Any]]) -> tuple[int, Any]:
    """Every action succeeds except the one for document 42, refused with a 400."""
    items = []
    for action in actions:
        (op,) = action
        item: dict[str, Any] = {**action[op], "status": 201}
        if action[op]["_id"] == "42":
            item.update(status=400, error={"type": "mapper_parsing_exception", "reason": "bad 42"})
        items.append({op: item})
    return 200, {
        "took": 1,
        "errors": any(i[next(iter(i))]["status"] >= 400 for i in items),
        "items": items,
    }


def bulk_ids(stub: StubOpenSearch) -> list[str]:
    return [a[op]["_id"] for r in stub.bulk_requests for a in r.bulk_actions for op in a]


@pytest.fixture
def stub_workdir(workdir, pg_url) -> Path:
    execute(pg_url, "INSERT INTO users VALUES (42, 'bad@x.io')")
    return workdir


async def test_skip_quarantines_a_refused_document_and_a_throttled_cluster_stops_the_run_unconfirmed(
    stub_workdir, pg_url, stub_opensearch: StubOpenSearch, processes
):
    (stub_workdir / "flusso.toml").write_text(config(top='on_error = "skip"\n'))
    flusso = Flusso(stub_workdir, pg_url, stub_opensearch.url, prefix=prefix())
    processes.append(flusso)
    stub_opensearch.bulk_default = reject_42

    # Case 41: the refused document is quarantined and the run goes on.
    await flusso.start()
    status = await flusso.wait_live()
    assert status["documents_quarantined"] == 1
    assert 'flusso_documents_quarantined_total{index="users"} 1.0' in await flusso.metrics()
    assert "document rejected by sink; quarantining and continuing" in flusso.log
    execute(pg_url, "INSERT INTO users VALUES (5, 'e@x.io')")
    await eventually(lambda: _true("5" in bulk_ids(stub_opensearch)), 30, "a later change")

    # Case 38: 429 on every attempt → four attempts, then the run stops with exit 1.
    stub_opensearch.bulk_default = lambda actions: (429, {"error": "slow down"})
    before = len(stub_opensearch.bulk_requests)
    execute(pg_url, "UPDATE users SET email = 'retried@x.io' WHERE id = 1")
    assert await flusso.wait() == 1
    assert len(stub_opensearch.bulk_requests) - before == 4
    assert "bulk request failed: HTTP 429" in flusso.log
    assert flusso.log.count("retrying OpenSearch bulk request") == 3

    # The change was never confirmed, so the next start gets it again (no backfill here).
    stub_opensearch.bulk_default = reject_42
    before = len(stub_opensearch.bulk_requests)
    await flusso.start("--skip-backfill")
    status = await flusso.wait_live()
    assert status["changes_captured"] >= 1
    resent = [r for r in stub_opensearch.bulk_requests[before:] if "retried@x.io" in r.body]
    assert resent, bulk_ids(stub_opensearch)[-5:]
    assert await flusso.stop() == 0


@pytest.mark.parametrize(
    ("top", "index_extra", "restart"),
    [("", "", True), ('on_error = "skip"\n', 'on_error = "stop"\n', False)],
    ids=["case-40-stop", "case-42-index-override"],
)
async def test_a_stop_policy_rejection_exits_1_and_a_restart_is_refused_again(
    stub_workdir, pg_url, stub_opensearch: StubOpenSearch, top, index_extra, restart, processes
):
    toml = config(top=top).replace("enabled = true\n", f"enabled = true\n{index_extra}")
    (stub_workdir / "flusso.toml").write_text(toml)
    flusso = Flusso(stub_workdir, pg_url, stub_opensearch.url, prefix=prefix())
    processes.append(flusso)
    stub_opensearch.bulk_default = reject_42
    for _ in range(2 if restart else 1):
        await flusso.start()
        assert await flusso.wait() == 1, flusso.log[-2000:]
        assert "sink rejected 1 document(s) (e.g. users/42: " in flusso.log
        assert "set on-error=skip" in flusso.log
        assert "Traceback" not in flusso.log
    # Each start sent 42 next to the documents it accepted.
    assert sorted(bulk_ids(stub_opensearch)) == sorted(
        ["1", "2", "3", "42"] * (2 if restart else 1)
    )
