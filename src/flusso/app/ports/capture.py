"""Where changes come from: the live stream and consistent snapshots of the source."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from flusso.domain.documents.change import ChangeEvent, TableRef


class Ack(Protocol):
    """Confirming means "durably applied downstream". Cheap, thread-safe, any order."""

    def confirm(self) -> None: ...


@dataclass(frozen=True)
class Change:
    """One captured change. `xid` is the source transaction that committed it (None for a
    snapshot change, which reads rows that were already visible)."""

    event: ChangeEvent
    ack: Ack
    xid: int | None = None


class NoAck:
    """The ack of a snapshot change: there is no source position to move."""

    def confirm(self) -> None:
        return None


class ChangeCapture(Protocol):
    """Where changes come from.

    `prepare` makes sure the publication covers every table the indexes read and
    then that the slot exists, so no change made after it is lost; the engine
    calls it before any backfill. `live` resumes from the source's own durable
    position and yields changes until `stop` is called or the stream fails
    (raising SourceError). A change is redelivered after a restart unless its
    ack was confirmed. `snapshot` yields one upsert per existing row of the
    given tables, from one consistent view, with no-op acks.
    """

    async def prepare(self) -> None: ...

    def live(self) -> AsyncIterator[Change]: ...

    def snapshot(self, tables: Sequence[TableRef]) -> AsyncIterator[Change]: ...

    async def lag(self) -> int | None: ...

    async def stop(self) -> None:
        """Graceful end of `live`: send the final confirmed position and close the stream."""
        ...

    async def close(self) -> None: ...


class RowSnapshot(Protocol):
    """One consistent view of root rows, as in `ChangeCapture.snapshot`; each call opens its
    own read-only snapshot, so it may run while `live` streams."""

    def snapshot(self, tables: Sequence[TableRef]) -> AsyncIterator[Change]: ...
