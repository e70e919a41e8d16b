"""Live status fields and transitions (engine spec §8, surfaces spec §5.2) and observer fan-out."""

from __future__ import annotations

import json

from flusso.app.ports import BatchStats
from flusso.app.status import CompositeObserver, LiveStatus, NullObserver


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def status(*indexes: str) -> tuple[LiveStatus, Clock]:
    clock = Clock()
    return LiveStatus(indexes or ("users", "orders"), clock=clock), clock


def test_a_fresh_status_is_starting_with_every_index_pending_in_the_documented_key_order():
    live, _ = status()

    assert json.dumps(live.snapshot(), separators=(",", ":")) == (
        '{"phase":"starting","uptime_seconds":0,"indexes":{"orders":"pending","users":"pending"},'
        '"changes_captured":0,"changes_committed":0,"changes_in_flight":0,"documents_built":0,'
        '"documents_quarantined":0,"batches":0,"last_flush_micros":0,"slot_lag_bytes":null,'
        '"errors":0,"last_error":null}'
    )
    assert not live.is_ready()


def test_uptime_counts_whole_seconds_on_the_injected_clock():
    live, clock = status()
    clock.now += 42.9

    assert live.snapshot()["uptime_seconds"] == 42


def test_backfill_marks_its_indexes_and_the_phase_then_live_promotes_every_index():
    live, _ = status()

    live.on_backfill_started(["orders"])
    assert live.snapshot()["phase"] == "backfilling"
    assert live.index_states() == {"orders": "backfilling", "users": "pending"}
    assert live.is_ready()

    live.on_index_seeded("orders")
    assert live.index_states() == {"orders": "seeded", "users": "pending"}

    live.on_live_started()
    assert live.snapshot()["phase"] == "live"
    assert live.index_states() == {"orders": "seeded", "users": "seeded"}
    assert live.is_ready()


def test_commits_add_changes_documents_batches_and_the_last_flush_duration():
    live, _ = status()
    for _ in range(5):
        live.on_change_captured()

    live.on_batch_committed(BatchStats(changes=3, documents=1, flush_seconds=0.00512))
    live.on_batch_committed(BatchStats(changes=1, documents=2, flush_seconds=0.002))
    snapshot = live.snapshot()

    assert snapshot["changes_captured"] == 5
    assert snapshot["changes_committed"] == 4
    assert snapshot["changes_in_flight"] == 1
    assert snapshot["documents_built"] == 3
    assert snapshot["batches"] == 2
    assert snapshot["last_flush_micros"] == 2000


def test_discarded_changes_leave_the_in_flight_count():
    live, _ = status()
    for _ in range(4):
        live.on_change_captured()
    live.on_batch_committed(BatchStats(changes=1, documents=1))

    live.on_changes_discarded(3)

    assert live.in_flight() == 0
    assert live.snapshot()["changes_captured"] == 4


def test_in_flight_never_goes_below_zero():
    live, _ = status()
    live.on_change_captured()
    live.on_changes_discarded(5)

    assert live.snapshot()["changes_in_flight"] == 0


def test_an_error_stops_the_phase_and_is_remembered():
    live, _ = status()
    live.on_live_started()

    live.on_error("write failed: boom")
    live.on_error("write failed: again")

    snapshot = live.snapshot()
    assert (snapshot["phase"], snapshot["errors"], snapshot["last_error"]) == (
        "stopped",
        2,
        "write failed: again",
    )
    assert not live.is_ready()


def test_slot_lag_and_quarantines_are_recorded():
    live, _ = status()

    live.on_slot_lag(57344)
    live.on_document_quarantined("users", "1", "bad")

    assert live.snapshot()["slot_lag_bytes"] == 57344
    assert live.snapshot()["documents_quarantined"] == 1


def test_a_restart_goes_back_to_starting_but_keeps_index_states_and_counters():
    live, _ = status()
    live.on_live_started()
    live.on_change_captured()
    live.end_run()
    assert live.phase == "stopped"

    live.begin_run()
    live.on_backfill_started(["users"])

    assert live.index_states() == {"orders": "seeded", "users": "backfilling"}
    assert live.snapshot()["changes_captured"] == 1


class Log:
    def __init__(self, name: str, into: list[str]) -> None:
        self._name = name
        self._into = into

    def __getattr__(self, event: str):
        return lambda *args: self._into.append(f"{self._name}.{event}{args}")


def test_a_composite_observer_calls_each_observer_in_order():
    calls: list[str] = []
    fan_out = CompositeObserver(Log("a", calls), NullObserver(), Log("b", calls))

    fan_out.on_index_seeded("users")
    fan_out.on_changes_discarded(2)

    assert calls == [
        "a.on_index_seeded('users',)",
        "b.on_index_seeded('users',)",
        "a.on_changes_discarded(2,)",
        "b.on_changes_discarded(2,)",
    ]
