"""The online reindex coordinator against the in-memory sink, journal, capture and builder,
with a real SyncPipeline following live changes the whole time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

from flusso.adapters.fakes.builder import InMemoryDocumentBuilder, InMemoryIndex
from flusso.adapters.fakes.capture import InMemoryChangeCapture
from flusso.adapters.fakes.journal import InMemoryJournal
from flusso.adapters.fakes.sink import InMemorySink
from flusso.app.pipeline.engine import SyncPipeline
from flusso.app.ports import FlushReport, SinkWriteError
from flusso.app.services.reindex import ReindexBusyError, ReindexCoordinator
from flusso.app.services.startup import reconcile_on_start
from flusso.app.status import NullObserver
from flusso.domain.documents.change import ChangeEvent, TableRef
from flusso.domain.lifecycle import EventKind, LifecycleEvent, State, check_invariants
from flusso.domain.reindex import plan_alias_swap

USERS = TableRef("public", "users")
ORDERS = TableRef("public", "orders")
H = "00000000"  # the in-memory builder's mapping hash
USERS_ALIAS = f"users_{H}"


def key(value: Any) -> tuple[tuple[str, Any], ...]:
    return (("id", value),)


class GatedSink(InMemorySink):
    """Can hold the rebuild's generation flushes until the test opens `gate`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(sink_name="primary", **kwargs)
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = asyncio.Event()
        self.fail_generation_flushes = 0

    async def flush_generations(self) -> FlushReport:
        self.waiting.set()
        await self.gate.wait()
        if self.fail_generation_flushes:
            self.fail_generation_flushes -= 1
            await super().flush_generations()  # dropped, like a failed bulk
            raise SinkWriteError("injected generation flush failure")
        return await super().flush_generations()


class World:
    """Rows for `users` and `orders`, both served from generation 1, a live pipeline."""

    def __init__(self, sink: GatedSink | None = None) -> None:
        self.builder = InMemoryDocumentBuilder(
            [InMemoryIndex("orders", ORDERS), InMemoryIndex("users", USERS)]
        )
        self.capture = InMemoryChangeCapture()
        self.sink = sink or GatedSink()
        self.journal = InMemoryJournal()
        for uid in range(1, 6):
            self.put(USERS, uid, commit=False, name=f"user {uid}", version=0)
        for oid in (10, 11):
            self.put(ORDERS, oid, commit=False, total=oid)
        self.pipeline = SyncPipeline(
            self.capture,
            self.builder,
            self.sink,
            NullObserver(),
            on_error=lambda index: "stop",
            skip_backfill=True,
        )
        self.coordinator = ReindexCoordinator(
            self.journal,
            [self.sink],
            self.builder,
            self.capture,
            self.pipeline,
            chunk_size=2,
        )
        self.task: asyncio.Task[None] | None = None

    def put(self, table: TableRef, id: Any, *, commit: bool = True, **row: Any) -> None:
        self.builder.put_row(table, key(id), {"id": id, **row})
        self.capture.set_rows(table, self.builder.keys(table))
        if commit:
            self.capture.push(ChangeEvent("upsert", table, key(id)))

    def delete(self, table: TableRef, id: Any) -> None:
        self.builder.delete_row(table, key(id))
        self.capture.set_rows(table, self.builder.keys(table))
        self.capture.push(ChangeEvent("delete", table, key(id)))

    async def serve_generation_one(self) -> None:
        """What a finished first build leaves behind: gen 1 seeded behind both aliases."""
        for mapping in self.builder.index_mappings():
            names = self.sink.index_names(mapping)
            gen = names.generation(1)
            await self.sink.create_generation(mapping, gen)
            ids = [i for i in await self._all_ids() if i.index == mapping.index]
            await self.sink.write_generation(gen, await self.builder.build_many(ids))
            await self.sink.flush_generations()
            await self.sink.swap_aliases(
                (
                    *plan_alias_swap(names.hash_alias, (), gen),
                    *plan_alias_swap(names.bare_alias, (), gen),
                )
            )
            await self.sink.write_marker(names.hash_alias, 1, True)
            self.sink.route_writes(mapping.index, (gen,))
        await reconcile_on_start(self.journal, [self.sink], self.builder.index_mappings())

    async def _all_ids(self) -> list[Any]:
        events = [
            ChangeEvent("upsert", table, k)
            for table in (USERS, ORDERS)
            for k in self.builder.keys(table)
        ]
        return await self.builder.resolve(events, roots_only=True)

    async def start(self) -> World:
        await self.serve_generation_one()
        self.task = asyncio.create_task(self.pipeline.run())
        await until(lambda: self.capture.live_calls > 0)
        return self

    async def settle(self) -> None:
        await until(lambda: not self.capture.unconfirmed())

    async def expected(self, index: str) -> dict[str, dict[str, Any]]:
        table = USERS if index == "users" else ORDERS
        ids = await self.builder.resolve(
            [ChangeEvent("upsert", table, k) for k in self.builder.keys(table)], roots_only=True
        )
        return {op.id.render(): op.document for op in await self.builder.build_many(ids)}

    async def close(self) -> None:
        self.sink.gate.set()
        await self.coordinator.close()
        await self.pipeline.stop(graceful=False)
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)

    async def events(self) -> list[str]:
        return [str(r.event) for r in await self.journal.events("primary", USERS_ALIAS)]


