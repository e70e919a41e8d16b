"""The durable record of every index lifecycle step, and the rows it hands back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from flusso.domain.lifecycle import EventKind, LifecycleEvent, LifecycleState, State


@dataclass(frozen=True)
class JournalRecord:
    """One appended `lifecycle_events` row. Generations and `op_id` are the values after it."""

    event_id: int
    recorded_at: str
    run_id: str
    sink: str
    logical: str
    hash_alias: str
    event: EventKind
    state_before: State
    state_after: State
    serving_generation: int | None
    target_generation: int | None
    op_id: str | None
    detail: dict[str, Any]

    def to_event(self) -> LifecycleEvent:
        """The event as `apply` saw it, so `fold` over the records rebuilds the state row."""
        dropped = self.detail.get("dropped_generations", ())
        return LifecycleEvent(
            sink=self.sink,
            logical=self.logical,
            hash_alias=self.hash_alias,
            kind=self.event,
            generation=self.target_generation
            if self.event is not EventKind.SEEDED
            else self.serving_generation,
            serving_generation=self.serving_generation,
            derived=self.state_after if self.event is EventKind.RECONCILED else None,
            dropped=tuple(int(g) for g in dropped),
            op_id=self.op_id,
            detail=self.detail,
        )


@dataclass(frozen=True)
class JournalRow:
    """The `lifecycle_state` row of `(sink, hash_alias)`: the fold of its events."""

    sink: str
    logical: str
    hash_alias: str
    lifecycle: LifecycleState
    last_event_id: int
    updated_at: str

    def to_detail(self) -> dict[str, Any]:
        """The per-sink object `GET /indexes?detail=true` shows."""
        return {
            "lifecycle": str(self.lifecycle.state),
            "hash_alias": self.hash_alias,
            "serving_generation": self.lifecycle.serving_generation,
            "target_generation": self.lifecycle.target_generation,
            "pending_request": self.lifecycle.pending_request,
            "updated_at": self.updated_at,
        }


class Journal(Protocol):
    """The durable record of every index lifecycle step, per `(sink, hash_alias)`.

    `record` appends one event and updates the state row in ONE transaction; the
    new state is `domain.lifecycle.apply(current, event)` (a forbidden transition
    raises LifecycleError and writes nothing). When the event opens an operation
    and carries no `op_id`, a fresh uuid is assigned. Events are append-only and
    ordered by `event_id`; the state row always equals the fold of its events.
    Raises JournalError when the journal cannot be read or written (fatal for
    `run`), and on any call after `close`.
    """

    async def record(self, event: LifecycleEvent) -> JournalRecord: ...

    async def current(self, sink: str, hash_alias: str) -> JournalRow | None: ...

    async def all_current(self) -> list[JournalRow]:
        """Every state row, ordered by `(sink, hash_alias)`."""
        ...

    async def events(
        self,
        sink: str | None = None,
        hash_alias: str | None = None,
        *,
        op_id: str | None = None,
        after_id: int = 0,
    ) -> list[JournalRecord]:
        """Matching events with `event_id > after_id`, oldest first."""
        ...

    async def close(self) -> None: ...
