"""The Observer contract, held by every observer the daemon composes: the live status, the
Prometheus and OpenTelemetry metrics, the backfill progress, the composite that fans out
to them, and the null observer.

Each leg reads back, in one shared vocabulary, the facts its observer keeps (`seeded`:
indexes a backfill finished; `ready`: indexes the status shows as seeded);
every test states what all facts must be after the events and checks each leg on the
facts it keeps. Events never raise, in any order, and counts are cumulative for the life
of the observer (it outlives pipeline restarts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from flusso.app.ports import BatchStats, Observer
from flusso.app.status import CompositeObserver, LiveStatus, NullObserver
from flusso.entrypoints.metrics import PrometheusObserver
from flusso.entrypoints.progress import BackfillProgress
from flusso.entrypoints.telemetry import OtelObserver

INDEXES = ("orders", "users")


@dataclass
class Leg:
    observer: Observer
    read: Callable[[], dict[str, Any]]
    """The facts this observer keeps, by name."""


def _status() -> tuple[LiveStatus, Callable[[], dict[str, Any]]]:
    status = LiveStatus(INDEXES)

    def read() -> dict[str, Any]:
        s = status.snapshot()
        return {
            "captured": s["changes_captured"],
            "committed": s["changes_committed"],
            "in_flight": s["changes_in_flight"],
            "built_total": s["documents_built"],
            "batches": s["batches"],
            "ready": sorted(i for i, state in s["indexes"].items() if state == "seeded"),
            "quarantined": s["documents_quarantined"],
            "errors": s["errors"],
            "slot_lag": s["slot_lag_bytes"] or 0,
        }

    return status, read


def _prometheus() -> tuple[PrometheusObserver, Callable[[], dict[str, Any]]]:
    prometheus = PrometheusObserver(indexes=INDEXES)

    def value(name: str, **labels: str) -> int:
        return int(prometheus.registry.get_sample_value(name, labels) or 0)

    def read() -> dict[str, Any]:
        built = {i: value("flusso_documents_built_total", index=i) for i in INDEXES}
        return {
            "captured": value("flusso_changes_captured_total"),
            "committed": value("flusso_changes_committed_total"),
            "built": {i: n for i, n in built.items() if n},
            "built_total": sum(built.values()),
            "batches": value("flusso_batches_total"),
            "seeded": [i for i in INDEXES if value("flusso_indexes_seeded_total", index=i)],
            "quarantined": sum(
                value("flusso_documents_quarantined_total", index=i) for i in INDEXES
            ),
            "errors": value("flusso_errors_total"),
            "slot_lag": value("flusso_replication_slot_lag_bytes"),
            "indexes_ensured": value("flusso_indexes"),
        }

    return prometheus, read


def _otel() -> tuple[OtelObserver, Callable[[], dict[str, Any]], MeterProvider]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    otel = OtelObserver(provider)

    def read() -> dict[str, Any]:
        data = reader.get_metrics_data()
        points: dict[str, dict[str, int]] = {}
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        label = str(dict(point.attributes).get("index", ""))
                        raw = getattr(point, "value", getattr(point, "count", 0))
                        points.setdefault(metric.name, {})[label] = int(raw)

        def total(name: str) -> int:
            return sum(points.get(name, {}).values())

        built = points.get("flusso.documents.built", {})
        return {
            "captured": total("flusso.changes.captured"),
            "committed": total("flusso.changes.committed"),
            "built": {i: n for i, n in sorted(built.items()) if n},
            "built_total": total("flusso.documents.built"),
            "batches": total("flusso.batches"),
            "seeded": sorted(i for i, n in points.get("flusso.indexes.seeded", {}).items() if n),
            "quarantined": total("flusso.documents.quarantined"),
            "errors": total("flusso.errors"),
            "slot_lag": total("flusso.replication.slot_lag"),
            "indexes_ensured": total("flusso.indexes"),
        }

    return otel, read, provider


def _progress() -> tuple[BackfillProgress, Callable[[], dict[str, Any]]]:
    progress = BackfillProgress(clock=lambda: 100.0)

    def read() -> dict[str, Any]:
        snapshot = progress.snapshot()
        return {
            "backfill_rows": {i: entry["rows_done"] for i, entry in snapshot.items()},
            "seeded": [i for i, entry in snapshot.items() if entry["seeded"]],
        }

    return progress, read


@pytest.fixture(params=["null", "status", "prometheus", "otel", "progress", "composite"])
def leg(request: pytest.FixtureRequest) -> Iterator[Leg]:
    kind = request.param
    if kind == "null":
        yield Leg(NullObserver(), dict)
    elif kind == "status":
        yield Leg(*_status())
    elif kind == "prometheus":
        yield Leg(*_prometheus())
    elif kind == "otel":
        otel, read, provider = _otel()
        yield Leg(otel, read)
        provider.shutdown()
    elif kind == "progress":
        yield Leg(*_progress())
    else:
        status, read_status = _status()
        prometheus, read_prometheus = _prometheus()
        yield Leg(
            CompositeObserver(status, prometheus),
            lambda: {**read_prometheus(), **read_status()},
        )


def check(leg: Leg, expected: dict[str, Any]) -> None:
    """Every fact the leg keeps has its expected value (the vocabulary is closed)."""
    kept = leg.read()
    assert set(kept) <= set(expected), f"unexpected facts {set(kept) - set(expected)}"
    assert kept == {name: expected[name] for name in kept}


NOTHING = {
    "captured": 0,
    "committed": 0,
    "in_flight": 0,
    "built": {},
    "built_total": 0,
    "batches": 0,
    "seeded": [],
    "ready": [],
    "quarantined": 0,
    "errors": 0,
    "slot_lag": 0,
    "indexes_ensured": 0,
    "backfill_rows": {},
}


def test_a_fresh_observer_has_counted_nothing(leg):
    check(leg, NOTHING)


def test_a_backfill_counts_its_documents_and_seeded_indexes(leg):
    obs = leg.observer
    obs.on_indexes_ensured(2)
    obs.on_backfill_started(list(INDEXES))
    for _ in range(3):
        obs.on_change_captured()
    obs.on_batch_committed(BatchStats(3, 3, {"users": 2, "orders": 1}, flush_seconds=0.01))
    obs.on_index_seeded("users")
    check(leg, {
        **NOTHING,
        "captured": 3,
        "committed": 3,
        "built": {"orders": 1, "users": 2},
        "built_total": 3,
        "batches": 1,
        "seeded": ["users"],
        "ready": ["users"],
        "indexes_ensured": 2,
        "backfill_rows": {"orders": 1, "users": 2},
    })


def test_counts_are_cumulative_across_pipeline_runs(leg):
    obs = leg.observer
    for _ in range(2):  # two runs of the pipeline, one observer
        obs.on_backfill_started([])
        obs.on_backfill_completed()
        obs.on_live_started()
        obs.on_change_captured()
        obs.on_change_captured()
        obs.on_batch_committed(BatchStats(2, 1, {"users": 1}, flush_seconds=0.002))
    check(leg, {
        **NOTHING,
        "captured": 4,
        "committed": 4,
        "built": {"users": 2},
        "built_total": 2,
        "batches": 2,
        "ready": list(INDEXES),  # live capture means every index is seeded
    })


def test_discarded_changes_leave_nothing_in_flight(leg):
    obs = leg.observer
    for _ in range(5):
        obs.on_change_captured()
    obs.on_batch_committed(BatchStats(2, 2, {"orders": 2}))
    obs.on_changes_discarded(3)
    check(leg, {
        **NOTHING,
        "captured": 5,
        "committed": 2,
        "built": {"orders": 2},
        "built_total": 2,
        "batches": 1,
    })


def test_quarantined_documents_and_errors_are_counted(leg):
    obs = leg.observer
    obs.on_document_quarantined("users", "7", "mapper_parsing_exception")
    obs.on_document_quarantined("users", "8", "mapper_parsing_exception")
    obs.on_document_quarantined("orders", "1", "strict_dynamic_mapping_exception")
    obs.on_error("sink rejected 1 document(s)")
    check(leg, {**NOTHING, "quarantined": 3, "errors": 1})


def test_the_slot_lag_is_the_latest_reading_and_never_below_zero(leg):
    obs = leg.observer
    obs.on_slot_lag(4096)
    obs.on_slot_lag(512)
    check(leg, {**NOTHING, "slot_lag": 512})
    obs.on_slot_lag(-5)
    check(leg, {**NOTHING, "slot_lag": 0})


def test_documents_after_an_index_was_seeded_are_not_backfill_rows(leg):
    obs = leg.observer
    obs.on_backfill_started(["users"])
    obs.on_batch_committed(BatchStats(1, 1, {"users": 1}))
    obs.on_index_seeded("users")
    obs.on_batch_committed(BatchStats(1, 1, {"users": 1}))
    obs.on_backfill_completed()
    obs.on_batch_committed(BatchStats(1, 1, {"users": 1}))
    check(leg, {
        **NOTHING,
        "committed": 3,
        "built": {"users": 3},
        "built_total": 3,
        "batches": 3,
        "seeded": ["users"],
        "ready": ["users"],
        "backfill_rows": {"users": 1},
    })
