"""Under a backlog the pipeline builds the next batch while the previous flush is in flight.

Ordering and delivery must not change (engine spec §2.4–§2.5): one flush at a
time, writes in batch order, each batch confirmed only after its own flush,
nothing of a failed batch confirmed, and the commit gate of an online rebuild
still finds no batch between resolve and flush.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from flusso.adapters.fakes.builder import InMemoryDocumentBuilder, InMemoryIndex
from flusso.adapters.fakes.capture import InMemoryChangeCapture
from flusso.adapters.fakes.sink import InMemorySink
from flusso.app.pipeline.engine import SyncPipeline
from flusso.app.ports import FlushReport, SinkWriteError, SourceError
from flusso.app.status import NullObserver
from flusso.domain.documents.change import ChangeEvent, DocumentId, DocumentOp, TableRef

USERS = TableRef("public", "users")


def key(value: Any) -> tuple[tuple[str, Any], ...]:
    return (("id", value),)


class Journal:
    """One ordered log of what the builder and the sink were asked to do."""

    def __init__(self) -> None:
        self.entries: list[str] = []

    def add(self, entry: str) -> None:
        self.entries.append(entry)

    def index(self, entry: str) -> int:
        return self.entries.index(entry)


class RecordingBuilder(InMemoryDocumentBuilder):
    def __init__(self, journal: Journal, fail_build: int | None = None) -> None:
        super().__init__([InMemoryIndex("users", USERS)])
        self.journal = journal
        self.fail_build = fail_build  # 1-based number of the build_many call to fail

    async def build_many(self, ids: Sequence[DocumentId]) -> list[DocumentOp]:
        number = len(self.built) + 1
        self.journal.add(f"build {number}")
        if number == self.fail_build:
            self.built.append(tuple(ids))
            raise SourceError("injected build failure")
        return await super().build_many(ids)


class RecordingSink(InMemorySink):
    """Logs writes and flushes; `gate` holds every flush until the test opens it."""

    def __init__(self, journal: Journal, capture: InMemoryChangeCapture, **kwargs: Any) -> None:
        super().__init__(seeded=["users"], **kwargs)
        self.journal = journal
        self.capture = capture
        self.gate = asyncio.Event()
        self.gate.set()
        self.writes = 0
        self.flush_calls = 0
        self.confirmed_at_flush: list[int] = []

    async def write(self, ops: Sequence[DocumentOp]) -> None:
        self.writes += 1
        self.journal.add(f"write {self.writes}")
        await super().write(ops)

    async def flush(self, caught_up: bool) -> FlushReport:
        self.flush_calls += 1
        number = self.flush_calls
        self.confirmed_at_flush.append(self.capture.durable_position)
        self.journal.add(f"flush {number} sent")
        await self.gate.wait()
        report = await super().flush(caught_up)
        self.journal.add(f"flush {number} returned")
        return report


class Setup:
    def __init__(self, *, fail_build: int | None = None, fail_flushes: int = 0) -> None:
        self.journal = Journal()
        self.builder = RecordingBuilder(self.journal, fail_build)
        self.capture = InMemoryChangeCapture()
        for uid in range(1, 7):
            self.builder.put_row(USERS, key(uid), {"id": uid})
        self.capture.set_rows(USERS, self.builder.keys(USERS))
        self.sink = RecordingSink(self.journal, self.capture, fail_flushes=fail_flushes)
        self.engine = SyncPipeline(
            self.capture,
            self.builder,
            self.sink,
            NullObserver(),
            on_error=lambda index: "stop",
            skip_backfill=True,
            max_changes=2,
        )

    def touch(self, *uids: int) -> None:
        for uid in uids:
            self.capture.push(ChangeEvent("upsert", USERS, key(uid)))


async def until(condition: Callable[[], bool]) -> None:
    async def spin() -> None:
        while not condition():
            await asyncio.sleep(0)

    await asyncio.wait_for(spin(), timeout=5)


async def test_the_next_batch_is_built_during_the_flush_and_written_only_after_it_returned():
    s = Setup()
    s.touch(1, 2, 3, 4, 5, 6)
    s.capture.end_stream()
    s.sink.gate.clear()
    run = asyncio.create_task(s.engine.run())

    await until(lambda: len(s.builder.built) == 2)
    assert s.sink.flush_calls == 1  # the first flush is still in flight
    assert s.sink.writes == 1
    s.sink.gate.set()
    await run

    log = s.journal
    assert log.index("flush 1 sent") < log.index("build 2") < log.index("flush 1 returned")
    assert log.index("flush 1 returned") < log.index("write 2") < log.index("flush 2 sent")
    assert log.index("flush 2 returned") < log.index("write 3")
    assert s.sink.confirmed_at_flush == [0, 2, 4]
    assert [caught_up for _, caught_up in s.sink.flushes] == [False, False, True]
    assert s.capture.durable_position == 6


async def test_a_failed_flush_confirms_nothing_and_never_writes_the_batch_built_ahead():
    s = Setup(fail_flushes=1)
    s.touch(1, 2, 3, 4)
    s.capture.end_stream()

    with pytest.raises(SinkWriteError):
        await s.engine.run()

    assert s.sink.writes == 1
    assert s.capture.durable_position == 0
    assert len(s.capture.unconfirmed()) == 4


async def test_a_build_failure_ahead_stops_the_run_after_the_previous_batch_is_confirmed():
    s = Setup(fail_build=2)
    s.touch(1, 2, 3, 4)
    s.capture.end_stream()

    with pytest.raises(SourceError, match="injected build failure"):
        await s.engine.run()

    assert s.sink.flush_calls == 1
    assert s.capture.durable_position == 2
    assert [e.key for e in s.capture.unconfirmed()] == [key(3), key(4)]


async def test_at_idle_nothing_is_built_ahead_of_the_flush():
    s = Setup()
    s.sink.gate.clear()
    run = asyncio.create_task(s.engine.run())
    s.touch(1)
    await until(lambda: s.sink.flush_calls == 1)
    s.touch(2)  # arrives while the first flush is in flight; the queue was empty
    for _ in range(20):
        await asyncio.sleep(0)
    assert len(s.builder.built) == 1
    s.sink.gate.set()
    await until(lambda: s.capture.durable_position == 2)
    s.capture.end_stream()
    await run

    assert s.journal.index("flush 1 returned") < s.journal.index("build 2")


async def test_a_waiting_rebuild_gets_the_gate_once_the_batches_taken_are_committed():
    s = Setup()
    s.touch(1, 2, 3, 4, 5, 6)
    s.capture.end_stream()
    s.sink.gate.clear()
    run = asyncio.create_task(s.engine.run())
    await until(lambda: len(s.builder.built) == 2)  # batch 2 is prepared ahead

    seen: dict[str, int] = {}

    async def rebuild_step() -> None:
        async with s.engine.between_batches():
            seen["resolved"] = len(s.builder.resolved)
            seen["flushed"] = len(s.sink.flushes)
            seen["durable"] = s.capture.durable_position

    waiter = asyncio.create_task(rebuild_step())
    await asyncio.sleep(0)
    s.sink.gate.set()
    await waiter
    await run

    # Inside the gate: every batch resolved so far was flushed and confirmed, and
    # the third batch was not taken while the rebuild waited.
    assert seen == {"resolved": 2, "flushed": 2, "durable": 4}
    assert s.capture.durable_position == 6


async def test_a_graceful_stop_under_a_backlog_commits_the_open_batch_only():
    s = Setup()
    s.touch(1, 2, 3, 4)
    s.sink.gate.clear()
    run = asyncio.create_task(s.engine.run())
    await until(lambda: len(s.builder.built) == 2)

    stopping = asyncio.create_task(s.engine.stop())
    await asyncio.sleep(0)
    s.sink.gate.set()
    await stopping
    await run

    assert s.sink.writes == 1
    assert s.capture.durable_position == 2
    assert [e.key for e in s.capture.unconfirmed()] == [key(3), key(4)]
