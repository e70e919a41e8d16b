"""Prometheus metrics: names, types, labels, help, buckets, one registry."""

from __future__ import annotations

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from flusso.app.ports import BatchStats
from flusso.entrypoints.metrics import FLUSH_BUCKETS, PrometheusObserver

EXPECTED = {
    "flusso_changes_captured": ("counter", "Changes pulled from the source into the queue"),
    "flusso_changes_committed": ("counter", "Changes whose documents have been flushed and acked"),
    "flusso_documents_built": ("counter", "Documents assembled and written to the sink"),
    "flusso_batches": ("counter", "Batches flushed"),
    "flusso_indexes_seeded": ("counter", "Indexes whose backfill completed this run"),
    "flusso_documents_quarantined": (
        "counter",
        "Documents the sink rejected and the engine skipped (on_error = skip). "
        "A non-zero value means data is being dropped — alert on it.",
    ),
    "flusso_errors": ("counter", "Errors that stopped the pipeline"),
    "flusso_flush_duration_seconds": ("histogram", "Time taken by each sink flush"),
    "flusso_replication_slot_lag_bytes": ("gauge", "Bytes the destination trails the source by"),
    "flusso_indexes": ("gauge", "Target indexes ensured at the sink"),
    "flusso_changes_in_flight": ("gauge", "Captured but not yet committed changes (back-pressure)"),
    "flusso_backfill_rows": (
        "gauge", "Root rows the running (or last) backfill of the index has written"
    ),
    "flusso_backfill_in_progress": ("gauge", "1 while the index's backfill runs, else 0"),
    "flusso_http_auth_failures": (
        "counter",
        "Requests to a protected HTTP surface refused for missing or wrong credentials",
    ),
}


def families(observer: PrometheusObserver) -> dict[str, object]:
    body, _ = observer.render()
    return {family.name: family for family in text_string_to_metric_families(body.decode())}


def sample(observer: PrometheusObserver, name: str, **labels: str) -> float:
    value = observer.registry.get_sample_value(name, labels)
    assert value is not None, f"no sample {name}{labels}"
    return value


def test_the_registry_holds_exactly_the_documented_metrics_with_their_types_and_help():
    found = families(PrometheusObserver())
    assert {name: (f.type, f.documentation) for name, f in found.items()} == EXPECTED


def test_the_flush_histogram_has_the_documented_buckets():
    observer = PrometheusObserver()
    observer.on_batch_committed(BatchStats(1, 1, {"users": 1}, flush_seconds=0.003))
    bounds = [
        s.labels["le"] for s in families(observer)["flusso_flush_duration_seconds"].samples
        if s.name.endswith("_bucket")
    ]
    assert bounds == [*(str(b) for b in FLUSH_BUCKETS), "+Inf"]
    assert FLUSH_BUCKETS == (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
    assert sample(observer, "flusso_flush_duration_seconds_bucket", le="0.005") == 1


def test_events_move_the_counters_and_gauges():
    observer = PrometheusObserver()
    observer.on_indexes_ensured(2)
    for _ in range(4):
        observer.on_change_captured()
    observer.on_batch_committed(BatchStats(4, 3, {"users": 2, "orders": 1}, flush_seconds=0.02))
    observer.on_index_seeded("users")
    observer.on_document_quarantined("users", "42", "mapper_parsing_exception")
    observer.on_slot_lag(4096)
    observer.on_error("boom")
    assert sample(observer, "flusso_indexes") == 2
    assert sample(observer, "flusso_changes_captured_total") == 4
    assert sample(observer, "flusso_changes_committed_total") == 4
    assert sample(observer, "flusso_documents_built_total", index="users") == 2
    assert sample(observer, "flusso_documents_built_total", index="orders") == 1
    assert sample(observer, "flusso_batches_total") == 1
    assert sample(observer, "flusso_indexes_seeded_total", index="users") == 1
    assert sample(observer, "flusso_documents_quarantined_total", index="users") == 1
    assert sample(observer, "flusso_replication_slot_lag_bytes") == 4096
    assert sample(observer, "flusso_errors_total") == 1


def test_in_flight_is_read_from_the_status_at_scrape_time():
    in_flight = {"value": 7}
    observer = PrometheusObserver(lambda: in_flight["value"])
    assert sample(observer, "flusso_changes_in_flight") == 7
    in_flight["value"] = 0
    assert sample(observer, "flusso_changes_in_flight") == 0


def test_labelled_series_of_known_indexes_start_at_zero():
    observer = PrometheusObserver(indexes=["users"])
    assert sample(observer, "flusso_documents_quarantined_total", index="users") == 0
    assert sample(observer, "flusso_documents_built_total", index="users") == 0


def test_no_created_series_are_exposed():
    observer = PrometheusObserver(indexes=["users"])
    observer.on_batch_committed(BatchStats(1, 1, {"users": 1}))
    body, content_type = observer.render()
    assert b"_created" not in body
    assert content_type == prometheus_client.CONTENT_TYPE_PLAIN_0_0_4


@pytest.mark.parametrize("name", ["flusso_changes_captured_total", "flusso_changes_in_flight"])
def test_each_observer_has_its_own_registry_apart_from_the_global_one(name):
    first, second = PrometheusObserver(), PrometheusObserver()
    first.on_change_captured()
    assert first.registry is not second.registry
    assert prometheus_client.REGISTRY.get_sample_value(name) is None
    assert second.registry.get_sample_value("flusso_changes_captured_total") == 0


def test_backfill_progress_counts_rows_per_index_until_it_is_seeded():
    observer = PrometheusObserver(indexes=["users", "orders"])
    observer.on_backfill_started(["users", "orders"])
    observer.on_batch_committed(BatchStats(5, 5, {"users": 3, "orders": 2}))
    observer.on_index_seeded("orders")
    observer.on_batch_committed(BatchStats(4, 4, {"users": 2, "orders": 2}))
    assert sample(observer, "flusso_backfill_rows", index="users") == 5
    assert sample(observer, "flusso_backfill_rows", index="orders") == 2
    assert sample(observer, "flusso_backfill_in_progress", index="users") == 1
    assert sample(observer, "flusso_backfill_in_progress", index="orders") == 0
    observer.on_live_started()
    assert sample(observer, "flusso_backfill_in_progress", index="users") == 0
    observer.on_batch_committed(BatchStats(1, 1, {"users": 1}))
    assert sample(observer, "flusso_backfill_rows", index="users") == 5


def test_a_new_backfill_starts_its_row_count_again_and_an_error_ends_it():
    observer = PrometheusObserver(indexes=["users"])
    observer.on_backfill_started(["users"])
    observer.on_batch_committed(BatchStats(3, 3, {"users": 3}))
    observer.on_error("boom")
    assert sample(observer, "flusso_backfill_in_progress", index="users") == 0
    observer.on_backfill_started(["users"])
    assert sample(observer, "flusso_backfill_rows", index="users") == 0
    assert sample(observer, "flusso_backfill_in_progress", index="users") == 1
