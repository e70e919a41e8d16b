"""`InMemoryDocumentBuilder`: documents straight from in-memory rows, for engine tests.

Each index has a root table (one document per row, the row itself as the body)
and may name related tables whose rows point at a root key through one column,
so reverse resolution can be exercised without SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flusso.domain.documents.change import (
    ChangeEvent,
    Delete,
    DocumentId,
    DocumentOp,
    RowKey,
    TableRef,
    Upsert,
)
from flusso.domain.types import IndexMapping

Row = dict[str, Any]


@dataclass(frozen=True)
class InMemoryIndex:
    """One index: `root` rows become documents; `related[table]` names the column of a
    `table` row holding the root key it belongs to; rows failing `where` are deleted."""

    name: str
    root: TableRef
    related: Mapping[TableRef, str] = field(default_factory=dict)
    where: Callable[[Row], bool] | None = None


class InMemoryDocumentBuilder:
    """A DocumentBuilder over `tables` (table → row key → row), shared with the test's "database"."""

    def __init__(
        self,
        indexes: Sequence[InMemoryIndex],
        tables: Mapping[TableRef, Mapping[RowKey, Row]] | None = None,
    ) -> None:
        self._indexes = {index.name: index for index in sorted(indexes, key=lambda i: i.name)}
        self.tables: dict[TableRef, dict[RowKey, Row]] = {
            table: dict(rows) for table, rows in (tables or {}).items()
        }
        self.resolved: list[tuple[tuple[ChangeEvent, ...], bool]] = []
        """Every `resolve` call: its events and `roots_only`."""
        self.built: list[tuple[DocumentId, ...]] = []
        """Every `build_many` call: the ids asked for."""
        self.awaited: list[frozenset[int]] = []
        """Every `await_visible` call: the transaction ids (rows here are always visible)."""

    # -- the "database" ---------------------------------------------------------

    def put_row(self, table: TableRef, key: RowKey, row: Row) -> None:
        self.tables.setdefault(table, {})[key] = dict(row)

    def delete_row(self, table: TableRef, key: RowKey) -> None:
        self.tables.get(table, {}).pop(key, None)

    def keys(self, table: TableRef) -> list[RowKey]:
        return list(self.tables.get(table, {}))

    # -- the port -----------------------------------------------------------------

    async def resolve(
        self, events: Sequence[ChangeEvent], *, roots_only: bool = False
    ) -> list[DocumentId]:
        self.resolved.append((tuple(events), roots_only))
        found: dict[DocumentId, None] = {}
        for event in events:
            for index in self._indexes.values():
                for doc_id in self._resolve_one(index, event, roots_only):
                    found.setdefault(doc_id, None)
        return list(found)

    async def build_many(self, ids: Sequence[DocumentId]) -> list[DocumentOp]:
        self.built.append(tuple(ids))
        ops: list[DocumentOp] = []
        for doc_id in ids:
            index = self._indexes[doc_id.index]
            row = self._root_row(index, doc_id.key)
            if row is None or (index.where is not None and not index.where(row)):
                ops.append(Delete(doc_id))
            else:
                ops.append(Upsert(doc_id, dict(row)))
        return ops

    async def await_visible(self, xids: Collection[int]) -> None:
        self.awaited.append(frozenset(xids))

    def backfill_scopes(self) -> list[tuple[str, TableRef]]:
        return [(name, index.root) for name, index in self._indexes.items()]

    def index_mappings(self) -> list[IndexMapping]:
        return [IndexMapping(index=name, hash="00000000", fields=()) for name in self._indexes]

    # -- internals ----------------------------------------------------------------

    def _resolve_one(
        self, index: InMemoryIndex, event: ChangeEvent, roots_only: bool
    ) -> list[DocumentId]:
        if event.table == index.root:
            return [DocumentId(index.name, tuple(value for _, value in event.key))]
        column = index.related.get(event.table)
        if roots_only or column is None:
            return []
        # Old and new parents both need a rebuild when the pointer moved: one lost a
        # child, the other gained it.
        parents: dict[Any, None] = {}
        current = self.tables.get(event.table, {}).get(event.key)
        for values in (event.old, event.new, current or {}):
            if values.get(column) is not None:
                parents.setdefault(values[column], None)
        return [DocumentId(index.name, (parent,)) for parent in parents]

    def _root_row(self, index: InMemoryIndex, key: tuple[Any, ...]) -> Row | None:
        for row_key, row in self.tables.get(index.root, {}).items():
            if tuple(value for _, value in row_key) == key:
                return row
        return None