async def until(condition: Callable[[], bool]) -> None:
    async def spin() -> None:
        while not condition():
            await asyncio.sleep(0.001)

    await asyncio.wait_for(spin(), timeout=5)


@pytest.fixture
async def world():
    w = World()
    await w.start()
    try:
        yield w
    finally:
        await w.close()


REINDEX_EVENTS = [
    "reindex_requested",
    "reindex_staged",
    "generation_created",
    "backfill_started",
    "swap_started",
    "alias_swapped",
    "generations_dropped",
    "seeded",
]


async def test_a_reindex_swaps_both_aliases_in_one_call_to_a_fresh_generation_and_drops_the_old(
    world,
):
    await world.coordinator.reindex("users")

    sink = world.sink
    assert sink.alias_holders(USERS_ALIAS) == [f"{USERS_ALIAS}_2"]
    assert sink.alias_holders("users") == [f"{USERS_ALIAS}_2"]
    assert [n for n in sink.generation_names() if n.startswith(USERS_ALIAS)] == [f"{USERS_ALIAS}_2"]
    assert sink.marker(USERS_ALIAS) == (2, True)
    assert sink.refresh_intervals[f"{USERS_ALIAS}_2"] == "1s"
    swap = sink.alias_calls[-1]
    assert {(a.action, a.alias) for a in swap} == {
        ("remove", USERS_ALIAS),
        ("add", USERS_ALIAS),
        ("remove", "users"),
        ("add", "users"),
    }
    assert sink.documents("users") == await world.expected("users")
    assert await world.events() == ["reconciled", *REINDEX_EVENTS]
    row = await world.journal.current("primary", USERS_ALIAS)
    assert row is not None and row.lifecycle.state is State.SERVING
    assert row.lifecycle.serving_generation == 2
    check_invariants(row.lifecycle)
    # Live writes now go to the new generation only; other indexes were never touched.
    assert sink.write_targets("users") == (f"{USERS_ALIAS}_2",)
    assert sink.alias_holders(f"orders_{H}") == [f"orders_{H}_1"]


async def test_live_changes_during_the_rebuild_reach_both_generations_and_no_stale_write_survives(
    world,
):
    sink = world.sink
    sink.gate.clear()
    sink.waiting.clear()
    task = asyncio.create_task(world.coordinator.reindex("users"))
    # The backfill has built its first chunk (users 1 and 2) and waits to flush it.
    await asyncio.wait_for(sink.waiting.wait(), 5)
    world.put(USERS, 1, name="renamed", version=1)
    world.delete(USERS, 2)
    world.put(USERS, 501, name="new", version=1)
    world.put(ORDERS, 10, total=99)
    await world.settle()
    # Live sync went on for every index while the backfill was held ...
    serving = sink.generation_documents(f"{USERS_ALIAS}_1")
    assert serving is not None and serving["1"]["name"] == "renamed" and "2" not in serving
    assert sink.documents("orders")["10"]["total"] == 99
    # ... and reached the new generation too.
    target = sink.generation_documents(f"{USERS_ALIAS}_2")
    assert target is not None and target["501"]["name"] == "new"
    # Now the backfill's stale chunk (user 1 before the rename, user 2 before the delete) lands.
    sink.gate.set()
    await asyncio.wait_for(task, 5)

    docs = sink.documents("users")
    assert docs == await world.expected("users")
    assert docs["1"]["name"] == "renamed" and "2" not in docs and "501" in docs
    assert f"{USERS_ALIAS}_1" not in sink.generation_names()


