"""The fault harness: a throwaway Postgres with the demo store, osmem-server behind a proxy,
`flusso run` as a supervised subprocess, a live write workload, a watcher on the HTTP
surfaces, and the full comparison of every document against what the database implies.

Each scenario gets its own Postgres cluster and sink, so restarting or breaking them
touches nothing else running in parallel.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from devstack.opensearch import EmbeddedOpenSearch
from devstack.postgres import ThrowawayPostgres, free_port
from devstack.store import load_store
from tests.faults.proxy import SinkProxy

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "examples" / "schemas"
INDEXES = ("orders", "products", "users")
CHILD_TABLES = ("profiles", "addresses", "orders", "order_items", "reviews", "product_tags")

CONFIG = """\
on_error = "stop"

[source]
type = "postgres"
manage_publication = true

[sinks.primary]
type = "opensearch"
url = {{ env = "FAULT_SINK_URL" }}
number_of_replicas = 0
refresh_interval = "1s"
batch_size = 500

[[index]]
name = "users"
schema = "schemas/users.schema.yml"
enabled = true
on_error = "{users}"

[[index]]
name = "products"
schema = "schemas/products.schema.yml"
enabled = true
on_error = "{products}"

[[index]]
name = "orders"
schema = "schemas/orders.schema.yml"
enabled = true
on_error = "{orders}"
"""


def _log(text: str) -> None:
    sys.stderr.write(f"[faults {time.strftime('%H:%M:%S')}] {text}\n")
    sys.stderr.flush()


# ---------------------------------------------------------------------------
# flusso under a supervisor
# ---------------------------------------------------------------------------


@dataclass
class Exit:
    at: float
    code: int
    expected: bool  # the harness killed or stopped it


class Flusso:
    """`flusso run` restarted like a supervisor would (after `restart_delay`), exits counted."""

    def __init__(self, workdir: Path, env: dict[str, str], name: str, *, restart_delay: float = 1.0):
        self.workdir = workdir
        self.name = name
        self.public = free_port()
        self.private = free_port()
        self.log = workdir / "flusso.log"
        self.env = env
        self.restart_delay = restart_delay
        self.argv = [
            sys.executable, "-m", "flusso", "run", "--config", str(workdir / "flusso.toml"),
            "--public-address", f"127.0.0.1:{self.public}",
            "--private-address", f"127.0.0.1:{self.private}",
            "--journal", str(workdir / "journal.sqlite3"), "--lock", str(workdir / "flusso.lock"),
            "--slot", name, "--publication", name, "--index-prefix", f"{name}_",
            "--admin-password", "faults",
        ]
        self.exits: list[Exit] = []
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._supervise = False
        self._expect_exit = False
        self._thread: threading.Thread | None = None

    # -- process control ------------------------------------------------------

    def start(self) -> None:
        """Start and supervise: an exit the harness did not cause is restarted."""
        with self._lock:
            self._spawn()
            self._supervise = True
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, daemon=True, name="supervisor")
            self._thread.start()

    def _spawn(self) -> None:
        handle = open(self.log, "ab")  # noqa: SIM115 - the child keeps the descriptor
        handle.write(f"---- start {self.starts + 1} at {time.time():.3f}\n".encode())
        handle.flush()
        self._process = subprocess.Popen(
            self.argv, env=self.env, cwd=self.workdir, stdout=handle, stderr=subprocess.STDOUT
        )
        handle.close()
        self.starts += 1
        self._expect_exit = False

    def _watch(self) -> None:
        while True:
            time.sleep(0.05)
            with self._lock:
                process = self._process
                if process is None:
                    if not self._supervise:
                        continue
                    continue
                code = process.poll()
                if code is None:
                    continue
                self.exits.append(Exit(time.monotonic(), code, self._expect_exit))
                if not self._expect_exit:
                    _log(f"flusso exited with {code}; the supervisor restarts it")
                self._process = None
                restart = self._supervise and not self._expect_exit
            if restart:
                time.sleep(self.restart_delay)
                with self._lock:
                    if self._supervise and self._process is None:
                        self._spawn()

    def kill9(self) -> None:
        with self._lock:
            self._supervise = False
            self._expect_exit = True
            process = self._process
        if process is not None:
            process.send_signal(signal.SIGKILL)
            process.wait()
        self._wait_reaped()

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (graceful); no restart."""
        with self._lock:
            self._supervise = False
            self._expect_exit = True
            process = self._process
        if process is None:
            return None
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        self._wait_reaped()
        return code

    def _wait_reaped(self) -> None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with self._lock:
                if self._process is None:
                    return
            time.sleep(0.02)

    @property
    def running(self) -> bool:
        with self._lock:
            return self._process is not None and self._process.poll() is None

    def unexpected_exits(self, since: float = 0.0) -> list[Exit]:
        return [e for e in self.exits if not e.expected and e.at >= since]

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 25) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    # -- surfaces ---------------------------------------------------------------

    def status(self) -> dict[str, Any] | None:
        try:
            return httpx.get(f"http://127.0.0.1:{self.public}/status", timeout=1.0).json()
        except (httpx.HTTPError, ValueError):
            return None

    def ready(self) -> bool | None:
        """True 200, False 503, None unreachable."""
        try:
            code = httpx.get(f"http://127.0.0.1:{self.public}/readyz", timeout=1.0).status_code
        except httpx.HTTPError:
            return None
        return code == 200

    def private_get(self, path: str) -> httpx.Response:
        return httpx.get(
            f"http://127.0.0.1:{self.private}{path}", auth=("admin", "faults"), timeout=5
        )


