"""`flusso run` as a real process with only a stdout sink, against a real Postgres."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from tests.conftest import unique_name

SCHEMA = """\
version: 1
table: books
primary_key: id
soft_delete:
  column: withdrawn
fields:
  - integer: id
    required: true
  - text: title
    required: true
  - belongs_to: author
    table: authors
    column: author_id
    primary_key: id
    fields:
      - keyword: name
        required: true
  - count: chapterCount
    table: chapters
    foreign_key: book_id
"""

CONFIG = """\
[source]
type = "postgres"

[sinks.out]
type = "stdout"

[[index]]
name = "books"
schema = "books.schema.yml"
enabled = true
"""

DDL = """
CREATE TABLE authors (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE books (id int PRIMARY KEY, title text NOT NULL, author_id int,
                    withdrawn boolean NOT NULL DEFAULT false);
CREATE TABLE chapters (id int PRIMARY KEY, book_id int NOT NULL);
INSERT INTO authors VALUES (1, 'Le Guin'), (2, 'Calvino');
INSERT INTO books VALUES (1, 'The Dispossessed', 1, false), (2, 'Invisible Cities', 2, false);
INSERT INTO chapters VALUES (1, 1), (2, 1), (3, 2);
"""


class Envelopes:
    """Reads NDJSON envelopes from the process's stdout on a thread."""

    def __init__(self, stream) -> None:
        self.items: list[dict] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            with self._lock:
                self.items.append(json.loads(line))

    def wait_for(self, predicate, timeout: float = 30.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                found = [e for e in self.items if predicate(e)]
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no matching envelope within {timeout}s; got {self.items[-5:]}")


@pytest.fixture
def project(tmp_path: Path, pg_url: str) -> Path:
    (tmp_path / "books.schema.yml").write_text(SCHEMA)
    (tmp_path / "flusso.toml").write_text(CONFIG)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(DDL)
    return tmp_path


def _start(project: Path, pg_url: str, slot: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": pg_url,
        "FLUSSO_SLOT": slot,
        "FLUSSO_PUBLICATION": slot,
        "FLUSSO_LOG": "info",
    }
    return subprocess.Popen(
        [
            sys.executable, "-m", "flusso", "run", "-c", "flusso.toml", "--lag-poll-secs", "1",
            "--public-address", "127.0.0.1:0", "--private-address", "127.0.0.1:0",
        ],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_run_backfills_then_streams_related_changes_and_stops_cleanly(project, pg_url):
    slot = unique_name("slot")
    proc = _start(project, pg_url, slot)
    try:
        out = Envelopes(proc.stdout)
        seeded = out.wait_for(lambda e: e["op"] == "upsert" and e["id"] == "2")
        assert seeded[0]["document"] == {
            "id": 2, "title": "Invisible Cities", "author": {"name": "Calvino"}, "chapterCount": 1,
        }
        out.wait_for(lambda e: e["op"] == "upsert" and e["id"] == "1")

        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("UPDATE authors SET name = 'Ursula K. Le Guin' WHERE id = 1")
        renamed = out.wait_for(
            lambda e: e["op"] == "upsert" and e["document"]["author"]["name"] == "Ursula K. Le Guin"
        )
        assert renamed[0]["id"] == "1" and renamed[0]["index"] == "books"

        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("INSERT INTO chapters VALUES (4, 2)")
            conn.execute("UPDATE books SET withdrawn = true WHERE id = 1")
        out.wait_for(lambda e: e["op"] == "upsert" and e["id"] == "2" and e["document"]["chapterCount"] == 2)
        deleted = out.wait_for(lambda e: e["op"] == "delete" and e["id"] == "1")
        assert "document" not in deleted[0]
        assert (project / "flusso.lock").is_file()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        stderr = proc.stderr.read()
    assert code == 0, stderr
    assert "shutdown requested; stopping pipeline" in stderr


def test_a_missing_config_file_is_a_clear_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "flusso", "run", "--config", "nope.toml",
         "--public-address", "127.0.0.1:0", "--private-address", "127.0.0.1:0"],
        cwd=tmp_path, capture_output=True, text=True, timeout=30,
        env={**os.environ, "DATABASE_URL": "postgresql://x@127.0.0.1:1/x"},
    )
    assert result.returncode == 1
    assert "config file nope.toml not found" in result.stderr
    assert "Traceback" not in result.stderr
