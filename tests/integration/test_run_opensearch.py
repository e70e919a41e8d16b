"""`flusso run` as a real process against Postgres and OpenSearch, driven by the CLI clients.

Covers the operator's path: backfill, live changes, `flusso indexes`, `flusso reindex
--wait`, SIGTERM draining, and a clean restart that replays nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from devstack.postgres import free_port
from tests.conftest import unique_name

SCHEMA = """\
version: 1
table: notes
primary_key: id
fields:
  - integer: id
    required: true
  - keyword: title
    required: true
  - count: tagCount
    table: note_tags
    foreign_key: note_id
"""

CONFIG = """\
[source]
type = "postgres"

[sinks.primary]
type = "opensearch"
url = {{ env = "TEST_OS_URL" }}
number_of_replicas = 0
refresh_interval = "1s"

[[index]]
name = "notes"
schema = "notes.schema.yml"
enabled = true
"""

DDL = """
CREATE TABLE notes (id int PRIMARY KEY, title text NOT NULL);
CREATE TABLE note_tags (id int PRIMARY KEY, note_id int NOT NULL);
INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 12) AS g;
INSERT INTO note_tags VALUES (1, 1), (2, 1), (3, 2);
"""


class Server:
    def __init__(self, workdir: Path, pg_url: str, os_url: str, prefix: str) -> None:
        self.public = f"127.0.0.1:{free_port()}"
        self.private = f"127.0.0.1:{free_port()}"
        self.env = {
            **os.environ,
            "DATABASE_URL": pg_url,
            "TEST_OS_URL": os_url,
            "FLUSSO_SLOT": prefix,
            "FLUSSO_PUBLICATION": prefix,
            "FLUSSO_INDEX_PREFIX": prefix + "_",
            "FLUSSO_PUBLIC_ADDRESS": self.public,
            "FLUSSO_PRIVATE_ADDRESS": self.private,
            "FLUSSO_ADMIN_PASSWORD": "s3cret",
            "FLUSSO_LAG_POLL_SECS": "1",
        }
        self.workdir = workdir
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flusso", "run", "-c", "flusso.toml"],
            cwd=self.workdir, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True,
        )

    def status(self) -> dict:
        return httpx.get(f"http://{self.public}/status", timeout=5).json()

    def wait_live(self, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.proc.stderr.read()
            try:
                status = self.status()
                if status["phase"] == "live" and status["changes_in_flight"] == 0:
                    return status
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("the server did not go live")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "flusso", *args, "--server", self.private],
            env=self.env, capture_output=True, text=True, timeout=120,
        )

    def stop(self) -> tuple[int, str]:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        return code, self.proc.stderr.read()


def _search(os_url: str, alias: str) -> dict[str, dict]:
    httpx.post(f"{os_url}/{alias}/_refresh", timeout=10)
    reply = httpx.get(f"{os_url}/{alias}/_search", params={"size": 100}, timeout=10).json()
    return {hit["_id"]: hit["_source"] for hit in reply["hits"]["hits"]}


def _eventually(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.1)


@pytest.fixture
def project(tmp_path: Path, pg_url: str) -> Path:
    (tmp_path / "notes.schema.yml").write_text(SCHEMA)
    (tmp_path / "flusso.toml").write_text(CONFIG.format())
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(DDL)
    return tmp_path


def test_an_operator_runs_reindexes_and_restarts_without_replay(project, pg_url, embedded_opensearch):
    os_url = embedded_opensearch.url
    prefix = unique_name("op")
    server = Server(project, pg_url, os_url, prefix)
    server.start()
    try:
        status = server.wait_live()
        assert status["indexes"] == {"notes": "seeded"}
        alias = f"{prefix}_notes"
        docs = _search(os_url, alias)
        assert len(docs) == 12 and docs["1"] == {"id": 1, "title": "note 1", "tagCount": 2}

        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("INSERT INTO note_tags VALUES (4, 3)")
            conn.execute("UPDATE notes SET title = 'renamed' WHERE id = 5")
        _eventually(lambda: _search(os_url, alias).get("3", {}).get("tagCount") == 1)
        _eventually(lambda: _search(os_url, alias)["5"]["title"] == "renamed")

        listed = server.cli("indexes", "--format", "json", "--admin-password", "s3cret")
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout) == {"notes": "seeded"}
        refused = server.cli("indexes", "--admin-password", "wrong")
        assert refused.returncode == 1
        assert "Error: server returned 401 Unauthorized: unauthorized" in refused.stderr

        rebuilt = server.cli("reindex", "notes", "--wait", "--admin-password", "s3cret")
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert "reindex of notes queued" in rebuilt.stdout
        holders = httpx.get(f"{os_url}/_alias/{alias}", timeout=10).json()
        assert list(holders) == [next(iter(holders))]
        assert next(iter(holders)).endswith("_2")
        assert _search(os_url, alias)["5"]["title"] == "renamed"

        unknown = server.cli("reindex", "nope", "--admin-password", "s3cret")
        assert unknown.returncode == 1
        assert "404 Not Found: unknown index nope" in unknown.stderr

        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("UPDATE notes SET title = 'last' WHERE id = 6")
        _eventually(lambda: _search(os_url, alias)["6"]["title"] == "last")
        committed = server.wait_live()["changes_committed"]
        assert committed >= 3
    finally:
        code, stderr = server.stop()
    assert code == 0, stderr
    assert "shutdown requested; stopping pipeline" in stderr

    # A clean restart replays nothing that was already confirmed.
    server.start()
    try:
        status = server.wait_live()
        time.sleep(1.5)  # one more feedback round: nothing may arrive
        status = server.status()
        assert status["changes_captured"] == 0, status
        assert status["indexes"] == {"notes": "seeded"}
    finally:
        code, stderr = server.stop()
    assert code == 0, stderr