# ---------------------------------------------------------------------------
# What the surfaces said over time
# ---------------------------------------------------------------------------


@dataclass
class Sample:
    at: float
    ready: bool | None
    status: dict[str, Any] | None


class Watcher:
    """Samples `/readyz` and `/status` every `interval` seconds."""

    def __init__(self, flusso: Flusso, interval: float = 0.2) -> None:
        self._flusso = flusso
        self._interval = interval
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="watcher")

    def start(self) -> Watcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            ready = self._flusso.ready()
            status = self._flusso.status() if ready is not None else None
            self.samples.append(Sample(time.monotonic(), ready, status))

    def between(self, start: float, end: float | None = None) -> list[Sample]:
        end = end if end is not None else float("inf")
        return [s for s in list(self.samples) if start <= s.at <= end]

    def first(self, predicate: Callable[[Sample], bool], after: float) -> Sample | None:
        for sample in list(self.samples):
            if sample.at >= after and predicate(sample):
                return sample
        return None


def is_unready(sample: Sample) -> bool:
    return sample.ready is False


def state_of(sample: Sample) -> str | None:
    if sample.status is None:
        return None
    return sample.status.get("state")


def is_live_and_ready(sample: Sample) -> bool:
    status = sample.status or {}
    state = status.get("state", status.get("phase"))
    return sample.ready is True and state == "live"


# ---------------------------------------------------------------------------
# The live write workload
# ---------------------------------------------------------------------------


