"""Drive the real sync engine (PostgresChangeCapture + PostgresDocumentBuilder + SyncPipeline)
against a throwaway Postgres, with an in-memory sink, for the engine integration tests.

`Engine` starts the pipeline as a task with a unique slot and a short feedback
interval; `settle()` waits until the capture has confirmed every change committed
so far (so every resulting operation has been flushed); `ops_since(mark)` reads
the flushed operations; `full_rebuild()` builds every root row afresh for
comparisons. `RecordingSink` adds fault injection and ack bookkeeping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from tests.conftest import unique_name

from flusso.adapters.fakes.sink import InMemorySink
from flusso.adapters.postgres.builder import PostgresDocumentBuilder
from flusso.adapters.postgres.capture import PostgresChangeCapture
from flusso.adapters.postgres.pgoutput import parse_lsn
from flusso.app.pipeline.engine import SyncPipeline
from flusso.app.ports import BatchStats, Change, FlushReport, SinkWriteError
from flusso.app.status import CompositeObserver, LiveStatus, NullObserver
from flusso.domain.config.model import Deployment
from flusso.domain.documents.change import Delete, DocumentId, DocumentOp, TableRef, Upsert
from flusso.domain.documents.keys import canonical_key_value

WAL_PAGE = 8192
WAL_SEGMENT = 16 * 1024 * 1024


class Rebuilt:
    """Expectation marker: an upsert whose body equals a fresh build from the current rows."""

    def __repr__(self) -> str:
        return "REBUILT"


REBUILT = Rebuilt()


def plain(value: Any) -> Any:
    """Numbers compared by value (Decimal → float), recursively."""
    from decimal import Decimal

    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def op_key(op: DocumentOp) -> str:
    return f"{op.id.index}/{op.id.render()}"


# ---------------------------------------------------------------------------
# SQL helpers (async, so the engine's loop keeps running while they wait)
# ---------------------------------------------------------------------------


async def sql(url: str, statement: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cursor = await conn.execute(statement.encode() if params is None else statement, params)
        return await cursor.fetchall() if cursor.description else []


async def scalar(url: str, statement: str, params: Sequence[Any] | None = None) -> Any:
    rows = await sql(url, statement, params)
    return rows[0][0] if rows else None


async def insert_lsn(url: str) -> int:
    """A WAL position at or after the end of everything committed so far.

    The insert position sits past a page header when the last record ended on a
    page boundary; a transaction's end LSN never does, so step back over it.
    """
    lsn = parse_lsn(await scalar(url, "SELECT pg_current_wal_insert_lsn()::text"))
    if lsn % WAL_SEGMENT == 40:
        return lsn - 40
    if lsn % WAL_PAGE == 24:
        return lsn - 24
    return lsn


async def slot_confirmed(url: str, slot: str) -> int | None:
    text = await scalar(
        url, "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
        (slot,),
    )
    return parse_lsn(text) if text else None


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(0.02)


# ---------------------------------------------------------------------------
# Sink with bookkeeping and fault injection
# ---------------------------------------------------------------------------


class RecordingSink(InMemorySink):
    """An InMemorySink whose flushes can be made to fail or pause on demand.

    `fail_next(n)` makes the next n flushes raise (dropping their buffer);
    `before_flush` is awaited at the start of every flush (a gate or a delay).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._failures = 0
        self.before_flush: Callable[[Sequence[DocumentOp]], Any] | None = None
        self.failed_flushes = 0

    def fail_next(self, count: int = 1) -> None:
        self._failures = count

    async def flush(self, caught_up: bool) -> FlushReport:
        if self.before_flush is not None:
            await self.before_flush(self.pending)
        if self._failures > 0:
            self._failures -= 1
            self.failed_flushes += 1
            self._drop_pending()
            raise SinkWriteError("injected flush failure")
        return await super().flush(caught_up)

    def _drop_pending(self) -> None:
        # A failed flush loses its buffer, as a real bulk request would.
        self._pending = []


