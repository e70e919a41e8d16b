"""`InMemoryChangeCapture`: a replication slot held in memory, driven through its own API.

It keeps what the Postgres capture keeps: a log of committed transactions, a durable
position that only moves past a transaction once every change of it was confirmed
, so a crash never skips a change, redelivery of everything after that position on the next `live()`, and a
snapshot of the keys of in-memory tables.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from flusso.app.ports import Change, NoAck
from flusso.domain.documents.change import ChangeEvent, RowKey, TableRef

FIRST_XID = 1000
"""The transaction id of the first logged transaction (the next ones count up)."""


@dataclass
class _Transaction:
    events: tuple[ChangeEvent, ...]
    confirmed: set[int] = field(default_factory=set)

    @property
    def complete(self) -> bool:
        return len(self.confirmed) == len(self.events)


class _InMemoryAck:
    def __init__(self, transaction: _Transaction, position: int) -> None:
        self._transaction = transaction
        self._position = position

    def confirm(self) -> None:
        self._transaction.confirmed.add(self._position)


class InMemoryChangeCapture:
    """A ChangeCapture whose source is this object: `push` commits, `rows` are its tables.

    Stream control: `end_stream()` ends the current `live()` normally and
    `fail(error)` makes it raise, each after the changes pushed before the call.
    `stop()` (the port's graceful end) ends it at once.
    """

    def __init__(self, rows: Mapping[TableRef, Iterable[RowKey]] | None = None) -> None:
        self._rows: dict[TableRef, list[RowKey]] = {
            table: list(keys) for table, keys in (rows or {}).items()
        }
        self._log: list[_Transaction] = []
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._terminal: tuple[int, BaseException | None] | None = None
        self._lag: int | None = None
        self._lag_error: BaseException | None = None
        self.prepare_calls = 0
        self.live_calls = 0
        self.snapshots: list[tuple[TableRef, ...]] = []
        self.stopped = False
        self.closed = False
        self.open_streams = 0
        """`live()` streams started and not yet finished or closed (the slot is "active")."""

    # -- the source side ------------------------------------------------------

    def push(self, *events: ChangeEvent) -> None:
        """Commit each event as its own transaction."""
        for event in events:
            self.push_transaction([event])

    def push_transaction(self, events: Sequence[ChangeEvent]) -> None:
        """Commit the events as one transaction: durable only once all are confirmed."""
        if events:
            self._log.append(_Transaction(tuple(events)))
            self._wakeup.set()

    def set_rows(self, table: TableRef, keys: Iterable[RowKey]) -> None:
        """Replace the keys `snapshot` reads for `table`."""
        self._rows[table] = list(keys)

    def end_stream(self) -> None:
        """The current `live()` returns once the changes pushed so far were yielded."""
        self._terminal = (len(self._log), None)
        self._wakeup.set()

    def fail(self, error: BaseException) -> None:
        """The current `live()` raises `error` once the changes pushed so far were yielded."""
        self._terminal = (len(self._log), error)
        self._wakeup.set()

    def set_lag(self, lag: int | None = None, *, error: BaseException | None = None) -> None:
        """What `lag()` answers next: a byte count, None (unknown), or raising `error`."""
        self._lag, self._lag_error = lag, error

    # -- read-back for tests --------------------------------------------------

    @property
    def durable_position(self) -> int:
        """How many transactions are confirmed from the start: the slot's confirmed position."""
        position = 0
        for transaction in self._log:
            if not transaction.complete:
                break
            position += 1
        return position

    def unconfirmed(self) -> list[ChangeEvent]:
        """The events a restart would redeliver, in commit order."""
        return [e for t in self._log[self.durable_position :] for e in t.events]

    # -- the port -------------------------------------------------------------

    async def prepare(self) -> None:
        self.prepare_calls += 1

    def live(self) -> AsyncIterator[Change]:
        # Reset here rather than in the generator body: a stop() issued before the
        # first iteration must still end this stream.
        self.live_calls += 1
        self._stopping = False
        self.stopped = False
        return self._stream(self.durable_position)

    async def _stream(self, start: int) -> AsyncIterator[Change]:
        self.open_streams += 1
        try:
            cursor = start
            while not self._stopping:
                terminal = self._terminal
                if terminal is not None and cursor >= terminal[0]:
                    self._terminal = None
                    if terminal[1] is not None:
                        raise terminal[1]
                    return
                if cursor < len(self._log):
                    transaction = self._log[cursor]
                    cursor += 1
                    xid = FIRST_XID + cursor - 1  # one per logged transaction, like Postgres's
                    for position, event in enumerate(transaction.events):
                        yield Change(event, _InMemoryAck(transaction, position), xid)
                        if self._stopping:
                            return
                    continue
                self._wakeup.clear()
                await self._wakeup.wait()
        finally:
            self.open_streams -= 1

    async def snapshot(self, tables: Sequence[TableRef]) -> AsyncIterator[Change]:
        self.snapshots.append(tuple(tables))
        view = {table: tuple(self._rows.get(table, ())) for table in tables}
        ack = NoAck()
        for table in tables:
            for key in view[table]:
                yield Change(ChangeEvent("upsert", table, key), ack)

    async def lag(self) -> int | None:
        if self._lag_error is not None:
            raise self._lag_error
        return self._lag

    async def stop(self) -> None:
        self._stopping = True
        self.stopped = True
        self._wakeup.set()

    async def close(self) -> None:
        self.closed = True
        await self.stop()