class Workload:
    """A steady mix of writes over every table the indexes read; survives outages.

    Inserts, updates, hard and soft deletes, fan-out (a category or tag renamed), and
    aggregates (orders and their items). A failed transaction is counted and skipped:
    while Postgres restarts or a column is missing, writes fail and are retried later.
    """

    def __init__(self, url: str, *, rate: float = 15.0, seed: int = 7) -> None:
        self._url = url
        self._pause = 1.0 / rate
        self._rng = random.Random(seed)
        self.committed = 0
        self.failed = 0
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._idle = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="workload")

    def start(self) -> Workload:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        self._idle.clear()
        self._paused.set()
        self._idle.wait(timeout=30)
        try:
            yield
        finally:
            self._paused.clear()

    def _run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        while not self._stop.is_set():
            if self._paused.is_set():
                self._idle.set()
                time.sleep(0.05)
                continue
            try:
                if conn is None or conn.closed or conn.broken:
                    conn = psycopg.connect(self._url, autocommit=True, connect_timeout=3)
                with conn.transaction():
                    self._one(conn)
                self.committed += 1
            except psycopg.Error:
                self.failed += 1
                if conn is not None and (conn.closed or conn.broken):
                    conn = None
                time.sleep(0.2)
            time.sleep(self._pause)
        if conn is not None:
            conn.close()

    def _one(self, conn: psycopg.Connection[Any]) -> None:
        rng = self._rng
        pick = rng.random()
        user = rng.randint(1, 100)
        product = rng.randint(1, 40)
        if pick < 0.20:
            conn.execute(
                "UPDATE users SET login_count = coalesce(login_count, 0) + 1, "
                "last_seen_at = now() WHERE id = %s", (user,),
            )
        elif pick < 0.40:
            order = conn.execute(
                "INSERT INTO orders SELECT coalesce(max(id), 0) + 1, %s, 'pending', 0, now() "
                "FROM orders RETURNING id", (user,),
            ).fetchone()[0]
            for _ in range(rng.randint(1, 3)):
                conn.execute(
                    "INSERT INTO order_items SELECT (SELECT coalesce(max(id), 0) + 1 FROM "
                    "order_items), %s, id, sku, %s, price FROM products WHERE id = %s",
                    (order, rng.randint(1, 4), rng.randint(1, 40)),
                )
            conn.execute(
                "UPDATE orders SET total = coalesce((SELECT sum(quantity * unit_price) "
                "FROM order_items WHERE order_id = %s), 0) WHERE id = %s", (order, order),
            )
        elif pick < 0.50:
            conn.execute(
                "UPDATE orders SET status = %s WHERE id = (SELECT id FROM orders "
                "ORDER BY random() LIMIT 1)",
                (rng.choice(["paid", "shipped", "delivered", "cancelled"]),),
            )
        elif pick < 0.55:
            conn.execute(
                "WITH gone AS (DELETE FROM orders WHERE id = (SELECT id FROM orders "
                "ORDER BY random() LIMIT 1) RETURNING id) "
                "DELETE FROM order_items WHERE order_id IN (SELECT id FROM gone)"
            )
        elif pick < 0.60:
            conn.execute(
                "UPDATE users SET deleted_at = CASE WHEN deleted_at IS NULL THEN now() END "
                "WHERE id = %s", (user,),
            )
        elif pick < 0.68:
            conn.execute(
                "UPDATE products SET price = round((random() * 100)::numeric + 1, 2), "
                "stock = stock + 1, archived = (random() < 0.1) WHERE id = %s", (product,),
            )
        elif pick < 0.72:
            conn.execute(
                "UPDATE categories SET name = name || '.' WHERE id = %s "
                "AND length(name) < 40", (rng.randint(1, 6),),
            )
        elif pick < 0.80:
            conn.execute(
                "INSERT INTO reviews SELECT coalesce(max(id), 0) + 1, %s, %s, 'fresh', "
                "random() < 0.8, now() FROM reviews", (product, rng.randint(1, 5)),
            )
        elif pick < 0.86:
            tag = rng.randint(1, 6)
            conn.execute(
                "DELETE FROM product_tags WHERE product_id = %s AND tag_id = %s",
                (product, tag),
            )
            if rng.random() < 0.6:
                conn.execute("INSERT INTO product_tags VALUES (%s, %s)", (product, tag))
        elif pick < 0.88:
            conn.execute(
                "UPDATE tags SET label = label || '+' WHERE id = %s AND length(label) < 30",
                (rng.randint(1, 6),),
            )
        elif pick < 0.94:
            conn.execute(
                "UPDATE profiles SET bio = 'bio ' || md5(random()::text) WHERE user_id = %s",
                (user,),
            )
        else:
            conn.execute(
                "UPDATE addresses SET city = (ARRAY['Milan','Berlin','Lyon','Porto'])"
                "[1 + floor(random() * 4)::int] WHERE user_id = %s", (user,),
            )


# ---------------------------------------------------------------------------
# The comparison
# ---------------------------------------------------------------------------


@dataclass
class Comparison:
    compared: int
    missing: list[str] = field(default_factory=list)  # expected, not in the index
    extra: list[str] = field(default_factory=list)  # in the index, the database has none
    different: list[str] = field(default_factory=list)
    error: str | None = None
    example: str | None = None  # the first difference, field by field

    @property
    def wrong(self) -> int:
        return len(self.missing) + len(self.extra) + len(self.different)

    @property
    def equal(self) -> bool:
        return self.error is None and self.wrong == 0

    def describe(self) -> str:
        if self.error:
            return self.error
        parts = []
        for label, ids in (("missing", self.missing), ("extra", self.extra),
                           ("different", self.different)):
            if ids:
                parts.append(f"{len(ids)} {label} (e.g. {', '.join(ids[:4])})")
        if self.example:
            parts.append(f"first difference {self.example}")
        return f"{self.wrong} of {self.compared} wrong: " + "; ".join(parts) if parts else "equal"


