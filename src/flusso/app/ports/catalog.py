"""Read-only facts about the source database that `check` and `run`'s preflight compare
the schemas with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from flusso.domain.documents.change import TableRef
from flusso.domain.validation import ServerFacts, TableFacts


@dataclass(frozen=True)
class Coverage:
    """How far the publication covers the tables the enabled indexes read.

    `present` and `missing` are sorted; `blockers` say why flusso may not add the
    missing tables itself (empty when it may); `remediation` is the SQL an operator
    runs to add them (empty when nothing is missing).
    """

    satisfied: bool
    manageable: bool
    will_manage: bool
    present: tuple[TableRef, ...]
    missing: tuple[TableRef, ...]
    blockers: tuple[str, ...]
    remediation: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "satisfied": self.satisfied,
            "manageable": self.manageable,
            "will_manage": self.will_manage,
            "present": [str(t) for t in self.present],
            "missing": [str(t) for t in self.missing],
            "blockers": list(self.blockers),
            "remediation": list(self.remediation),
        }


class Catalog(Protocol):
    """Read-only facts about the source database that `check` compares the schemas with.

    Never changes the database. A missing table is not an error (`table_columns`
    answers None); asking twice answers the same. Raises SourceError when the
    database cannot be queried.
    """

    async def table_columns(self, table: TableRef) -> TableFacts | None: ...

    async def inspect_coverage(
        self, publication: str, tables: Sequence[TableRef], manage: bool
    ) -> Coverage: ...

    async def server_facts(self) -> ServerFacts: ...
