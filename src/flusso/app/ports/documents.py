"""From changes to documents: which documents a change affects, and their current content."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from flusso.domain.documents.change import ChangeEvent, DocumentId, DocumentOp, TableRef
from flusso.domain.types import IndexMapping


class DocumentBuilder(Protocol):
    """Turns changes into document ids and ids into documents, reading current rows.

    `resolve` returns the affected ids of a whole batch of events, deduplicated
    in first-seen order: a change to a related row maps back to every document
    that embeds it. With `roots_only` only root-table rows are mapped (backfill:
    each unseeded index is covered by its own root rows). `build_many` returns
    one op per id, in any order: an Upsert of the rebuilt document, or a Delete
    when no row came back. Raises SourceError when the source cannot be read.
    """

    async def resolve(
        self, events: Sequence[ChangeEvent], *, roots_only: bool = False
    ) -> list[DocumentId]: ...

    async def build_many(self, ids: Sequence[DocumentId]) -> list[DocumentOp]: ...

    async def await_visible(self, xids: Collection[int]) -> None:
        """Return once every transaction in `xids` is visible to new reads of the source.

        A commit can reach the replication stream a moment before other sessions see
        it; reading rows in that moment would rebuild a document from the old rows.
        """
        ...

    def backfill_scopes(self) -> list[tuple[str, TableRef]]:
        """`(index, root table)` for every enabled index, in index-name order."""
        ...

    def index_mappings(self) -> list[IndexMapping]: ...
