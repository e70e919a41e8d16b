"""The sync engine against the in-memory capture, builder and sink (engine spec §2, §5, §10 A/E)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from flusso.adapters.fakes.builder import InMemoryDocumentBuilder, InMemoryIndex
from flusso.adapters.fakes.capture import InMemoryChangeCapture
from flusso.adapters.fakes.sink import InMemorySink
from flusso.app.pipeline.engine import SyncPipeline
from flusso.app.ports import (
    BatchStats,
    DocumentsRejectedError,
    FlushReport,
    SinkWriteError,
    SourceError,
)
from flusso.app.status import CompositeObserver, LiveStatus
from flusso.domain.documents.change import ChangeEvent, Delete, DocumentId, TableRef, Upsert

USERS = TableRef("public", "users")
ORDERS = TableRef("public", "orders")


def key(value: Any) -> tuple[tuple[str, Any], ...]:
    return (("id", value),)


def users_index(name: str = "users") -> InMemoryIndex:
    return InMemoryIndex(
        name,
        USERS,
        related={ORDERS: "user_id"},
        where=lambda row: row["status"] != "banned" and not row["deleted"],
    )


class World:
    """The fixture database of engine spec §10, held by the builder and the capture."""

    def __init__(self, indexes: Sequence[InMemoryIndex] | None = None) -> None:
        self.builder = InMemoryDocumentBuilder(
            indexes if indexes is not None else [users_index(), InMemoryIndex("orders", ORDERS)]
        )
        self.capture = InMemoryChangeCapture()
        for uid, email, status, deleted in [
            (1, "ada@x.io", "active", False),
            (2, "bob@x.io", "active", False),
            (3, "cy@x.io", "banned", False),
            (4, "dee@x.io", "active", True),
        ]:
            self.put(USERS, uid, email=email, status=status, deleted=deleted, commit=False)
        for oid, uid in [(10, 1), (11, 1), (12, 2)]:
            self.put(ORDERS, oid, user_id=uid, commit=False)

    def put(self, table: TableRef, id: Any, *, commit: bool = True, **row: Any) -> None:
        self.builder.put_row(table, key(id), {"id": id, **row})
        self.capture.set_rows(table, self.builder.keys(table))
        if commit:
            self.capture.push(ChangeEvent("upsert", table, key(id), new={"id": id, **row}))

    def touch(self, table: TableRef, id: Any) -> None:
        """An UPDATE that changes nothing the document shows."""
        self.capture.push(ChangeEvent("upsert", table, key(id)))

    def delete(self, table: TableRef, id: Any) -> None:
        self.builder.delete_row(table, key(id))
        self.capture.set_rows(table, self.builder.keys(table))
        self.capture.push(ChangeEvent("delete", table, key(id)))


class Recorder:
    """Records observer events by name, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Callable[..., None]:
        if not name.startswith("on_"):
            raise AttributeError(name)
        return lambda *args: self.events.append((name, args))

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [args for event, args in self.events if event == name]