class BatchRecorder(NullObserver):
    """Keeps every BatchStats (and quarantine events) the pipeline reports."""

    def __init__(self) -> None:
        self.batches: list[BatchStats] = []
        self.quarantined: list[tuple[str, str, str]] = []
        self.errors: list[str] = []
        self.probes: list[tuple[str, dict[str, Any]]] = []
        self.status: LiveStatus | None = None

    def on_batch_committed(self, stats: BatchStats) -> None:
        self.batches.append(stats)
        self._probe("batch")

    def on_backfill_started(self, indexes: Sequence[str]) -> None:
        self._probe("backfill_started")

    def on_live_started(self) -> None:
        self._probe("live_started")

    def on_document_quarantined(self, index: str, id: str, reason: str) -> None:
        self.quarantined.append((index, id, reason))

    def on_error(self, message: str) -> None:
        self.errors.append(message)

    def _probe(self, event: str) -> None:
        if self.status is not None:
            self.probes.append((event, self.status.snapshot()))


# ---------------------------------------------------------------------------
# Ack tracking (restart and delivery tests)
# ---------------------------------------------------------------------------


@dataclass
class TrackedChange:
    change: Change
    end_lsn: int
    delivered_at_flush: int  # successful flushes so far when the change was delivered
    confirmed: bool = False
    confirmed_at_flush: int | None = None


class _TrackedAck:
    def __init__(self, inner: Any, record: TrackedChange, flush_count: Callable[[], int]) -> None:
        self._inner = inner
        self._record = record
        self._flush_count = flush_count

    def confirm(self) -> None:
        self._inner.confirm()
        self._record.confirmed = True
        self._record.confirmed_at_flush = self._flush_count()


class TrackingCapture:
    """Delegates to a PostgresChangeCapture and records every live change and its ack."""

    def __init__(self, inner: PostgresChangeCapture, flush_count: Callable[[], int]) -> None:
        self.inner = inner
        self._flush_count = flush_count
        self.delivered: list[TrackedChange] = []
        self.on_snapshot_change: Callable[[int], Any] | None = None

    async def prepare(self) -> None:
        await self.inner.prepare()

    def live(self) -> AsyncIterator[Change]:
        return self._live()

    async def _live(self) -> AsyncIterator[Change]:
        stream = self.inner.live()
        try:
            async for change in stream:
                record = TrackedChange(
                    change, int(getattr(change.ack, "end_lsn", 0)), self._flush_count()
                )
                self.delivered.append(record)
                yield Change(change.event, _TrackedAck(change.ack, record, self._flush_count))
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    def snapshot(self, tables: Sequence[TableRef]) -> AsyncIterator[Change]:
        return self._snapshot(tables)

    async def _snapshot(self, tables: Sequence[TableRef]) -> AsyncIterator[Change]:
        stream = self.inner.snapshot(tables)
        count = 0
        try:
            async for change in stream:
                count += 1
                if self.on_snapshot_change is not None:
                    await self.on_snapshot_change(count)
                yield change
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    async def lag(self) -> int | None:
        return await self.inner.lag()

    async def stop(self) -> None:
        await self.inner.stop()

    async def close(self) -> None:
        await self.inner.close()

    def unconfirmed_min_lsn(self) -> int | None:
        pending = [r.end_lsn for r in self.delivered if not r.confirmed]
        return min(pending) if pending else None


# ---------------------------------------------------------------------------
# The engine under test
# ---------------------------------------------------------------------------


