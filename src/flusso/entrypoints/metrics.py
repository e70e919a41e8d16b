"""Prometheus metrics of `flusso run`, fed by the pipeline's Observer events.

One dedicated registry holds only flusso's metrics; it lives for the whole process,
so the counters are cumulative across pipeline restarts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from flusso.app.ports import BatchStats

FLUSH_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class PrometheusObserver:
    """An Observer that records every event on its own `CollectorRegistry`.

    `flusso_changes_in_flight` is read at scrape time from `in_flight` (the
    `/status` value). Labelled series of the `indexes` given start at zero.
    """

    def __init__(
        self, in_flight: Callable[[], int] = lambda: 0, indexes: Iterable[str] = ()
    ) -> None:
        # `_created` series double every counter and mean nothing to dashboards.
        prometheus_client.disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self._captured = Counter(
            "flusso_changes_captured", "Changes pulled from the source into the queue",
            registry=registry,
        )
        self._committed = Counter(
            "flusso_changes_committed", "Changes whose documents have been flushed and acked",
            registry=registry,
        )
        self._built = Counter(
            "flusso_documents_built", "Documents assembled and written to the sink",
            ["index"], registry=registry,
        )
        self._batches = Counter("flusso_batches", "Batches flushed", registry=registry)
        self._seeded = Counter(
            "flusso_indexes_seeded", "Indexes whose backfill completed this run",
            ["index"], registry=registry,
        )
        self._quarantined = Counter(
            "flusso_documents_quarantined",
            "Documents the sink rejected and the engine skipped (on_error = skip). "
            "A non-zero value means data is being dropped — alert on it.",
            ["index"], registry=registry,
        )
        self._errors = Counter(
            "flusso_errors", "Errors that stopped the pipeline", registry=registry
        )
        self._flush = Histogram(
            "flusso_flush_duration_seconds", "Time taken by each sink flush",
            buckets=FLUSH_BUCKETS, registry=registry,
        )
        self._lag = Gauge(
            "flusso_replication_slot_lag_bytes", "Bytes the destination trails the source by",
            registry=registry,
        )
        self._indexes = Gauge(
            "flusso_indexes", "Target indexes ensured at the sink", registry=registry
        )
        in_flight_gauge = Gauge(
            "flusso_changes_in_flight",
            "Captured but not yet committed changes (back-pressure)",
            registry=registry,
        )
        in_flight_gauge.set_function(lambda: float(in_flight()))
        self._auth_failures = Counter(
            "flusso_http_auth_failures",
            "Requests to a protected HTTP surface refused for missing or wrong credentials",
            ["surface"], registry=registry,
        )
        for surface in ("public", "private"):
            self._auth_failures.labels(surface)
        self._backfill_rows = Gauge(
            "flusso_backfill_rows",
            "Root rows the running (or last) backfill of the index has written",
            ["index"], registry=registry,
        )
        self._backfilling = Gauge(
            "flusso_backfill_in_progress",
            "1 while the index's backfill runs, else 0",
            ["index"], registry=registry,
        )
        for index in indexes:
            self._built.labels(index)
            self._seeded.labels(index)
            self._quarantined.labels(index)
            self._backfill_rows.labels(index)
            self._backfilling.labels(index)
        self._seeding: set[str] = set()

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type, for `GET /metrics`."""
        # The classic text format is what prometheus_client serves to a scraper sending no Accept.
        return (
            prometheus_client.generate_latest(self.registry),
            prometheus_client.CONTENT_TYPE_PLAIN_0_0_4,
        )

    def on_auth_failure(self, surface: str) -> None:
        """A request to `surface` ("public" or "private") was refused for its credentials."""
        self._auth_failures.labels(surface).inc()

    # -- Observer ---------------------------------------------------------------------

    def on_indexes_ensured(self, count: int) -> None:
        self._indexes.set(count)

    def on_backfill_started(self, indexes: Sequence[str]) -> None:
        self._seeding = set(indexes)
        for index in indexes:
            self._backfill_rows.labels(index).set(0)
            self._backfilling.labels(index).set(1)

    def on_index_seeded(self, index: str) -> None:
        self._seeded.labels(index).inc()
        self._seeding.discard(index)
        self._backfilling.labels(index).set(0)

    def on_backfill_completed(self) -> None:
        self._end_backfill()

    def on_live_started(self) -> None:
        self._end_backfill()

    def _end_backfill(self) -> None:
        for index in self._seeding:
            self._backfilling.labels(index).set(0)
        self._seeding = set()

    def on_change_captured(self) -> None:
        self._captured.inc()

    def on_batch_committed(self, stats: BatchStats) -> None:
        self._committed.inc(stats.changes)
        for index, count in stats.documents_by_index.items():
            self._built.labels(index).inc(count)
            if index in self._seeding:
                # One document per root row while the index backfills.
                self._backfill_rows.labels(index).inc(count)
        self._batches.inc()
        self._flush.observe(stats.flush_seconds)

    def on_slot_lag(self, lag_bytes: int) -> None:
        self._lag.set(max(0, lag_bytes))

    def on_document_quarantined(self, index: str, id: str, reason: str) -> None:
        self._quarantined.labels(index).inc()

    def on_changes_discarded(self, count: int) -> None:
        return None

    def on_error(self, message: str) -> None:
        self._errors.inc()
        self._end_backfill()
