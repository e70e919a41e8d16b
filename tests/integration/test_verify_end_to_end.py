"""`flusso verify` as an operator runs it, against a real Postgres, osmem-server and `flusso run`.

A tampered index is reported exactly and repaired; verification while live sync is
busy with a write workload reports no drift.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from devstack.postgres import free_port
from tests.conftest import unique_name

SCHEMA = """\
version: 1
table: notes
primary_key: id
soft_delete:
  column: archived
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
url = { env = "TEST_OS_URL" }
number_of_replicas = 0
refresh_interval = "200ms"

[[index]]
name = "notes"
schema = "notes.schema.yml"
enabled = true
"""

NOTES = 40
DDL = f"""
CREATE TABLE notes (id int PRIMARY KEY, title text NOT NULL, archived boolean NOT NULL DEFAULT false);
CREATE TABLE note_tags (id serial PRIMARY KEY, note_id int NOT NULL);
-- Deletes then carry note_id, so live sync can find the note whose count changed.
ALTER TABLE note_tags REPLICA IDENTITY FULL;
INSERT INTO notes SELECT g, 'note ' || g, g = {NOTES} FROM generate_series(1, {NOTES}) AS g;
INSERT INTO note_tags (note_id) SELECT g % 10 + 1 FROM generate_series(1, 25) AS g;
"""


class Server:
    """`flusso run` on the project, with its own slot, publication and index prefix."""

    def __init__(self, workdir: Path, pg_url: str, os_url: str) -> None:
        self.prefix = unique_name("vf")
        self.public = f"127.0.0.1:{free_port()}"
        self.env = {
            **os.environ,
            "DATABASE_URL": pg_url,
            "TEST_OS_URL": os_url,
            "FLUSSO_SLOT": self.prefix,
            "FLUSSO_PUBLICATION": self.prefix,
            "FLUSSO_INDEX_PREFIX": self.prefix + "_",
            "FLUSSO_PUBLIC_ADDRESS": self.public,
            "FLUSSO_PRIVATE_ADDRESS": f"127.0.0.1:{free_port()}",
            "FLUSSO_ADMIN_PASSWORD": "s3cret",
            "NO_COLOR": "1",
        }
        self.workdir = workdir
        self.proc: subprocess.Popen[str] | None = None

    @property
    def alias(self) -> str:
        return f"{self.prefix}_notes"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flusso", "run", "-c", "flusso.toml"],
            cwd=self.workdir, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True,
        )

    def wait_live(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.proc.stderr.read()
            try:
                status = httpx.get(f"http://{self.public}/status", timeout=5).json()
                if status["phase"] == "live" and status["changes_in_flight"] == 0:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("the server did not go live")

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def verify(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "flusso", "verify", "-c", "flusso.toml", *args],
            cwd=self.workdir, env=self.env, capture_output=True, text=True, timeout=180,
        )


def verify_json(server: Server, *args: str) -> tuple[int, dict[str, Any]]:
    done = server.verify("--json", *args)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stdout.count("\n") == 1, done.stdout  # exactly one JSON object
    (entry,) = json.loads(done.stdout)["indexes"]
    return done.returncode, entry


class Index:
    def __init__(self, os_url: str, alias: str) -> None:
        self.url = f"{os_url}/{alias}"

    def put(self, doc_id: int, body: dict[str, Any]) -> None:
        httpx.put(f"{self.url}/_doc/{doc_id}", params={"refresh": "true"}, json=body,
                  timeout=10).raise_for_status()

    def delete(self, doc_id: int) -> None:
        httpx.delete(f"{self.url}/_doc/{doc_id}", params={"refresh": "true"},
                     timeout=10).raise_for_status()

    def get(self, doc_id: int) -> dict[str, Any]:
        return httpx.get(f"{self.url}/_doc/{doc_id}", timeout=10).json()["_source"]

    def documents(self) -> dict[str, dict[str, Any]]:
        httpx.post(f"{self.url}/_refresh", timeout=10)
        reply = httpx.post(f"{self.url}/_search", json={"size": 1000}, timeout=10).json()
        return {hit["_id"]: hit["_source"] for hit in reply["hits"]["hits"]}


@pytest.fixture
def project(tmp_path: Path, pg_url: str) -> Path:
    (tmp_path / "notes.schema.yml").write_text(SCHEMA)
    (tmp_path / "flusso.toml").write_text(CONFIG)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(DDL)
    return tmp_path


@pytest.fixture
def server(project: Path, pg_url: str, embedded_opensearch: Any) -> Any:
    running = Server(project, pg_url, embedded_opensearch.url)
    running.start()
    try:
        running.wait_live()
        yield running
    finally:
        running.stop()


def expected_documents(pg_url: str) -> dict[str, dict[str, Any]]:
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT n.id, n.title, (SELECT count(*) FROM note_tags t WHERE t.note_id = n.id) "
            "FROM notes n WHERE NOT n.archived"
        ).fetchall()
    return {str(i): {"id": i, "title": title, "tagCount": tags} for i, title, tags in rows}


def test_a_tampered_index_is_reported_exactly_then_repaired(server: Server, pg_url: str,
                                                            embedded_opensearch: Any) -> None:
    index = Index(embedded_opensearch.url, server.alias)
    assert index.documents() == expected_documents(pg_url)
    code, entry = verify_json(server)
    assert (code, entry) == (0, {"index": "notes", "checked": NOTES, "missing": 0, "stale": 0,
                                 "orphaned": 0, "repaired": 0})

    for doc_id in (1, 2):
        index.delete(doc_id)  # missing
    index.put(3, {**index.get(3), "title": "tampered"})  # stale: a column
    index.put(4, {**index.get(4), "tagCount": 99})  # stale: an aggregate
    index.put(5, {"id": 5, "title": "note 5"})  # stale: a field gone
    for doc_id in (900, 901):
        index.put(doc_id, {"id": doc_id, "title": "ghost", "tagCount": 0})  # orphaned: no row
    index.put(NOTES, {"id": NOTES, "title": f"note {NOTES}", "tagCount": 0})  # orphaned: archived

    code, entry = verify_json(server, "--settle", "0.2", "-v")
    assert code == 1
    assert entry == {
        "index": "notes", "checked": NOTES + 2, "missing": 2, "stale": 3, "orphaned": 3,
        "repaired": 0, "unsettled": 0,
        "ids": {"missing": ["1", "2"], "stale": ["3", "4", "5"],
                "orphaned": [str(NOTES), "900", "901"]},
    }

    table = server.verify("--settle", "0.2")
    assert table.returncode == 1
    assert "drift left: 8 document(s); run flusso verify --repair to fix it" in table.stdout

    code, entry = verify_json(server, "--repair", "--settle", "0.2")
    assert (code, entry["repaired"]) == (0, 8)
    assert (entry["missing"], entry["stale"], entry["orphaned"]) == (2, 3, 3)
    assert index.documents() == expected_documents(pg_url)

    code, entry = verify_json(server)
    assert (code, entry) == (0, {"index": "notes", "checked": NOTES, "missing": 0, "stale": 0,
                                 "orphaned": 0, "repaired": 0})


def test_verify_finds_and_repairs_the_drift_a_child_delete_leaves_without_full_identity(
    server: Server, pg_url: str, embedded_opensearch: Any
) -> None:
    index = Index(embedded_opensearch.url, server.alias)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE note_tags REPLICA IDENTITY DEFAULT")
        (note,) = conn.execute(
            "DELETE FROM note_tags WHERE id = (SELECT min(id) FROM note_tags) RETURNING note_id"
        ).fetchone()
        conn.execute("UPDATE notes SET title = 'marker' WHERE id = 7")
    deadline = time.monotonic() + 30
    while index.get(7)["title"] != "marker":  # live sync has handled both changes
        assert time.monotonic() < deadline
        time.sleep(0.1)
    # The delete carried only the child's key: live sync could not name its note.
    assert index.get(note)["tagCount"] == expected_documents(pg_url)[str(note)]["tagCount"] + 1

    code, entry = verify_json(server, "--settle", "0.2", "-v")
    assert (code, entry["stale"], entry["ids"]["stale"]) == (1, 1, [str(note)])
    code, entry = verify_json(server, "--repair", "--settle", "0.2")
    assert (code, entry["repaired"]) == (0, 1)
    assert index.documents() == expected_documents(pg_url)


class Workload:
    """Row updates, inserts, deletes and child-row changes from one connection, until stopped."""

    def __init__(self, pg_url: str) -> None:
        self.pg_url = pg_url
        self.stopped = threading.Event()
        self.transactions = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        rng = random.Random(7)
        next_id = 1000
        try:
            with psycopg.connect(self.pg_url, autocommit=True) as conn:
                while not self.stopped.is_set():
                    step = rng.randrange(5)
                    note = rng.randint(1, NOTES - 1)
                    if step == 0:
                        conn.execute("UPDATE notes SET title = %s WHERE id = %s",
                                     (f"t{rng.random()}", note))
                    elif step == 1:
                        conn.execute("INSERT INTO note_tags (note_id) VALUES (%s)", (note,))
                    elif step == 2:
                        conn.execute("DELETE FROM note_tags WHERE id = (SELECT min(id) FROM "
                                     "note_tags WHERE note_id = %s)", (note,))
                    elif step == 3:
                        next_id += 1
                        conn.execute("INSERT INTO notes VALUES (%s, 'new', false)", (next_id,))
                    else:
                        conn.execute("DELETE FROM notes WHERE id = %s", (next_id,))
                    self.transactions += 1
                    time.sleep(0.01)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def __enter__(self) -> Workload:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=30)


def test_verify_while_live_sync_writes_reports_no_drift(server: Server, pg_url: str,
                                                        embedded_opensearch: Any) -> None:
    # A settle well above live sync's lag even on a loaded machine: a false alarm here would
    # mean verify mistook a change in flight for drift.
    with Workload(pg_url) as workload:
        time.sleep(1.0)  # live sync is busy before verification starts
        code, entry = verify_json(server, "-v", "--settle", "5")
        assert (code, entry["missing"], entry["stale"], entry["orphaned"]) == (0, 0, 0, 0), entry
        code, entry = verify_json(server, "--repair", "--settle", "5")
        assert (code, entry["missing"], entry["stale"], entry["orphaned"]) == (0, 0, 0, 0), entry
    assert workload.error is None, workload.error
    assert workload.transactions > 100
    server.wait_live()
    index = Index(embedded_opensearch.url, server.alias)
    deadline = time.monotonic() + 30
    while index.documents() != expected_documents(pg_url):
        assert time.monotonic() < deadline, "live sync did not catch up"
        time.sleep(0.2)
    code, entry = verify_json(server)
    assert (code, entry["missing"], entry["stale"], entry["orphaned"]) == (0, 0, 0, 0)