async def test_a_second_request_while_a_rebuild_runs_is_refused_and_only_one_generation_is_made(
    world,
):
    sink = world.sink
    sink.gate.clear()
    sink.waiting.clear()
    task = asyncio.create_task(world.coordinator.reindex("users"))
    await asyncio.wait_for(sink.waiting.wait(), 5)

    assert await world.coordinator.is_busy("users")
    with pytest.raises(ReindexBusyError, match="^reindex of users already in progress$"):
        await world.coordinator.request("users")
    with pytest.raises(ReindexBusyError):
        await world.coordinator.reindex("users")
    assert not await world.coordinator.is_busy("orders")

    sink.gate.set()
    await asyncio.wait_for(task, 5)
    assert not await world.coordinator.is_busy("users")
    assert [n for n in sink.generation_names() if n.startswith(USERS_ALIAS)] == [f"{USERS_ALIAS}_2"]


async def test_a_journaled_request_is_pending_after_a_restart_and_its_rebuild_records_it_once(
    world,
):
    await world.coordinator.request("users")
    assert await world.coordinator.is_busy("users")

    report = await reconcile_on_start(world.journal, [world.sink], world.builder.index_mappings())
    assert report.pending_requests == ["users"]
    await world.coordinator.reindex("users")

    assert await world.events() == ["reconciled", *REINDEX_EVENTS]
    ops = {r.op_id for r in await world.journal.events("primary", USERS_ALIAS)} - {None}
    assert len(ops) == 1  # one operation from the request to the seeded marker


async def test_an_orphan_generation_is_skipped_over_and_dropped_with_the_old_one(world):
    sink = world.sink
    mapping = next(m for m in world.builder.index_mappings() if m.index == "users")
    await sink.create_generation(mapping, f"{USERS_ALIAS}_3")

    await world.coordinator.reindex("users")

    assert [n for n in sink.generation_names() if n.startswith(USERS_ALIAS)] == [f"{USERS_ALIAS}_4"]
    assert sink.alias_holders(USERS_ALIAS) == [f"{USERS_ALIAS}_4"]
    assert sink.marker(USERS_ALIAS) == (4, True)


async def test_a_refused_combined_alias_call_still_moves_the_hash_alias(world, caplog):
    world.sink.refuse_aliases.add("users")

    with caplog.at_level(logging.WARNING):
        await world.coordinator.reindex("users")

    assert world.sink.alias_holders(USERS_ALIAS) == [f"{USERS_ALIAS}_2"]
    assert world.sink.marker(USERS_ALIAS) == (2, True)
    assert "could not point the convenience alias" in caplog.text
    assert (await world.events())[-1] == "seeded"


async def test_a_failed_backfill_journals_run_failed_and_writes_go_back_to_the_serving_generation(
    world,
):
    world.sink.fail_generation_flushes = 1

    with pytest.raises(SinkWriteError, match="injected"):
        await world.coordinator.reindex("users")

    row = await world.journal.current("primary", USERS_ALIAS)
    assert row is not None and row.lifecycle.state is State.REINDEXING
    assert (await world.events())[-1] == "run_failed"
    assert world.sink.write_targets("users") == (f"{USERS_ALIAS}_1",)
    assert world.sink.alias_holders(USERS_ALIAS) == [f"{USERS_ALIAS}_1"]
    # Readers are still served, and live sync keeps the serving generation current.
    world.put(USERS, 3, name="after the failure", version=2)
    await world.settle()
    assert world.sink.documents("users")["3"]["name"] == "after the failure"
    assert await world.coordinator.is_busy("users")


async def test_start_up_reconciliation_records_what_the_sink_shows_and_retires_unknown_hashes():
    w = World()
    await w.journal.record(
        LifecycleEvent(
            sink="primary",
            logical="users",
            hash_alias="users_deadbeef",
            kind=EventKind.RECONCILED,
            derived=State.SERVING,
            serving_generation=1,
        )
    )
    await w.serve_generation_one()

    row = await w.journal.current("primary", USERS_ALIAS)
    assert row is not None and row.lifecycle.state is State.SERVING
    assert row.lifecycle.serving_generation == 1
    retired = await w.journal.current("primary", "users_deadbeef")
    assert retired is not None and retired.lifecycle.state is State.RETIRED
    # A second pass changes nothing.
    before = len(await w.journal.events())
    await reconcile_on_start(w.journal, [w.sink], w.builder.index_mappings())
    assert len(await w.journal.events()) == before


async def test_an_unknown_index_is_refused_with_a_lifecycle_error(world):
    with pytest.raises(Exception, match="unknown index nope"):
        await world.coordinator.reindex("nope")