class GatedSink(InMemorySink):
    """Holds every flush until the test opens the gate; records the confirmed position at each flush."""

    def __init__(self, capture: InMemoryChangeCapture | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = asyncio.Event()
        self.gate.set()
        self.flushing = asyncio.Event()
        self.capture = capture
        self.confirmed_at_flush: list[int] = []

    async def flush(self, caught_up: bool) -> FlushReport:
        if self.capture is not None:
            self.confirmed_at_flush.append(self.capture.durable_position)
        self.flushing.set()
        await self.gate.wait()
        return await super().flush(caught_up)


def pipeline(
    world: World,
    sink: InMemorySink,
    *observers: Any,
    on_error: Callable[[str], Any] = lambda index: "stop",
    **options: Any,
) -> tuple[SyncPipeline, LiveStatus, Recorder]:
    status = LiveStatus([name for name, _ in world.builder.backfill_scopes()])
    recorder = Recorder()
    engine = SyncPipeline(
        world.capture,
        world.builder,
        sink,
        CompositeObserver(status, recorder, *observers),
        on_error=on_error,
        **options,
    )
    return engine, status, recorder


async def until(condition: Callable[[], bool]) -> None:
    async def spin() -> None:
        while not condition():
            await asyncio.sleep(0)

    await asyncio.wait_for(spin(), timeout=5)


def written(sink: InMemorySink) -> list[Any]:
    return [op for ops, _ in sink.flushes for op in ops]


def upsert_ids(ops: Sequence[Any]) -> set[str]:
    return {f"{op.id.index}/{op.id.render()}" for op in ops if isinstance(op, Upsert)}


def delete_ids(ops: Sequence[Any]) -> set[str]:
    return {f"{op.id.index}/{op.id.render()}" for op in ops if isinstance(op, Delete)}


# ---------------------------------------------------------------------------
# A. Setup and backfill
# ---------------------------------------------------------------------------


async def test_an_unseeded_sink_is_backfilled_from_a_snapshot_of_every_root_table():
    world, sink = World(), InMemorySink()
    world.capture.end_stream()
    engine, status, recorder = pipeline(world, sink)

    await engine.run()

    assert sink.seeded_queries == ["orders", "users"]
    assert world.capture.snapshots == [(ORDERS, USERS)]
    assert world.capture.prepare_calls == 1
    assert set(sink.documents("users")) == {"1", "2"}
    assert set(sink.documents("orders")) == {"10", "11", "12"}
    assert delete_ids(written(sink)) == {"users/3", "users/4"}
    assert sink.seeded_marks == ["orders", "users"]
    assert recorder.named("on_index_seeded") == [("orders",), ("users",)]
    assert sink.flushes[-1][1] is True
    snapshot = status.snapshot()
    assert snapshot["phase"] == "live"
    assert snapshot["indexes"] == {"orders": "seeded", "users": "seeded"}


async def test_a_restart_with_every_index_seeded_takes_no_snapshot_and_writes_nothing():
    world, sink = World(), InMemorySink(seeded=["orders", "users"])
    world.capture.end_stream()
    engine, status, recorder = pipeline(world, sink)

    await engine.run()

    assert world.capture.snapshots == []
    assert sink.flushes == []
    assert sink.seeded_marks == []
    assert world.capture.live_calls == 1
    assert [name for name, _ in recorder.events][:3] == [
        "on_indexes_ensured",
        "on_backfill_completed",
        "on_live_started",
    ]
    assert status.snapshot()["phase"] == "live"


async def test_skip_backfill_never_asks_or_marks_the_sink_and_still_shows_indexes_seeded():
    world, sink = World(), InMemorySink()
    world.capture.end_stream()
    engine, status, recorder = pipeline(world, sink, skip_backfill=True)

    await engine.run()

    assert sink.seeded_queries == []
    assert sink.seeded_marks == []
    assert world.capture.snapshots == []
    assert recorder.named("on_backfill_completed") == [()]
    assert status.snapshot()["indexes"] == {"orders": "seeded", "users": "seeded"}


async def test_only_unseeded_indexes_are_snapshotted_and_marked():
    world, sink = World(), InMemorySink(seeded=["users"])
    world.capture.end_stream()
    engine, _, recorder = pipeline(world, sink)

    await engine.run()

    assert world.capture.snapshots == [(ORDERS,)]
    assert {op.id.index for op in written(sink)} == {"orders"}
    assert sink.documents("users") == {}
    assert sink.seeded_marks == ["orders"]
    assert recorder.named("on_backfill_started") == [(["orders"],)]


async def test_backfill_writes_stay_inside_the_unseeded_indexes_when_a_root_feeds_several():
    world = World([users_index("people"), users_index("users")])
    sink = InMemorySink(seeded=["people"])
    world.capture.end_stream()
    engine, _, _ = pipeline(world, sink)

    await engine.run()

    assert world.capture.snapshots == [(USERS,)]
    assert {op.id.index for op in written(sink)} == {"users"}
    assert set(sink.documents("users")) == {"1", "2"}
    assert sink.seeded_marks == ["users"]


async def test_snapshot_rows_resolve_only_to_their_own_root_documents():
    world, sink = World(), InMemorySink(seeded=["users"])
    world.capture.end_stream()
    engine, _, _ = pipeline(world, sink)

    await engine.run()

    assert [roots_only for _, roots_only in world.builder.resolved] == [True]


async def test_backfill_then_live_changes_reach_the_sink():
    world, sink = World(), InMemorySink()
    world.put(USERS, 7, email="g@x.io", status="active", deleted=False)
    world.delete(USERS, 2)
    world.capture.end_stream()
    engine, status, _ = pipeline(world, sink)

    await engine.run()

    assert set(sink.documents("users")) == {"1", "7"}
    assert world.capture.unconfirmed() == []
    assert status.snapshot()["changes_in_flight"] == 0


class VisibilityLog(InMemoryDocumentBuilder):
    """Records `await_visible` and `resolve` calls in the order the pipeline makes them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[str, Any]] = []

    async def await_visible(self, xids: Any) -> None:
        self.calls.append(("await_visible", frozenset(xids)))
        await super().await_visible(xids)

    async def resolve(self, events: Any, *, roots_only: bool = False) -> Any:
        self.calls.append(("resolve", roots_only))
        return await super().resolve(events, roots_only=roots_only)


async def test_live_reads_wait_until_the_batch_transactions_are_visible_and_backfill_does_not():
    world, sink = World(), InMemorySink()
    world.builder = VisibilityLog([users_index(), InMemoryIndex("orders", ORDERS)],
                                  world.builder.tables)
    world.put(USERS, 7, email="g@x.io", status="active", deleted=False)  # transaction 1000
    world.put(ORDERS, 13, user_id=7)  # transaction 1001
    world.capture.end_stream()
    engine, _, _ = pipeline(world, sink)

    await engine.run()

    calls = world.builder.calls
    backfill = calls.index(("resolve", True))
    assert all(name != "await_visible" for name, _ in calls[:backfill])
    live = calls[backfill + 1:]
    assert live[0] == ("await_visible", frozenset({1000, 1001}))  # one batch, both commits
    assert live[1] == ("resolve", False)
    assert set(sink.documents("users")) >= {"7"}


# ---------------------------------------------------------------------------
# E. Delivery guarantees
# ---------------------------------------------------------------------------


async def test_a_failed_flush_confirms_nothing_and_a_restart_converges_to_a_clean_run():
    world, sink = World(), InMemorySink(seeded=["orders", "users"], fail_flushes=1)
    world.put(USERS, 1, email="ada@y.io", status="active", deleted=False)
    world.put(ORDERS, 13, user_id=2)
    world.delete(USERS, 1)
    world.capture.end_stream()
    engine, status, _ = pipeline(world, sink, skip_backfill=True)

    with pytest.raises(SinkWriteError):
        await engine.run()

    assert world.capture.durable_position == 0
    assert len(world.capture.unconfirmed()) == 3
    assert status.snapshot()["errors"] == 1
    assert status.snapshot()["phase"] == "stopped"

    world.capture.end_stream()
    restarted, _, _ = pipeline(world, sink, skip_backfill=True)
    await restarted.run()

    clean_world, clean_sink = World(), InMemorySink(seeded=["orders", "users"])
    clean_world.put(USERS, 1, email="ada@y.io", status="active", deleted=False)
    clean_world.put(ORDERS, 13, user_id=2)
    clean_world.delete(USERS, 1)
    clean_world.capture.end_stream()
    clean, _, _ = pipeline(clean_world, clean_sink, skip_backfill=True)
    await clean.run()

    assert world.capture.unconfirmed() == []
    assert sink.documents("users") == clean_sink.documents("users")
    assert sink.documents("orders") == clean_sink.documents("orders")
    assert set(sink.documents("orders")) == {"13"}


def reject_user_1(index: str, id: str) -> str | None:
    return "mapper_parsing_exception: failed to parse" if (index, id) == ("users", "1") else None


async def test_a_stop_policy_rejection_stops_the_run_before_confirming_or_quarantining():
    world = World()
    sink = InMemorySink(seeded=["orders", "users"], reject=reject_user_1)
    world.touch(USERS, 1)
    world.touch(USERS, 2)
    world.capture.end_stream()
    engine, status, recorder = pipeline(world, sink, skip_backfill=True)

    with pytest.raises(DocumentsRejectedError) as caught:
        await engine.run()

    assert str(caught.value) == (
        "sink rejected 1 document(s) (e.g. users/1: mapper_parsing_exception: failed to parse); "
        "stopping. set on-error=skip to quarantine rejected documents and continue"
    )
    assert caught.value.count == 1
    assert world.capture.durable_position == 0
    assert recorder.named("on_document_quarantined") == []
    snapshot = status.snapshot()
    assert (snapshot["phase"], snapshot["errors"], snapshot["documents_quarantined"]) == (
        "stopped",
        1,
        0,
    )
    assert snapshot["last_error"] == str(caught.value)


async def test_a_skip_policy_rejection_is_quarantined_and_the_batch_confirmed(caplog):
    world = World()
    sink = InMemorySink(seeded=["orders", "users"], reject=reject_user_1)
    world.touch(USERS, 1)
    world.touch(USERS, 2)
    world.capture.end_stream()
    engine, status, recorder = pipeline(world, sink, on_error=lambda index: "skip", skip_backfill=True)

    with caplog.at_level(logging.WARNING, logger="flusso.app.pipeline.engine"):
        await engine.run()

    assert recorder.named("on_document_quarantined") == [
        ("users", "1", "mapper_parsing_exception: failed to parse")
    ]
    assert world.capture.unconfirmed() == []
    assert set(sink.documents("users")) == {"2"}
    assert status.snapshot()["documents_quarantined"] == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "document rejected by sink; quarantining and continuing"
    ]
    assert (warnings[0].index, warnings[0].id) == ("users", "1")


async def test_a_per_index_stop_override_wins_over_a_global_skip():
    world = World()
    sink = InMemorySink(seeded=["orders", "users"], reject=reject_user_1)
    world.touch(USERS, 1)
    world.capture.end_stream()
    policies = {"users": "stop"}
    engine, _, recorder = pipeline(
        world, sink, on_error=lambda index: policies.get(index, "skip"), skip_backfill=True
    )

    with pytest.raises(DocumentsRejectedError):
        await engine.run()

    assert recorder.named("on_document_quarantined") == []
    assert world.capture.durable_position == 0


async def test_three_changes_to_one_document_build_and_write_it_once_and_confirm_all_three():
    world, sink = World(), InMemorySink(seeded=["orders", "users"])
    world.touch(USERS, 1)
    world.touch(USERS, 1)
    world.touch(USERS, 1)
    world.capture.end_stream()
    engine, _, recorder = pipeline(world, sink, skip_backfill=True)

    await engine.run()

    assert world.builder.built == [(DocumentId("users", (1,)),)]
    assert len(sink.flushes) == 1
    assert upsert_ids(sink.flushes[0][0]) == {"users/1"}
    assert len(sink.flushes[0][0]) == 1
    assert world.capture.durable_position == 3
    (stats,) = recorder.named("on_batch_committed")
    assert stats[0] == BatchStats(
        changes=3,
        documents=1,
        documents_by_index={"users": 1},
        flush_seconds=stats[0].flush_seconds,
    )


async def test_a_backlog_flushes_caught_up_only_for_the_last_batch_and_confirms_after_each_flush():
    world = World()
    sink = GatedSink(world.capture, seeded=["orders", "users"])
    for uid in (1, 2, 3, 4, 1):
        world.touch(USERS, uid)
    world.capture.end_stream()
    engine, _, _ = pipeline(world, sink, skip_backfill=True, max_changes=2)

    await engine.run()

    assert [caught_up for _, caught_up in sink.flushes] == [False, False, True]
    assert sink.confirmed_at_flush == [0, 2, 4]
    assert world.capture.durable_position == 5


async def test_an_idle_queue_commits_the_first_change_without_waiting_for_a_fuller_batch():
    world, sink = World(), InMemorySink(seeded=["orders", "users"])
    engine, _, _ = pipeline(world, sink, skip_backfill=True, max_delay=3600.0)
    run = asyncio.create_task(engine.run())

    world.touch(USERS, 1)
    await until(lambda: len(sink.flushes) == 1)
    world.touch(USERS, 2)
    world.touch(ORDERS, 10)
    await until(lambda: len(sink.flushes) == 2)
    world.capture.end_stream()
    await run

    batches = [[e.key for e in events] for events, _ in world.builder.resolved]
    assert batches == [[key(1)], [key(2), key(10)]]
    assert [caught_up for _, caught_up in sink.flushes] == [True, True]


async def test_changes_queued_before_a_source_failure_are_committed_before_the_run_stops():
    world, sink = World(), InMemorySink(seeded=["orders", "users"])
    world.touch(USERS, 1)
    world.touch(USERS, 2)
    world.capture.fail(SourceError("replication stream ended unexpectedly"))
    engine, status, _ = pipeline(world, sink, skip_backfill=True)

    with pytest.raises(SourceError, match="ended unexpectedly"):
        await engine.run()

    assert world.capture.unconfirmed() == []
    assert set(sink.documents("users")) == {"1", "2"}
    assert status.snapshot()["last_error"] == "replication stream ended unexpectedly"


# ---------------------------------------------------------------------------
# Shutdown and cancellation
# ---------------------------------------------------------------------------


async def test_a_graceful_stop_commits_the_open_batch_and_drops_what_was_only_queued():
    world = World()
    sink = GatedSink(seeded=["orders", "users"])
    engine, status, _ = pipeline(world, sink, skip_backfill=True)
    run = asyncio.create_task(engine.run())
    await until(lambda: world.capture.open_streams == 1)

    sink.gate.clear()
    world.touch(USERS, 1)
    await sink.flushing.wait()
    world.touch(USERS, 2)
    await until(lambda: status.snapshot()["changes_captured"] == 2)
    stopping = asyncio.create_task(engine.stop())
    for _ in range(10):
        await asyncio.sleep(0)  # a yield, not a wait: let stop() reach its drain
    assert not stopping.done()
    assert not world.capture.stopped
    sink.gate.set()
    await stopping
    await run

    assert upsert_ids(written(sink)) == {"users/1"}
    assert world.capture.durable_position == 1
    assert [e.key for e in world.capture.unconfirmed()] == [key(2)]
    assert world.capture.stopped
    assert world.capture.open_streams == 0
    assert status.snapshot()["changes_in_flight"] == 0


async def test_a_forced_stop_abandons_the_open_batch_unconfirmed():
    world = World()
    sink = GatedSink(seeded=["orders", "users"])
    engine, status, _ = pipeline(world, sink, skip_backfill=True)
    run = asyncio.create_task(engine.run())
    await until(lambda: world.capture.open_streams == 1)

    sink.gate.clear()
    world.touch(USERS, 1)
    await sink.flushing.wait()
    await engine.stop(graceful=False)
    await run

    assert sink.flushes == []
    assert world.capture.durable_position == 0
    assert world.capture.open_streams == 0
    assert status.snapshot()["changes_in_flight"] == 0


async def test_a_graceful_stop_that_overruns_its_drain_timeout_abandons_the_batch():
    world = World()
    sink = GatedSink(seeded=["orders", "users"])
    engine, _, _ = pipeline(world, sink, skip_backfill=True, drain_timeout=0.0)
    run = asyncio.create_task(engine.run())
    await until(lambda: world.capture.open_streams == 1)

    sink.gate.clear()
    world.touch(USERS, 1)
    await sink.flushing.wait()
    await engine.stop()
    await run

    assert world.capture.durable_position == 0


async def test_cancelling_the_run_cancels_the_capture_and_confirms_nothing_open():
    world = World()
    sink = GatedSink(seeded=["orders", "users"])
    engine, _, recorder = pipeline(world, sink, skip_backfill=True)
    run = asyncio.create_task(engine.run())
    await until(lambda: world.capture.open_streams == 1)

    sink.gate.clear()
    world.touch(USERS, 1)
    await sink.flushing.wait()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run

    assert world.capture.open_streams == 0
    assert world.capture.durable_position == 0
    assert recorder.named("on_changes_discarded") == [(1,)]
    assert recorder.named("on_error") == []


async def test_a_stop_during_backfill_marks_nothing_seeded_and_never_goes_live():
    world = World()
    sink = GatedSink()
    engine, status, _ = pipeline(world, sink, max_changes=2, backfill_max_changes=2)
    sink.gate.clear()
    run = asyncio.create_task(engine.run())
    await sink.flushing.wait()

    stopping = asyncio.create_task(engine.stop())
    await asyncio.sleep(0)
    sink.gate.set()
    await stopping
    await run

    assert len(sink.flushes) == 1
    assert sink.seeded_marks == []
    assert world.capture.live_calls == 0
    assert status.snapshot()["phase"] == "backfilling"


async def test_backfill_batches_take_up_to_backfill_max_changes_and_live_ones_max_changes():
    world, sink = World(), InMemorySink()
    for uid in range(100, 110):
        world.put(USERS, uid, email=f"{uid}@x.io", status="active", deleted=False, commit=False)
    for uid in range(100, 105):  # five live changes, queued before the run
        world.put(USERS, uid, email=f"new{uid}@x.io", status="active", deleted=False)
    world.capture.end_stream()
    engine, _, _ = pipeline(world, sink, max_changes=2, backfill_max_changes=6)

    await engine.run()

    sizes = [len(events) for events, _ in world.builder.resolved]
    snapshot = [len(events) for events, roots in world.builder.resolved if roots]
    live = [len(events) for events, roots in world.builder.resolved if not roots]
    assert sum(snapshot) == 14 + 3 and max(snapshot) == 6  # 14 users, 3 orders; batches of 6
    assert live == [2, 2, 1]
    assert sizes == snapshot + live


# ---------------------------------------------------------------------------
# Status and lag
# ---------------------------------------------------------------------------


async def test_status_shows_backfilling_indexes_during_the_snapshot_and_live_once_idle():
    world = World()
    sink = GatedSink()
    engine, status, _ = pipeline(world, sink)
    sink.gate.clear()
    run = asyncio.create_task(engine.run())
    await sink.flushing.wait()

    during = status.snapshot()
    assert during["phase"] == "backfilling"
    assert during["indexes"] == {"orders": "backfilling", "users": "backfilling"}
    assert status.is_ready()

    sink.gate.set()
    await until(lambda: status.phase == "live")
    await until(lambda: status.snapshot()["changes_in_flight"] == 0)
    after = status.snapshot()
    assert after["indexes"] == {"orders": "seeded", "users": "seeded"}
    assert after["changes_captured"] == after["changes_committed"] == 7
    assert after["documents_built"] == 7

    world.capture.end_stream()
    await run
    status.end_run()
    assert status.snapshot()["phase"] == "stopped"
    assert not status.is_ready()


async def test_the_lag_poller_reports_the_slot_lag_and_shrugs_off_failures(caplog):
    world, sink = World(), InMemorySink(seeded=["orders", "users"])
    world.capture.set_lag(4096)
    engine, status, _ = pipeline(world, sink, skip_backfill=True)
    run = asyncio.create_task(engine.run())
    await until(lambda: status.snapshot()["slot_lag_bytes"] == 4096)
    world.capture.end_stream()
    await run

    failing = World()
    failing.capture.set_lag(error=SourceError("connection refused"))
    engine, status, _ = pipeline(failing, sink, skip_backfill=True, lag_poll_secs=0.0)
    with caplog.at_level(logging.WARNING, logger="flusso.app.pipeline.lag"):
        run = asyncio.create_task(engine.run())
        await until(lambda: len(caplog.records) >= 2)
        failing.capture.end_stream()
        await run

    assert status.snapshot()["slot_lag_bytes"] is None
    assert status.snapshot()["errors"] == 0
    assert "connection refused" in caplog.records[0].getMessage()


async def test_negative_lag_is_reported_as_zero():
    world, sink = World(), InMemorySink(seeded=["orders", "users"])
    world.capture.set_lag(-80)
    engine, status, _ = pipeline(world, sink, skip_backfill=True)
    run = asyncio.create_task(engine.run())
    await until(lambda: status.snapshot()["slot_lag_bytes"] is not None)
    world.capture.end_stream()
    await run

    assert status.snapshot()["slot_lag_bytes"] == 0


async def test_the_run_logs_its_sequence_in_order(caplog):
    world, sink = World(), InMemorySink(seeded=["users"])
    world.capture.end_stream()
    engine, _, _ = pipeline(world, sink)

    with caplog.at_level(logging.INFO, logger="flusso.app.pipeline"):
        await engine.run()

    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert messages == [
        "starting sync",
        "ensuring target indexes",
        "seeding indexes",
        "backfill complete",
        "following live changes",
    ]


async def test_a_graceful_stop_while_idle_ends_the_live_stream_and_the_run():
    world, sink = World(), InMemorySink(seeded=["orders", "users"])
    world.touch(USERS, 1)
    engine, status, recorder = pipeline(world, sink, skip_backfill=True)
    run = asyncio.create_task(engine.run())
    await until(lambda: world.capture.durable_position == 1)

    await engine.stop()
    await run

    assert world.capture.stopped
    assert world.capture.open_streams == 0
    assert recorder.named("on_changes_discarded") == []
    assert recorder.named("on_error") == []
    assert status.snapshot()["changes_committed"] == 1


async def test_a_failed_backfill_flush_marks_nothing_seeded_and_the_next_run_seeds_again():
    world, sink = World(), InMemorySink(fail_flushes=1)
    engine, status, _ = pipeline(world, sink, max_changes=2)

    with pytest.raises(SinkWriteError):
        await engine.run()

    assert sink.seeded_marks == []
    assert world.capture.live_calls == 0
    assert status.snapshot()["phase"] == "stopped"

    world.capture.end_stream()
    restarted, _, _ = pipeline(world, sink, max_changes=2)
    await restarted.run()

    assert sink.seeded_marks == ["orders", "users"]
    assert set(sink.documents("users")) == {"1", "2"}