class DocumentOracle:
    """Every document the database implies, built by flusso's own document builder
    (one batched SQL statement per index, from the current rows)."""

    def __init__(self, workdir: Path, database_url: str) -> None:
        from flusso.app.services.compile import compile_config

        class _Files:
            def exists(self, path: str) -> bool:
                return Path(path).exists()

            def read_text(self, path: str) -> str:
                return Path(path).read_text()

            def write_text(self, path: str, text: str) -> None:
                Path(path).write_text(text)

        self._deployment = compile_config(str(workdir / "flusso.toml"), _Files())
        self._url = database_url

    def expected(self) -> dict[str, dict[str, Any]]:
        return asyncio.run(self._expected())

    async def _expected(self) -> dict[str, dict[str, Any]]:
        from flusso.adapters.postgres.builder import PostgresDocumentBuilder
        from flusso.domain.documents.change import DocumentId, Upsert
        from flusso.domain.documents.render import render_document

        builder = PostgresDocumentBuilder(self._url, self._deployment)
        out: dict[str, dict[str, Any]] = {}
        try:
            async with await psycopg.AsyncConnection.connect(self._url, autocommit=True) as conn:
                for index in self._deployment.enabled_indexes():
                    schema = index.schema
                    rows = await (await conn.execute(
                        f'SELECT "{schema.primary_key}"::text FROM "{schema.db_schema}".'
                        f'"{schema.table}"'
                    )).fetchall()
                    ids = [DocumentId(index.name, (key,)) for (key,) in rows]
                    docs: dict[str, Any] = {}
                    for op in await builder.build_many(ids) if ids else []:
                        if isinstance(op, Upsert):
                            docs[op.id.render()] = json.loads(render_document(op.document))
                    out[index.name] = docs
        finally:
            await builder.close()
        return out


def index_documents(sink_url: str, alias: str) -> dict[str, Any] | None:
    """What readers see through `alias`; None when the alias does not exist."""
    with httpx.Client(base_url=sink_url, timeout=30) as http:
        refreshed = http.post(f"/{alias}/_refresh")
        if refreshed.status_code == 404:
            return None
        reply = http.post(f"/{alias}/_search", json={"size": 10000, "query": {"match_all": {}}})
        if reply.status_code == 404:
            return None
        reply.raise_for_status()
        return {hit["_id"]: hit["_source"] for hit in reply.json()["hits"]["hits"]}


# ---------------------------------------------------------------------------
# The stack
# ---------------------------------------------------------------------------


