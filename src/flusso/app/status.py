"""The process-wide live status (engine spec §8, surfaces spec §5.2) and observer plumbing.

`LiveStatus` is an Observer: the pipeline's events move it; the HTTP surfaces and
the metrics read `snapshot()`. One instance outlives pipeline restarts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

from flusso.app.ports import BatchStats, Observer

Phase = Literal["starting", "backfilling", "live", "stopped"]
IndexState = Literal["pending", "backfilling", "seeded"]


class NullObserver(Observer):
    """Ignores every event (the port's own bodies do nothing)."""


class CompositeObserver:
    """Fans every event out to its observers, in the order given."""

    def __init__(self, *observers: Observer) -> None:
        self._observers = observers

    def on_indexes_ensured(self, count: int) -> None:
        for observer in self._observers:
            observer.on_indexes_ensured(count)

    def on_backfill_started(self, indexes: Sequence[str]) -> None:
        for observer in self._observers:
            observer.on_backfill_started(indexes)

    def on_index_seeded(self, index: str) -> None:
        for observer in self._observers:
            observer.on_index_seeded(index)

    def on_backfill_completed(self) -> None:
        for observer in self._observers:
            observer.on_backfill_completed()

    def on_live_started(self) -> None:
        for observer in self._observers:
            observer.on_live_started()

    def on_change_captured(self) -> None:
        for observer in self._observers:
            observer.on_change_captured()

    def on_batch_committed(self, stats: BatchStats) -> None:
        for observer in self._observers:
            observer.on_batch_committed(stats)

    def on_slot_lag(self, lag_bytes: int) -> None:
        for observer in self._observers:
            observer.on_slot_lag(lag_bytes)

    def on_document_quarantined(self, index: str, id: str, reason: str) -> None:
        for observer in self._observers:
            observer.on_document_quarantined(index, id, reason)

    def on_changes_discarded(self, count: int) -> None:
        for observer in self._observers:
            observer.on_changes_discarded(count)

    def on_error(self, message: str) -> None:
        for observer in self._observers:
            observer.on_error(message)


class LiveStatus:
    """Phase, per-index state and counters of the running process.

    Events may come from the pipeline's loop while `snapshot()` is read from a
    metrics thread, so updates and reads share one short lock. `begin_run()` and
    `end_run()` are called by whoever starts and ends pipeline runs; a run
    cancelled for a restart skips `end_run()`.
    """

    def __init__(
        self, indexes: Iterable[str], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self._started_at = clock()
        self._lock = threading.Lock()
        self._phase: Phase = "starting"
        self._indexes: dict[str, IndexState] = {name: "pending" for name in indexes}
        self._captured = 0
        self._committed = 0
        self._discarded = 0
        self._documents_built = 0
        self._quarantined = 0
        self._batches = 0
        self._last_flush_micros = 0
        self._slot_lag: int | None = None
        self._errors = 0
        self._last_error: str | None = None

    # -- run boundaries ----------------------------------------------------------

    def begin_run(self) -> None:
        with self._lock:
            self._phase = "starting"

    def end_run(self) -> None:
        with self._lock:
            self._phase = "stopped"

    # -- reads ------------------------------------------------------------------

    @property
    def phase(self) -> Phase:
        return self._phase

    def is_ready(self) -> bool:
        """`/readyz`: ready only while backfilling or live."""
        return self._phase in ("backfilling", "live")

    def index_states(self) -> dict[str, IndexState]:
        with self._lock:
            return dict(sorted(self._indexes.items()))

    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight()

    def snapshot(self) -> dict[str, Any]:
        """The `/status` body: keys in the order of surfaces spec §5.2."""
        with self._lock:
            return {
                "phase": self._phase,
                "uptime_seconds": max(0, int(self._clock() - self._started_at)),
                "indexes": dict(sorted(self._indexes.items())),
                "changes_captured": self._captured,
                "changes_committed": self._committed,
                "changes_in_flight": self._in_flight(),
                "documents_built": self._documents_built,
                "documents_quarantined": self._quarantined,
                "batches": self._batches,
                "last_flush_micros": self._last_flush_micros,
                "slot_lag_bytes": self._slot_lag,
                "errors": self._errors,
                "last_error": self._last_error,
            }

    def _in_flight(self) -> int:
        # D9: changes a stop or restart dropped unconfirmed are no longer in flight.
        return max(0, self._captured - self._committed - self._discarded)

    # -- Observer -----------------------------------------------------------------

    def on_indexes_ensured(self, count: int) -> None:
        return None

    def on_backfill_started(self, indexes: Sequence[str]) -> None:
        with self._lock:
            self._phase = "backfilling"
            for index in indexes:
                self._indexes[index] = "backfilling"

    def on_index_seeded(self, index: str) -> None:
        with self._lock:
            self._indexes[index] = "seeded"

    def mark_index(self, index: str, state: IndexState) -> None:
        """An online rebuild moved one index (`backfilling` → `seeded`) without a phase change."""
        with self._lock:
            if index in self._indexes:
                self._indexes[index] = state

    def on_backfill_completed(self) -> None:
        return None

    def on_live_started(self) -> None:
        with self._lock:
            # Live capture means every index is seeded, including those seeded
            # before this run and never backfilled here.
            for index in self._indexes:
                self._indexes[index] = "seeded"
            self._phase = "live"

    def on_change_captured(self) -> None:
        with self._lock:
            self._captured += 1

    def on_batch_committed(self, stats: BatchStats) -> None:
        with self._lock:
            self._committed += stats.changes
            self._documents_built += stats.documents
            self._batches += 1
            self._last_flush_micros = int(stats.flush_seconds * 1_000_000)

    def on_slot_lag(self, lag_bytes: int) -> None:
        with self._lock:
            self._slot_lag = max(0, lag_bytes)

    def on_document_quarantined(self, index: str, id: str, reason: str) -> None:
        with self._lock:
            self._quarantined += 1

    def on_changes_discarded(self, count: int) -> None:
        with self._lock:
            self._discarded += max(0, count)

    def on_error(self, message: str) -> None:
        with self._lock:
            self._errors += 1
            self._last_error = message
            self._phase = "stopped"
