"""The ChangeCapture contract, held by the in-memory fake and the Postgres capture alike.

One fixture, parametrised over both, yields a harness: a way to (re)open the
capture as a restarted process would, and a way to commit a row to its source.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import psycopg
import pytest

from flusso.adapters.fakes.capture import InMemoryChangeCapture
from flusso.app.ports import Change, ChangeCapture
from flusso.domain.config.model import (
    ColumnSource,
    Deployment,
    Field,
    IndexConfig,
    IndexSchema,
    SourceConfig,
)
from flusso.domain.documents.change import ChangeEvent, TableRef

ITEMS = TableRef("public", "items")


def unique_name(prefix: str) -> str:
    # Same scheme as tests/conftest.py; imported names would clash between conftest files.
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@dataclass
class Harness:
    open_capture: Callable[[], ChangeCapture]
    """A capture as a (re)started process gets it: same slot, fresh state."""
    insert: Callable[[int], Awaitable[None]]
    """Commit one `items` row with this id."""


@pytest.fixture(params=["memory", "postgres"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    if request.param == "memory":
        capture = InMemoryChangeCapture()
        keys: list[tuple[tuple[str, object], ...]] = []

        async def insert_memory(id: int) -> None:
            keys.append((("id", id),))
            capture.set_rows(ITEMS, keys)
            capture.push(ChangeEvent("upsert", ITEMS, (("id", id),), new={"id": id}))

        yield Harness(lambda: capture, insert_memory)
        return

    module = pytest.importorskip("flusso.adapters.postgres.capture")
    url: str = request.getfixturevalue("pg_url")
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("CREATE TABLE items (id int PRIMARY KEY, label text)")
        slot, publication = unique_name("slot"), unique_name("pub")
        opened: list[ChangeCapture] = []

        def open_postgres() -> ChangeCapture:
            capture = module.PostgresChangeCapture(
                url, _deployment(), slot=slot, publication=publication
            )
            opened.append(capture)
            return capture

        async def insert_postgres(id: int) -> None:
            await conn.execute("INSERT INTO items VALUES (%s, 'x')", (id,))

        try:
            yield Harness(open_postgres, insert_postgres)
        finally:
            for capture in opened:
                await capture.close()


def _deployment() -> Deployment:
    schema = IndexSchema(
        table="items",
        fields=(Field("id", ColumnSource("id", "integer", False)),),
        primary_key="id",
    )
    return Deployment(
        source=SourceConfig(),
        indexes=(IndexConfig(name="items", enabled=True, schema=schema),),
    )


async def take(stream: AsyncIterator[Change], count: int) -> list[Change]:
    async def collect() -> list[Change]:
        changes: list[Change] = []
        async for change in stream:
            changes.append(change)
            if len(changes) == count:
                break
        return changes

    return await asyncio.wait_for(collect(), timeout=30)


async def finish(capture: ChangeCapture, stream: AsyncIterator[Change]) -> None:
    """A graceful end of one run: stop (final position sent), then release the stream."""
    await capture.stop()
    await stream.aclose()  # type: ignore[attr-defined]


def ids(changes: list[Change]) -> list[object]:
    return [dict(change.event.key)["id"] for change in changes]


async def test_prepare_can_run_on_every_start(harness: Harness):
    capture = harness.open_capture()
    await capture.prepare()
    await capture.prepare()
    stream = capture.live()

    await harness.insert(1)
    changes = await take(stream, 1)
    await finish(capture, stream)

    assert ids(changes) == [1]


async def test_live_yields_an_upsert_naming_each_inserted_row(harness: Harness):
    capture = harness.open_capture()
    await capture.prepare()
    stream = capture.live()

    for id in (1, 2, 3):
        await harness.insert(id)
    changes = await take(stream, 3)
    await finish(capture, stream)

    assert [(c.event.kind, c.event.table, c.event.key) for c in changes] == [
        ("upsert", ITEMS, (("id", 1),)),
        ("upsert", ITEMS, (("id", 2),)),
        ("upsert", ITEMS, (("id", 3),)),
    ]


async def test_confirmed_changes_are_not_redelivered_after_a_restart(harness: Harness):
    capture = harness.open_capture()
    await capture.prepare()
    stream = capture.live()
    await harness.insert(1)
    await harness.insert(2)
    for change in await take(stream, 2):
        change.ack.confirm()
    await finish(capture, stream)

    restarted = harness.open_capture()
    await restarted.prepare()
    stream = restarted.live()
    await harness.insert(3)
    changes = await take(stream, 1)
    await finish(restarted, stream)

    assert ids(changes) == [3]


async def test_unconfirmed_changes_are_redelivered_after_a_restart(harness: Harness):
    capture = harness.open_capture()
    await capture.prepare()
    stream = capture.live()
    await harness.insert(1)
    await harness.insert(2)
    first = await take(stream, 2)
    await finish(capture, stream)

    restarted = harness.open_capture()
    await restarted.prepare()
    stream = restarted.live()
    again = await take(stream, 2)
    await finish(restarted, stream)

    assert ids(first) == ids(again) == [1, 2]
    assert [c.xid for c in first] == [c.xid for c in again]  # the same transactions


async def test_each_live_change_names_the_transaction_that_committed_it(harness: Harness):
    capture = harness.open_capture()
    await capture.prepare()
    stream = capture.live()
    for id in (1, 2, 3):
        await harness.insert(id)  # one transaction each
    changes = await take(stream, 3)
    await finish(capture, stream)

    xids = [change.xid for change in changes]
    assert all(isinstance(xid, int) and xid > 0 for xid in xids)
    assert len(set(xids)) == 3


async def test_snapshot_yields_one_upsert_per_existing_row(harness: Harness):
    capture = harness.open_capture()
    await capture.prepare()
    for id in (5, 6):
        await harness.insert(id)

    changes = [change async for change in capture.snapshot([ITEMS])]
    for change in changes:
        change.ack.confirm()  # a no-op ack: harmless

    assert sorted(ids(changes)) == [5, 6]
    assert {(c.event.kind, c.event.table) for c in changes} == {("upsert", ITEMS)}
    assert {c.xid for c in changes} == {None}  # snapshot rows are already visible
