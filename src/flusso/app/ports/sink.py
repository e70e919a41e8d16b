"""Destinations for built documents, split by the role a caller plays.

`DocumentSink` is what writing needs; `IndexSeeding` is what the backfill asks
and records; `Sink` is both, the object the pipeline writes through.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from flusso.domain.documents.change import DocumentOp
from flusso.domain.types import IndexMapping


@dataclass(frozen=True)
class RejectedDocument:
    """An item the sink refused; `index` is the logical name."""

    index: str
    id: str
    reason: str


@dataclass(frozen=True)
class FlushReport:
    rejected: tuple[RejectedDocument, ...] = ()


class DocumentSink(Protocol):
    """Where documents go.

    `ensure_index` prepares a logical index and may run on every start. Writes
    are keyed by document id and safe to repeat; they may only buffer. `flush`
    is the durability point: the source may confirm a batch only after it
    returns. Raising SinkError from `flush` is a flush-wide failure; refused
    items are returned in the report instead (a destination that validates
    nothing refuses none). A delete of a document that does not exist is not a
    rejection. `caught_up` means no backlog: the sink should make the writes
    searchable at once.
    """

    async def ensure_index(self, mapping: IndexMapping) -> None: ...

    async def write(self, ops: Sequence[DocumentOp]) -> None: ...

    async def flush(self, caught_up: bool) -> FlushReport: ...

    async def close(self) -> None: ...


class IndexSeeding(Protocol):
    """Whether a logical index holds every document, as the backfill asks and records it.

    Call after `ensure_index` of the same sink. `mark_seeded` makes the seeded
    generation the one readers see; `reindex` stages a fresh rebuild that the
    next start seeds while readers keep the current one. A destination that
    keeps no state (stdout) is never seeded, so every start backfills it.
    Raises SinkError.
    """

    async def is_seeded(self, index: str) -> bool: ...

    async def mark_seeded(self, index: str) -> None: ...

    async def reindex(self, mapping: IndexMapping) -> None: ...


class Sink(DocumentSink, IndexSeeding, Protocol):
    """The destination the pipeline writes through: both roles, on one object."""


@dataclass(frozen=True)
class SinkContext:
    """What building any sink may use beside its own `[sinks.NAME]` table.

    Each sink kind's adapter package exports a builder `(name, config, context) -> Sink`;
    the container registers it once, keyed by the kind's config class.
    """

    env: Mapping[str, str]  # secrets are resolved from here, never stored
    prefix: str = ""  # of every index, alias and marker name
    skip_backfill: bool = False