@dataclass
class Engine:
    url: str
    deployment: Deployment
    sink: RecordingSink = field(default_factory=RecordingSink)
    slot: str = field(default_factory=lambda: unique_name("slot"))
    publication: str = field(default_factory=lambda: unique_name("pub"))
    status_interval: float = 0.2
    skip_backfill: bool = False
    max_changes: int = 256
    backfill_max_changes: int = 1000
    max_delay: float = 0.05
    manage_publication: bool | None = None
    on_error: Callable[[str], Any] | None = None
    capture_kwargs: dict[str, Any] = field(default_factory=dict)
    pipeline_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.status = LiveStatus([i.name for i in self.deployment.enabled_indexes()])
        self.recorder = BatchRecorder()
        self.recorder.status = self.status
        self.task: asyncio.Task[None] | None = None
        self.capture: TrackingCapture | None = None
        self.builder: PostgresDocumentBuilder | None = None
        self.pipeline: SyncPipeline | None = None
        self._oracle: PostgresDocumentBuilder | None = None
        self.runs = 0

    # -- lifecycle ----------------------------------------------------------

    async def start(self, *, wait_live: bool = True, timeout: float = 15.0) -> Engine:
        inner = PostgresChangeCapture(
            self.url, self.deployment, slot=self.slot, publication=self.publication,
            manage_publication=self.manage_publication, status_interval=self.status_interval,
            **self.capture_kwargs,
        )
        self.capture = TrackingCapture(inner, lambda: len(self.sink.flushes))
        self.builder = PostgresDocumentBuilder(self.url, self.deployment)
        await self.builder.open()
        on_error = self.on_error or self.deployment.on_error_for
        self.status.begin_run()
        self.pipeline = SyncPipeline(
            self.capture, self.builder, self.sink,
            CompositeObserver(self.status, self.recorder),
            on_error=on_error, max_changes=self.max_changes,
            backfill_max_changes=self.backfill_max_changes, max_delay=self.max_delay,
            skip_backfill=self.skip_backfill, lag_poll_secs=0.2, **self.pipeline_kwargs,
        )
        self.runs += 1
        self.task = asyncio.create_task(self.pipeline.run(), name=f"engine-{self.slot}")
        if wait_live:
            await self.wait_live(timeout)
        return self

    async def wait_live(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while self.status.phase != "live":
            if self.task is not None and self.task.done():
                self.task.result()
                raise AssertionError("the run ended before going live")
            if time.monotonic() > deadline:
                raise AssertionError(f"not live after {timeout}s: {self.status.snapshot()}")
            await asyncio.sleep(0.02)
        # live() was called; wait until the replication stream is actually open.
        while self.capture is not None and self.capture.inner._stream is None:
            if time.monotonic() > deadline:
                raise AssertionError("replication stream did not open")
            await asyncio.sleep(0.02)

    async def stop(self, graceful: bool = True) -> None:
        if self.pipeline is not None and self.task is not None and not self.task.done():
            await self.pipeline.stop(graceful=graceful)
        await self._reap()

    async def crash(self) -> None:
        """Cancel the run abruptly: no drain, no final status update."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
        await self._reap()

    async def _reap(self) -> None:
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)
        if self.capture is not None:
            await self.capture.close()
        if self.builder is not None:
            await self.builder.close()
        self.status.end_run()

    async def failure(self, timeout: float = 15.0) -> BaseException:
        """Wait for the run to stop with an error and return it."""
        assert self.task is not None
        done, _ = await asyncio.wait({self.task}, timeout=timeout)
        if not done:
            raise AssertionError(f"the run did not stop within {timeout}s")
        error = self.task.exception()
        if error is None:
            raise AssertionError("the run ended without an error")
        await self._reap()
        return error

    async def close(self) -> None:
        await self.stop(graceful=False)
        if self._oracle is not None:
            await self._oracle.close()
            self._oracle = None

    # -- observing ----------------------------------------------------------

    def mark(self) -> int:
        return len(self.sink.flushes)

    def ops_since(self, mark: int) -> list[DocumentOp]:
        return [op for ops, _ in self.sink.flushes[mark:] for op in ops]

    def last_ops_since(self, mark: int) -> dict[str, DocumentOp]:
        return {op_key(op): op for op in self.ops_since(mark)}

    def confirmed(self) -> int:
        assert self.capture is not None
        value = self.capture.inner.confirmed_lsn
        return value if value is not None else 0

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait until every change committed so far is flushed and confirmed."""
        target = await insert_lsn(self.url)
        deadline = time.monotonic() + timeout
        while self.confirmed() < target:
            if self.task is not None and self.task.done():
                self.task.result()
                raise AssertionError("the run ended while settling")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"confirmed LSN {self.confirmed():X} did not reach {target:X} in {timeout}s"
                )
            await asyncio.sleep(0.02)

    async def run_sql(self, statement: str) -> int:
        """Run SQL and return the flush mark from before it."""
        mark = self.mark()
        await sql(self.url, statement)
        return mark

    async def apply(self, statement: str) -> dict[str, DocumentOp]:
        """Run SQL, settle, and return the last operation per document since it."""
        mark = await self.run_sql(statement)
        await self.settle()
        return self.last_ops_since(mark)

    async def oracle(self) -> PostgresDocumentBuilder:
        if self._oracle is None:
            self._oracle = PostgresDocumentBuilder(self.url, self.deployment)
            await self._oracle.open()
        return self._oracle

    async def build(self, *keys: str) -> dict[str, Any]:
        """Fresh bodies (None when no document) for keys like `users/1`."""
        ids = [document_id(self.deployment, key) for key in keys]
        ops = await (await self.oracle()).build_many(ids)
        return {op_key(op): plain(op.document) if isinstance(op, Upsert) else None for op in ops}

    async def check(
        self,
        ops: Mapping[str, DocumentOp],
        expected: Mapping[str, Any],
        *,
        exact: bool = True,
        absent: Iterable[str] = (),
    ) -> None:
        """Each expected key's last op: None = delete, REBUILT = fresh build, dict = that body."""
        got = {k: plain(op.document) if isinstance(op, Upsert) else None for k, op in ops.items()}
        missing = [k for k in expected if k not in got]
        assert not missing, f"no operation for {missing}; got {sorted(got)}"
        fresh = await self.build(*[k for k, v in expected.items() if v is REBUILT])
        for key, want in expected.items():
            if want is REBUILT:
                assert isinstance(ops[key], Upsert), f"{key}: expected an upsert, got a delete"
                assert got[key] == fresh[key], f"{key}: {got[key]} != rebuilt {fresh[key]}"
            elif want is None:
                assert isinstance(ops[key], Delete), f"{key}: expected a delete, got {got[key]}"
            else:
                assert isinstance(ops[key], Upsert), f"{key}: expected an upsert, got a delete"
                assert got[key] == plain(want), f"{key}: {got[key]} != {want}"
        if exact:
            extra = sorted(set(got) - set(expected))
            assert not extra, f"unexpected operations for {extra}"
        for key in absent:
            assert key not in got, f"{key} should not have been written"

    async def full_rebuild(self) -> dict[str, dict[str, Any]]:
        """Every index's documents built afresh from every root row: `{index: {id: body}}`."""
        expected: dict[str, dict[str, Any]] = {}
        builder = await self.oracle()
        for index in self.deployment.enabled_indexes():
            schema = index.schema
            assert schema.primary_key is not None
            oid = await scalar(
                self.url,
                "SELECT atttypid::int FROM pg_attribute WHERE attrelid = %s::regclass "
                "AND attname = %s",
                (f'"{schema.db_schema}"."{schema.table}"', schema.primary_key),
            )
            rows = await sql(
                self.url,
                f'SELECT "{schema.primary_key}"::text FROM "{schema.db_schema}"."{schema.table}"',
            )
            ids = [DocumentId(index.name, (canonical_key_value(oid, r[0]),)) for r in rows]
            ops = await builder.build_many(ids) if ids else []
            expected[index.name] = {
                op.id.render(): plain(op.document) for op in ops if isinstance(op, Upsert)
            }
        return expected

    def sink_documents(self) -> dict[str, dict[str, Any]]:
        return {
            i.name: plain(self.sink.documents(i.name)) for i in self.deployment.enabled_indexes()
        }

    async def assert_converged(self) -> None:
        await self.settle()
        want = await self.full_rebuild()
        got = self.sink_documents()
        for index in want:
            extra = sorted(set(got[index]) - set(want[index]))
            missing = sorted(set(want[index]) - set(got[index]))
            wrong = sorted(
                k for k in set(want[index]) & set(got[index]) if want[index][k] != got[index][k]
            )
            assert not (extra or missing or wrong), (
                f"index {index}: extra {extra[:10]}, missing {missing[:10]}, "
                f"differing {wrong[:10]}"
                + (f"; e.g. {wrong[0]}: sink {got[index][wrong[0]]} != db {want[index][wrong[0]]}"
                   if wrong else "")
            )


def document_id(deployment: Deployment, key: str) -> DocumentId:
    """`users/1` → DocumentId("users", (1,)); integer-looking keys become ints."""
    index, _, rendered = key.partition("/")
    value: Any = int(rendered) if rendered.lstrip("-").isdigit() else rendered
    return DocumentId(index, (value,))
