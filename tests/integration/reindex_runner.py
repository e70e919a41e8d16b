"""The real reindex stack (Postgres capture and builder, SyncPipeline, OpenSearchSink, SQLite
journal, ReindexCoordinator) for the reindex integration tests, in-process (`Stack`) or as a
process that can SIGKILL itself at a chosen crash point (`python -m tests.integration.reindex_runner`).

A run: reconcile the journal, start the pipeline and wait until it is live (a crash-resumed
rebuild finishes in its backfill), reconcile again, resume journaled requests, optionally
reindex one index, wait until every committed change is confirmed, stop, print `DONE`.

Crash points (`--crash`): `after:<event>` kills right after the journal recorded that event
kind; `backfill-chunk` after the rebuild's first backfill flush into the new generation;
`fresh-create` when a first build writes its meta marker (its generation already exists).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from flusso.adapters.journal.sqlite import SqliteJournal
from flusso.adapters.opensearch.client import open_opensearch_client
from flusso.adapters.opensearch.sink import OpenSearchSink
from flusso.adapters.postgres.builder import PostgresDocumentBuilder
from flusso.adapters.postgres.capture import PostgresChangeCapture
from flusso.adapters.postgres.pgoutput import parse_lsn
from flusso.app.pipeline.engine import SyncPipeline
from flusso.app.ports import Change, FlushReport, JournalRecord
from flusso.app.services.reindex import ReindexCoordinator
from flusso.app.services.startup import reconcile_on_start
from flusso.app.status import LiveStatus
from flusso.domain.config.model import (
    BelongsTo,
    ColumnSource,
    Deployment,
    Field,
    IndexConfig,
    IndexSchema,
    Join,
    OpenSearchSinkConfig,
    Secret,
    SourceConfig,
)
from flusso.domain.documents.change import DocumentId, TableRef, Upsert
from flusso.domain.documents.keys import canonical_key_value
from flusso.domain.lifecycle import LifecycleEvent
from flusso.domain.types import IndexMapping

DDL = """
CREATE TABLE cats (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL, qty int NOT NULL, cat_id int);
CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL);
INSERT INTO cats VALUES (1, 'red'), (2, 'blue'), (3, 'green');
"""

SINK = "primary"


def _column(name: str, type_: str) -> Field:
    return Field(name, ColumnSource(column=name, type=type_, nullable=False))


def deployment() -> Deployment:
    """`items` (with its category joined in) and `notes`: tiny documents, two indexes."""
    items = IndexSchema(
        table="items",
        primary_key="id",
        fields=(
            _column("id", "integer"),
            _column("label", "keyword"),
            _column("qty", "integer"),
            Field(
                "cat",
                Join(
                    table="cats",
                    kind=BelongsTo(column="cat_id"),
                    primary_key="id",
                    nullable=True,
                    fields=(_column("name", "keyword"),),
                ),
            ),
        ),
    )
    notes = IndexSchema(
        table="notes",
        primary_key="id",
        fields=(_column("id", "integer"), _column("body", "keyword")),
    )
    return Deployment(
        source=SourceConfig(),
        indexes=(
            IndexConfig(name="items", enabled=True, schema=items),
            IndexConfig(name="notes", enabled=True, schema=notes),
        ),
    )


def create_tables(url: str, *, items: int, notes: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(DDL.encode())
        for i in range(1, items + 1):
            conn.execute(
                "INSERT INTO items VALUES (%s, %s, %s, %s)", (i, f"item-{i}", i, i % 3 + 1)
            )
        for i in range(1, notes + 1):
            conn.execute("INSERT INTO notes VALUES (%s, %s)", (i, f"note-{i}"))


async def insert_lsn(url: str) -> int:
    """The WAL position at or after the end of everything committed so far (see engine_harness)."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        row = await (await conn.execute("SELECT pg_current_wal_insert_lsn()::text")).fetchone()
    lsn = parse_lsn(row[0])
    if lsn % (16 * 1024 * 1024) == 40:
        return lsn - 40
    if lsn % 8192 == 24:
        return lsn - 24
    return lsn


async def fresh_rebuild(url: str, index: str) -> dict[str, dict[str, Any]]:
    """Every document of `index` built afresh from every root row, by id (JSON-plain)."""
    builder = PostgresDocumentBuilder(url, deployment())
    await builder.open()
    try:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            rows = await (await conn.execute(f"SELECT id::text FROM {index}".encode())).fetchall()
        ids = [DocumentId(index, (canonical_key_value(23, r[0]),)) for r in rows]
        ops = await builder.build_many(ids) if ids else []
    finally:
        await builder.close()
    return {
        op.id.render(): json.loads(json.dumps(dict(op.document), default=str))
        for op in ops
        if isinstance(op, Upsert)
    }


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class CrashingJournal:
    """Test-only Journal decorator: SIGKILLs the process right after recording `after`."""

    def __init__(self, inner: SqliteJournal, after: str | None) -> None:
        self._inner = inner
        self._after = after

    async def record(self, event: LifecycleEvent) -> JournalRecord:
        record = await self._inner.record(event)
        if self._after is not None and str(event.kind) == self._after:
            _die()
        return record

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class SlowRows:
    """A rebuild snapshot that hands out each row after `delay` seconds (a slow backfill)."""

    def __init__(self, inner: PostgresChangeCapture, delay: float) -> None:
        self._inner = inner
        self._delay = delay

    def snapshot(self, tables: Sequence[TableRef]) -> AsyncIterator[Change]:
        return self._snapshot(tables)

    async def _snapshot(self, tables: Sequence[TableRef]) -> AsyncIterator[Change]:
        stream = self._inner.snapshot(tables)
        try:
            async for change in stream:
                await asyncio.sleep(self._delay)
                yield change
        finally:
            await stream.aclose()  # type: ignore[attr-defined]


