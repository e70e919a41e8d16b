"""The LiveWrites contract, held by the running `SyncPipeline` (over the in-memory capture,
builder and sink) and by `InMemoryLiveWrites` alike.

Each leg can commit a change to the index `users` and read back which documents were
written; listeners hear each batch's ids before its write, and nothing is written while
a caller holds the gate.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from flusso.adapters.fakes.builder import InMemoryDocumentBuilder, InMemoryIndex
from flusso.adapters.fakes.capture import InMemoryChangeCapture
from flusso.adapters.fakes.live import InMemoryLiveWrites
from flusso.adapters.fakes.sink import InMemorySink
from flusso.app.pipeline.engine import SyncPipeline
from flusso.app.ports import LiveWrites
from flusso.app.status import NullObserver
from flusso.domain.documents.change import ChangeEvent, DocumentId, TableRef

USERS = TableRef("public", "users")


@dataclass
class Leg:
    live: LiveWrites
    commit: Callable[[int], None]
    """Start committing one change to user `id` (returns at once)."""
    written: Callable[[], set[DocumentId]]


def doc(id: int) -> DocumentId:
    return DocumentId("users", (id,))


@pytest.fixture(params=["memory", "pipeline"])
async def leg(request: pytest.FixtureRequest) -> AsyncIterator[Leg]:
    tasks: list[asyncio.Task[None]] = []
    if request.param == "memory":
        fake = InMemoryLiveWrites()

        def commit_memory(id: int) -> None:
            tasks.append(asyncio.create_task(fake.commit([doc(id)])))

        yield Leg(fake, commit_memory, lambda: set(fake.written))
        await asyncio.gather(*tasks)
        return
    builder = InMemoryDocumentBuilder([InMemoryIndex("users", USERS)])
    capture = InMemoryChangeCapture()
    sink = InMemorySink()
    pipeline = SyncPipeline(
        capture, builder, sink, NullObserver(), on_error=lambda index: "stop", skip_backfill=True
    )

    def commit_pipeline(id: int) -> None:
        key = (("id", id),)
        builder.put_row(USERS, key, {"id": id})
        capture.push(ChangeEvent("upsert", USERS, key))

    def written() -> set[DocumentId]:
        return {doc(int(i)) for i in sink.documents("users")}

    run = asyncio.create_task(pipeline.run())
    try:
        yield Leg(pipeline, commit_pipeline, written)
    finally:
        await pipeline.stop(graceful=True)
        await asyncio.gather(run, return_exceptions=True)


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def test_a_listener_hears_every_batch_before_it_is_written(leg: Leg):
    heard: list[tuple[set[DocumentId], set[DocumentId]]] = []
    leg.live.add_write_listener(lambda ids: heard.append((set(ids), leg.written())))
    leg.commit(1)
    await until(lambda: doc(1) in leg.written())
    leg.commit(2)
    await until(lambda: doc(2) in leg.written())
    assert heard == [({doc(1)}, set()), ({doc(2)}, {doc(1)})]


async def test_a_removed_listener_hears_nothing_more_and_removing_twice_is_harmless(leg: Leg):
    heard: list[DocumentId] = []
    remove = leg.live.add_write_listener(heard.extend)
    other: list[DocumentId] = []
    leg.live.add_write_listener(other.extend)
    leg.commit(1)
    await until(lambda: doc(1) in leg.written())
    remove()
    remove()
    leg.commit(2)
    await until(lambda: doc(2) in leg.written())
    assert heard == [doc(1)]
    assert other == [doc(1), doc(2)]


async def test_nothing_is_written_while_the_gate_is_held(leg: Leg):
    leg.commit(1)
    await until(lambda: doc(1) in leg.written())
    async with leg.live.between_batches():
        leg.commit(2)
        for _ in range(20):
            await asyncio.sleep(0.005)
        assert leg.written() == {doc(1)}
    await until(lambda: doc(2) in leg.written())
    assert leg.written() == {doc(1), doc(2)}
