"""What verifying an index needs: the documents a sink serves, read through the alias
readers use, with repairs that only land on the copy they were decided against, and
the root rows of the source as document ids."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from flusso.domain.documents.change import DocumentId, DocumentOp


@dataclass(frozen=True)
class Version:
    """One write of a served document (in OpenSearch: its sequence number and primary term).

    Two reads give equal versions exactly when nothing wrote the document in between.
    """

    seq_no: int
    primary_term: int


@dataclass(frozen=True)
class ServedCopy:
    """What an index serves under one id: the body and the write that put it there."""

    source: Mapping[str, Any]
    version: Version


@dataclass(frozen=True)
class ServedId:
    """One id an index serves, with the version it was seen at."""

    id: str
    version: Version


Verdict = Literal["same", "missing", "stale", "orphaned"]
"""How a served copy compares with the document the database implies: `same` (also when
neither side has one), `missing` (should exist, absent), `stale` (present but different),
`orphaned` (present, should not exist)."""


@dataclass(frozen=True)
class Comparison:
    """One built document (`op`; a Delete when the database implies none) against its copy."""

    op: DocumentOp
    verdict: Verdict
    version: Version | None  # of the served copy; None when the index has none


@dataclass(frozen=True)
class Repair:
    """Make the served copy of `op.id` what `op` says, but only if it still is `expected`
    (None: only if the index still has no copy)."""

    op: DocumentOp
    expected: Version | None


@dataclass(frozen=True)
class RepairResult:
    """`version` of the copy the repair wrote; `refused` when the sink refused the document;
    neither when another write reached the document first (that newer write wins)."""

    version: Version | None = None
    refused: str | None = None


class ServedIndex(Protocol):
    """The documents a sink serves for each logical index, read through the alias readers use,
    and repairs that only land on the copy they were decided against.

    `fetch` reads current copies by id in real time: any write acknowledged before the
    call is seen. `scan` yields every served id in pages from a view that may lag recent
    writes (by the refresh interval); ids written during the scan may or may not appear.
    `sample` returns up to `count` served ids picked at random. `compare` judges built
    documents against fetched copies as this sink would write them; it does no I/O.
    `repair` applies each write only when the served copy still matches `expected`; it is
    safe to repeat and never overwrites a copy written after the one it was decided
    against. `count` is the number of served documents. Raises SinkError
    (SinkUnavailableError when a retry may succeed), also for an index the sink lacks.
    """

    sink_name: str

    async def count(self, index: str) -> int: ...

    async def fetch(self, index: str, ids: Sequence[str]) -> dict[str, ServedCopy]: ...

    def compare(
        self, ops: Sequence[DocumentOp], served: Mapping[str, ServedCopy]
    ) -> list[Comparison]: ...

    def scan(self, index: str, page_size: int) -> AsyncIterator[list[ServedId]]: ...

    async def sample(self, index: str, count: int) -> list[ServedId]: ...

    async def repair(self, index: str, repairs: Sequence[Repair]) -> list[RepairResult]:
        """One result per repair, in order."""
        ...

    async def close(self) -> None: ...


class RootRows(Protocol):
    """Each index's root rows as document ids, read from the source without building documents.

    `pages` yields the id of every root row in key order, in pages of at most
    `page_size`, each page read by its own short statement, so no snapshot is held for
    the whole walk: rows inserted or deleted meanwhile may or may not appear. `sample`
    returns up to `count` ids picked at random. `existing` returns those of `ids` (spelt
    as the sink's `_id`) whose root row exists now. `estimate` is a cheap row count, None
    when the source has no statistics. Raises SourceError, also for an index whose root
    table has no single-column key.
    """

    async def estimate(self, index: str) -> int | None: ...

    def pages(self, index: str, page_size: int) -> AsyncIterator[list[DocumentId]]: ...

    async def sample(self, index: str, count: int) -> list[DocumentId]: ...

    async def existing(self, index: str, ids: Sequence[str]) -> set[str]: ...

    async def close(self) -> None: ...
