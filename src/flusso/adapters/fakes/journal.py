"""`InMemoryJournal`: the Journal port kept in memory, held to the same contract as SQLite.

An `InMemoryJournalStore` plays the part of the file: a new journal opened on the same
store after `close` sees everything recorded before.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flusso.app.ports import JournalError, JournalRecord, JournalRow
from flusso.domain.lifecycle import INITIAL, LifecycleEvent, apply, event_detail, with_op_id

Clock = Callable[[], datetime]


@dataclass
class InMemoryJournalStore:
    """What a journal file would hold: the append-only events and the state rows."""

    events: tuple[JournalRecord, ...] = ()
    rows: dict[tuple[str, str], JournalRow] = field(default_factory=dict)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _timestamp(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _json_detail(event: LifecycleEvent) -> dict[str, Any]:
    try:
        return event_detail(event)
    except ValueError as exc:
        raise JournalError(str(exc)) from exc


class InMemoryJournal:
    """A Journal in memory. `fail_writes` makes that many `record` calls raise JournalError
    before changing anything (a full disk, a locked file)."""

    def __init__(
        self,
        run_id: str | None = None,
        *,
        store: InMemoryJournalStore | None = None,
        clock: Clock = _utc_now,
        fail_writes: int = 0,
    ) -> None:
        self.run_id = run_id or str(uuid.uuid4())
        self.store = store if store is not None else InMemoryJournalStore()
        self._clock = clock
        self._fail_writes = fail_writes
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise JournalError("the lifecycle journal is closed")

    async def record(self, event: LifecycleEvent) -> JournalRecord:
        self._check_open()
        if self._fail_writes > 0:
            self._fail_writes -= 1
            raise JournalError("could not write the in-memory lifecycle journal (injected failure)")
        key = (event.sink, event.hash_alias)
        row = self.store.rows.get(key)
        current = row.lifecycle if row is not None else INITIAL
        event = with_op_id(current, event, lambda: str(uuid.uuid4()))
        after = apply(current, event)
        detail = _json_detail(event)
        now = _timestamp(self._clock())
        record = JournalRecord(
            event_id=len(self.store.events) + 1,
            recorded_at=now,
            run_id=self.run_id,
            sink=event.sink,
            logical=event.logical,
            hash_alias=event.hash_alias,
            event=event.kind,
            state_before=current.state,
            state_after=after.state,
            serving_generation=after.serving_generation,
            target_generation=after.target_generation,
            op_id=after.op_id,
            detail=detail,
        )
        self.store.events = (*self.store.events, record)
        self.store.rows[key] = JournalRow(
            sink=event.sink,
            logical=event.logical,
            hash_alias=event.hash_alias,
            lifecycle=after,
            last_event_id=record.event_id,
            updated_at=now,
        )
        return _copy(record)

    async def current(self, sink: str, hash_alias: str) -> JournalRow | None:
        self._check_open()
        return self.store.rows.get((sink, hash_alias))

    async def all_current(self) -> list[JournalRow]:
        self._check_open()
        return [self.store.rows[key] for key in sorted(self.store.rows)]

    async def events(
        self,
        sink: str | None = None,
        hash_alias: str | None = None,
        *,
        op_id: str | None = None,
        after_id: int = 0,
    ) -> list[JournalRecord]:
        self._check_open()
        return [
            _copy(r)
            for r in self.store.events
            if r.event_id > after_id
            and (sink is None or r.sink == sink)
            and (hash_alias is None or r.hash_alias == hash_alias)
            and (op_id is None or r.op_id == op_id)
        ]

    async def close(self) -> None:
        self._closed = True


def _copy(record: JournalRecord) -> JournalRecord:
    """Records are frozen, but `detail` is a dict; hand out a copy so the log stays untouched."""
    return JournalRecord(**{**record.__dict__, "detail": json.loads(json.dumps(record.detail))})
