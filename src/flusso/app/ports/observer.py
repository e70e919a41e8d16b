"""Notifications from the pipeline to whoever keeps count (status, metrics, progress)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class BatchStats:
    changes: int
    documents: int
    documents_by_index: dict[str, int] = field(default_factory=dict)
    flush_seconds: float = 0.0


class Observer(Protocol):
    """Synchronous, cheap notifications from the pipeline (metrics, status, logs).

    Called on the pipeline's event loop; an observer never raises and never
    blocks, and events of one run arrive in the order they happened.
    """

    def on_indexes_ensured(self, count: int) -> None: ...

    def on_backfill_started(self, indexes: Sequence[str]) -> None: ...

    def on_index_seeded(self, index: str) -> None: ...

    def on_backfill_completed(self) -> None: ...

    def on_live_started(self) -> None: ...

    def on_change_captured(self) -> None: ...

    def on_batch_committed(self, stats: BatchStats) -> None: ...

    def on_slot_lag(self, lag_bytes: int) -> None: ...

    def on_document_quarantined(self, index: str, id: str, reason: str) -> None: ...

    def on_changes_discarded(self, count: int) -> None: ...

    def on_error(self, message: str) -> None: ...