class FaultStack:
    """Everything one scenario runs against; `close()` stops it all."""

    def __init__(self, name: str, *, scale: int = 1, on_error: dict[str, str] | None = None,
                 pg_settings: dict[str, str] | None = None) -> None:
        self.name = name
        self.workdir = Path(tempfile.mkdtemp(prefix=f"flusso-fault-{name}-"))
        policies = {"users": "stop", "products": "stop", "orders": "stop", **(on_error or {})}
        shutil.copytree(SCHEMAS, self.workdir / "schemas")
        (self.workdir / "flusso.toml").write_text(CONFIG.format(**policies))
        self.postgres = ThrowawayPostgres(
            settings={"synchronous_commit": "on", **(pg_settings or {})}
        )
        self.osmem = EmbeddedOpenSearch()
        self.proxy: SinkProxy | None = None
        self.flusso: Flusso | None = None
        self.watcher: Watcher | None = None
        self.workload: Workload | None = None
        self._scale = scale
        self.slot = f"f_{name}"[:60]

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> FaultStack:
        self.postgres.start()
        load_store(self.postgres.url, self._scale)
        # As docs/operating.md asks: a hard delete of a joined row must carry its foreign
        # key, or the document that held it cannot be found (a limit of any WAL reader).
        for table in CHILD_TABLES:
            self.sql(f"ALTER TABLE {table} REPLICA IDENTITY FULL")
        self.osmem.start()
        self.proxy = SinkProxy(_port_of(self.osmem.url), port=free_port()).start()
        env = {
            **os.environ,
            "DATABASE_URL": self.postgres.url,
            "FAULT_SINK_URL": self.proxy.url,
            "FLUSSO_LAG_POLL_SECS": "1",
            "FLUSSO_LOG": "info",
            "PYTHONPATH": str(ROOT),
        }
        self.flusso = Flusso(self.workdir, env, self.slot)
        self.watcher = Watcher(self.flusso).start()
        self.workload = Workload(self.postgres.url)
        self.oracle = DocumentOracle(self.workdir, self.postgres.url)
        return self

    def close(self) -> None:
        for step in (
            lambda: self.workload and self.workload.stop(),
            lambda: self.flusso and self.flusso.stop(),
            lambda: self.watcher and self.watcher.stop(),
            lambda: self.proxy and self.proxy.stop(),
            self.osmem.stop,
            self.postgres.stop,
        ):
            with contextlib.suppress(Exception):
                step()
        if os.environ.get("FLUSSO_FAULTS_KEEP") != "1":
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> FaultStack:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers ----------------------------------------------------------------

    @property
    def sink_url(self) -> str:
        """The cluster itself (not the proxy): what readers query."""
        return self.osmem.url

    def alias(self, index: str) -> str:
        return f"{self.slot}_{index}"

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.postgres.url, autocommit=True) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def compare(self) -> Comparison:
        try:
            expected = self.oracle.expected()
        except Exception as exc:  # noqa: BLE001 - a database outage makes "not yet"
            return Comparison(0, error=f"cannot build the expected documents: {exc}")
        total = Comparison(0)
        for index in INDEXES:
            want = expected.get(index, {})
            try:
                have = index_documents(self.sink_url, self.alias(index))
            except httpx.HTTPError as exc:
                return Comparison(0, error=f"cannot read the index {index}: {exc}")
            if have is None:
                total.compared += len(want)
                total.missing.extend(f"{index}/{key}" for key in want)
                continue
            keys = set(want) | set(have)
            total.compared += len(keys)
            for key in sorted(keys):
                if key not in have:
                    total.missing.append(f"{index}/{key}")
                elif key not in want:
                    total.extra.append(f"{index}/{key}")
                elif have[key] != want[key]:
                    total.different.append(f"{index}/{key}")
                    if total.example is None:
                        total.example = f"{index}/{key}: " + _first_difference(have[key], want[key])
        return total

    def wait_live(self, timeout: float = 120.0) -> None:
        assert self.flusso is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.flusso.status()
            if status and status.get("phase") == "live" and self.flusso.ready():
                return
            time.sleep(0.1)
        raise AssertionError(f"flusso did not go live in {timeout:.0f}s:\n{self.flusso.log_tail()}")

    def converge(self, timeout: float) -> tuple[float | None, Comparison]:
        """Poll until the index equals the database and flusso is ready; (time taken, last)."""
        assert self.flusso is not None
        start = time.monotonic()
        last = Comparison(0, error="not compared")
        while time.monotonic() - start < timeout:
            last = self.compare()
            if last.equal and self.flusso.ready():
                # Settled: nothing in flight, and still equal.
                status = self.flusso.status() or {}
                if status.get("changes_in_flight", 0) == 0:
                    again = self.compare()
                    if again.equal:
                        return time.monotonic() - start, again
                    last = again
            time.sleep(1.0)
        return None, last


def _first_difference(have: Any, want: Any, path: str = "") -> str:
    if isinstance(have, dict) and isinstance(want, dict):
        for key in sorted(set(have) | set(want)):
            if have.get(key, "<absent>") != want.get(key, "<absent>"):
                return _first_difference(have.get(key, "<absent>"), want.get(key, "<absent>"),
                                         f"{path}.{key}")
    if isinstance(have, list) and isinstance(want, list) and len(have) == len(want):
        for position, (a, b) in enumerate(zip(have, want, strict=True)):
            if a != b:
                return _first_difference(a, b, f"{path}[{position}]")
    return f"{path or '.'}: index has {json.dumps(have)[:120]}, database implies {json.dumps(want)[:120]}"


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def run_for(seconds: float) -> None:
    time.sleep(seconds)
