"""SIGKILL at each reindex crash point, restart, and
reach one consistent serving generation whose documents equal the database.

Each case runs `tests/integration/reindex_runner.py` as a real process against the session
Postgres and the embedded OpenSearch; the runner kills itself at the chosen point.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from tests.conftest import unique_name
from tests.integration.reindex_runner import create_tables, deployment, fresh_rebuild

from flusso.adapters.journal.sqlite import SqliteJournal
from flusso.adapters.opensearch.client import open_opensearch_client
from flusso.adapters.postgres.builder import PostgresDocumentBuilder
from flusso.domain.lifecycle import State, check_invariants, fold
from flusso.domain.naming import hash_alias
from opensearch_fixtures import ClusterProbe

ROOT = Path(__file__).resolve().parents[2]
ITEMS = 20


class Runs:
    """Starts the runner process with one deployment's fixed names."""

    def __init__(self, pg_url: str, os_url: str, tmp_path: Path) -> None:
        self.args = [
            "--pg", pg_url,
            "--os", os_url,
            "--journal", str(tmp_path / "journal.sqlite3"),
            "--prefix", f"{unique_name('r')}_",
            "--slot", unique_name("slot"),
            "--publication", unique_name("pub"),
            "--chunk-size", "5",
        ]  # fmt: skip
        self.prefix = self.args[self.args.index("--prefix") + 1]
        self.journal = self.args[self.args.index("--journal") + 1]

    def run(self, *extra: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tests.integration.reindex_runner", *self.args, *extra],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            check=False,
        )

    def ok(self, *extra: str) -> None:
        done = self.run(*extra)
        assert done.returncode == 0 and "DONE" in done.stdout, done.stderr[-3000:]

    def killed(self, *extra: str) -> None:
        done = self.run(*extra)
        assert done.returncode == -signal.SIGKILL, (done.returncode, done.stderr[-3000:])


def change_rows(url: str) -> None:
    """Committed while flusso is down: the restart must catch up from the slot."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE items SET label = 'changed-while-down' WHERE id = 1")
        conn.execute("DELETE FROM items WHERE id = 2")
        conn.execute("INSERT INTO items VALUES (501, 'new-while-down', 5, 2)")
        conn.execute("UPDATE cats SET name = 'crimson' WHERE id = 1")


async def assert_consistent(pg_url: str, os_url: str, runs: Runs, generation: int) -> None:
    client = open_opensearch_client(os_url, tls_verify=False)
    probe = ClusterProbe(client, runs.prefix)
    journal = SqliteJournal.open(runs.journal)
    try:
        hash_alias = items_hash_alias(pg_url, runs.prefix)
        target = f"{hash_alias}_{generation}"
        assert await probe.holders(hash_alias) == [target]
        assert await probe.holders(f"{runs.prefix}items") == [target]
        assert await probe.indices(f"{hash_alias}_*") == [target]
        assert await probe.meta(hash_alias) == {"active_generation": generation, "seeded": True}
        assert await probe.documents(hash_alias) == await fresh_rebuild(pg_url, "items")
        assert await probe.documents(f"{runs.prefix}notes") == await fresh_rebuild(pg_url, "notes")

        row = await journal.current("primary", hash_alias)
        assert row is not None
        assert row.lifecycle.state is State.SERVING
        assert row.lifecycle.serving_generation == generation
        check_invariants(row.lifecycle)
        records = await journal.events("primary", hash_alias)
        assert fold(r.to_event() for r in records) == row.lifecycle
    finally:
        await journal.close()
        await client.close()


def items_hash_alias(pg_url: str, prefix: str) -> str:
    mapping = next(
        m
        for m in PostgresDocumentBuilder(pg_url, deployment()).index_mappings()
        if m.index == "items"
    )
    return hash_alias(prefix, "items", mapping.hash)


@pytest.fixture
def runs(pg_url, embedded_opensearch, tmp_path) -> Runs:
    create_tables(pg_url, items=ITEMS, notes=5)
    return Runs(pg_url, embedded_opensearch.url, tmp_path)


@pytest.mark.parametrize(
    "crash",
    [
        "after:reindex_requested",  # 202, before staging: the request survives
        "after:reindex_staged",  # meta {2,false}, reads stay on 1
        "after:generation_created",  # generation 2 reused
        "backfill-chunk",  # mid-backfill, generation 2 reused, no 3
        "after:swap_started",
        "after:alias_swapped",  # backfill re-run into 2, 1 dropped
        "after:generations_dropped",
        "after:seeded",  # done
    ],
)
async def test_a_reindex_killed_at_a_crash_point_resumes_to_one_consistent_generation(
    runs, pg_url, embedded_opensearch, crash
):
    await asyncio.to_thread(runs.ok)  # first build: generation 1 serving
    await asyncio.to_thread(runs.killed, "--crash", crash, "--reindex", "items")
    change_rows(pg_url)
    await asyncio.to_thread(runs.ok)

    await assert_consistent(pg_url, embedded_opensearch.url, runs, generation=2)


async def test_a_first_build_killed_between_creating_generation_one_and_its_meta_ends_on_two(
    runs, pg_url, embedded_opensearch
):
    # Generation 1 exists without meta; the restart builds 2 and drops the orphan 1.
    await asyncio.to_thread(runs.killed, "--crash", "fresh-create")
    change_rows(pg_url)
    await asyncio.to_thread(runs.ok)

    await assert_consistent(pg_url, embedded_opensearch.url, runs, generation=2)