@dataclass
class Stack:
    pg_url: str
    os_url: str
    journal_path: str
    prefix: str
    slot: str
    publication: str
    crash: str | None = None
    chunk_size: int = 8
    refresh_interval: str = "1s"
    snapshot_delay: float = 0.0
    status: LiveStatus = field(init=False)

    async def start(self, timeout: float = 30.0) -> Stack:
        self.deployment = deployment()
        after = (
            self.crash.removeprefix("after:")
            if self.crash and self.crash.startswith("after:")
            else None
        )
        self.journal = CrashingJournal(SqliteJournal.open(self.journal_path), after)
        client = open_opensearch_client(self.os_url, tls_verify=False)
        config = OpenSearchSinkConfig(
            url=Secret(value=self.os_url), refresh_interval=self.refresh_interval
        )
        self.sink = OpenSearchSink(
            client, sink_name=SINK, config=config, prefix=self.prefix, owns_client=True
        )
        self._inject(self.sink)
        self.capture = PostgresChangeCapture(
            self.pg_url,
            self.deployment,
            slot=self.slot,
            publication=self.publication,
            status_interval=0.2,
        )
        self.builder = PostgresDocumentBuilder(self.pg_url, self.deployment)
        await self.builder.open()
        self.mappings: list[IndexMapping] = self.builder.index_mappings()
        self.status = LiveStatus([m.index for m in self.mappings])
        self.startup = await reconcile_on_start(self.journal, [self.sink], self.mappings)
        self.pipeline = SyncPipeline(
            self.capture,
            self.builder,
            self.sink,
            self.status,
            on_error=lambda index: "stop",
            lag_poll_secs=1.0,
        )
        self.status.begin_run()
        self.task = asyncio.create_task(self.pipeline.run())
        deadline = time.monotonic() + timeout
        while self.status.phase != "live" or self.capture._stream is None:
            if self.task.done():
                self.task.result()
                raise RuntimeError("the pipeline ended before going live")
            if time.monotonic() > deadline:
                raise RuntimeError(f"not live after {timeout}s: {self.status.snapshot()}")
            await asyncio.sleep(0.02)
        # The start's backfill may have finished a rebuild a crash interrupted.
        self.live = await reconcile_on_start(self.journal, [self.sink], self.mappings)
        rows = SlowRows(self.capture, self.snapshot_delay) if self.snapshot_delay else self.capture
        self.coordinator = ReindexCoordinator(
            self.journal,  # type: ignore[arg-type]
            [self.sink],
            self.builder,
            rows,
            self.pipeline,
            chunk_size=self.chunk_size,
        )
        return self

    def _inject(self, sink: OpenSearchSink) -> None:
        if self.crash == "backfill-chunk":
            flush = sink.flush_generations

            async def flush_then_die() -> FlushReport:
                report = await flush()
                _die()
                return report

            sink.flush_generations = flush_then_die  # type: ignore[method-assign]
        elif self.crash == "fresh-create":
            calls = sink._calls  # test-only: the meta write right after creating generation 1
            write_meta = calls.write_meta

            async def die_before_meta(*args: Any, **kwargs: Any) -> None:
                _die()
                await write_meta(*args, **kwargs)

            calls.write_meta = die_before_meta  # type: ignore[method-assign]

    def names(self, index: str) -> Any:
        mapping = next(m for m in self.mappings if m.index == index)
        return self.sink.index_names(mapping)

    async def resume_pending(self) -> None:
        for index in self.live.pending_requests:
            await self.coordinator.reindex(index)

    async def settle(self, timeout: float = 30.0) -> None:
        """Wait until every change committed so far is flushed and confirmed."""
        target = await insert_lsn(self.pg_url)
        deadline = time.monotonic() + timeout
        while (self.capture.confirmed_lsn or 0) < target:
            if self.task.done():
                self.task.result()
                raise RuntimeError("the pipeline ended while settling")
            if time.monotonic() > deadline:
                raise RuntimeError("changes were not confirmed in time")
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        await self.coordinator.close()
        await self.pipeline.stop(graceful=True)
        await asyncio.gather(self.task, return_exceptions=True)
        self.status.end_run()
        await self.capture.close()
        await self.builder.close()
        await self.sink.close()
        await self.journal.close()


async def _main(args: argparse.Namespace) -> None:
    stack = Stack(
        args.pg,
        args.os,
        args.journal,
        args.prefix,
        args.slot,
        args.publication,
        crash=args.crash,
        chunk_size=args.chunk_size,
    )
    await stack.start()
    try:
        await stack.resume_pending()
        if args.reindex:
            await stack.coordinator.reindex(args.reindex)
        await stack.settle()
    finally:
        await stack.close()
    print("DONE", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("pg", "os", "journal", "prefix", "slot", "publication"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--crash")
    parser.add_argument("--reindex")
    parser.add_argument("--chunk-size", type=int, default=8)
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
