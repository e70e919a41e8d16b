"""The public surface: liveness, readiness, `/status`, `/metrics`."""

from __future__ import annotations

import json

import pytest
from litestar.testing import TestClient

from flusso.app.ports import BatchStats
from flusso.app.status import CompositeObserver, LiveStatus
from flusso.entrypoints.http.public import create_public_app
from flusso.entrypoints.metrics import PrometheusObserver

STATUS_KEYS = [
    "phase", "uptime_seconds", "indexes", "changes_captured", "changes_committed",
    "changes_in_flight", "documents_built", "documents_quarantined", "batches",
    "last_flush_micros", "slot_lag_bytes", "errors", "last_error",
]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def status(clock) -> LiveStatus:
    return LiveStatus(["users", "orders"], clock=clock)


@pytest.fixture
def metrics(status) -> PrometheusObserver:
    return PrometheusObserver(status.in_flight, ["orders", "users"])


@pytest.fixture
def client(status, metrics):
    with TestClient(create_public_app(status, metrics)) as test_client:
        yield test_client


def feed_seed_then_live(observer: CompositeObserver) -> None:
    """Case 44: seed rows 1..3, then update rows 1 and 2 live."""
    observer.on_indexes_ensured(1)
    observer.on_backfill_started(["users"])
    for _ in range(3):
        observer.on_change_captured()
    observer.on_batch_committed(BatchStats(3, 3, {"users": 3}, flush_seconds=0.00512))
    observer.on_index_seeded("users")
    observer.on_backfill_completed()
    observer.on_live_started()
    observer.on_slot_lag(57344)
    for _ in range(2):
        observer.on_change_captured()
    observer.on_batch_committed(BatchStats(2, 2, {"users": 2}, flush_seconds=0.004))


def test_healthz_answers_200_with_an_empty_body(client):
    response = client.get("/healthz")
    assert (response.status_code, response.content) == (200, b"")


@pytest.mark.parametrize(
    ("move", "code"),
    [
        (lambda s: None, 503),
        (lambda s: s.on_backfill_started(["users"]), 200),
        (lambda s: s.on_live_started(), 200),
        (lambda s: (s.on_live_started(), s.end_run()), 503),
        (lambda s: (s.on_live_started(), s.begin_run()), 503),
    ],
    ids=["starting", "backfilling", "live", "stopped", "restarting"],
)
def test_readyz_is_200_only_while_backfilling_or_live(client, status, move, code):
    move(status)
    response = client.get("/readyz")
    assert (response.status_code, response.content) == (code, b"")


def test_status_is_compact_json_in_the_documented_key_order(client, status, clock):
    clock.now += 42.7
    response = client.get("/status")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.content.decode()
    assert " " not in body and "\n" not in body
    document = json.loads(body)
    assert list(document) == STATUS_KEYS
    assert document["phase"] == "starting"
    assert document["uptime_seconds"] == 42
    assert list(document["indexes"].items()) == [("orders", "pending"), ("users", "pending")]
    assert document["slot_lag_bytes"] is None and document["last_error"] is None


def test_status_after_seeding_and_live_updates_matches_case_44(status, metrics, client):
    feed_seed_then_live(CompositeObserver(status, metrics))
    document = client.get("/status").json()
    assert document["phase"] == "live"
    assert document["indexes"] == {"orders": "seeded", "users": "seeded"}
    assert (document["changes_captured"], document["changes_committed"]) == (5, 5)
    assert document["changes_in_flight"] == 0
    assert document["documents_built"] == 5
    assert document["batches"] >= 2
    assert (document["errors"], document["last_error"]) == (0, None)
    assert isinstance(document["slot_lag_bytes"], int)


def test_metrics_serves_the_prometheus_text_format(status, metrics, client):
    feed_seed_then_live(CompositeObserver(status, metrics))
    response = client.get("/metrics")
    assert response.status_code == 200
    content_type = response.headers["content-type"]
    assert content_type.startswith("text/plain; version=0.0.4")
    assert content_type.count("charset") == 1
    lines = response.text.splitlines()
    assert "flusso_changes_captured_total 5.0" in lines
    assert 'flusso_documents_built_total{index="users"} 5.0' in lines
    assert "flusso_indexes 1.0" in lines
    assert 'flusso_indexes_seeded_total{index="users"} 1.0' in lines
    assert "flusso_changes_in_flight 0.0" in lines
    assert any(line.startswith("flusso_flush_duration_seconds_bucket{") for line in lines)
    assert "_created" not in response.text


def test_an_unknown_path_is_404(client):
    assert client.get("/nope").status_code == 404
