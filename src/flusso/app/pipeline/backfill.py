"""Which indexes a start must seed, and from which root tables (engine spec §5 step 1)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flusso.app.ports import IndexSeeding
from flusso.domain.documents.change import TableRef


@dataclass(frozen=True)
class BackfillPlan:
    """The unseeded indexes (index-name order) and their distinct root tables (first-seen order)."""

    indexes: tuple[str, ...]
    tables: tuple[TableRef, ...]

    @property
    def is_empty(self) -> bool:
        return not self.indexes


async def plan_backfill(scopes: Sequence[tuple[str, TableRef]], sink: IndexSeeding) -> BackfillPlan:
    """Ask the sink, index by index, which ones are not seeded yet."""
    indexes: list[str] = []
    tables: dict[TableRef, None] = {}
    for index, root in sorted(scopes, key=lambda scope: scope[0]):
        if await sink.is_seeded(index):
            continue
        indexes.append(index)
        tables.setdefault(root, None)
    return BackfillPlan(tuple(indexes), tuple(tables))
