"""Thin change events and the document operations they turn into."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True, order=True)
class TableRef:
    """A table qualified by its Postgres schema (R-11: both are matched)."""

    schema: str
    name: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"


RowKey = tuple[tuple[str, Any], ...]
"""Ordered `(column, canonical value)` pairs naming one row (R-7 canonical values)."""


@dataclass(frozen=True)
class ChangeEvent:
    """One row changed. Thin: names the row, never carries its contents to the builder.

    `old` and `new` hold the column values the WAL tuple carried (R-9), used only
    by reverse resolution to find old and new parents; absent columns are omitted.
    """

    kind: Literal["upsert", "delete"]
    table: TableRef
    key: RowKey
    old: Mapping[str, Any] = field(default_factory=dict)
    new: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, order=True)
class DocumentId:
    """(index, root key values). `render()` gives the sink `_id` (§1.6 of the engine spec)."""

    index: str
    key: tuple[Any, ...]

    def render(self) -> str:
        return ":".join(render_key_value(v) for v in self.key)


def render_key_value(value: Any) -> str:
    """The Postgres text form of a key value, so WAL and snapshot keys give one `_id`."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(value).hex()
    return str(value)


@dataclass(frozen=True)
class Upsert:
    """Write this whole document under `id` (full replace)."""

    id: DocumentId
    document: Mapping[str, Any]


@dataclass(frozen=True)
class Delete:
    """Remove the document: its row is gone, soft-deleted, or outside the root filters."""

    id: DocumentId


DocumentOp = Upsert | Delete
