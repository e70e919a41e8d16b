"""Read-only facts about the source database that `check` and `run`'s preflight compare
the schemas with (`Coverage` is the domain's publication verdict, re-exported here)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from flusso.domain.documents.change import TableRef
from flusso.domain.publication import Coverage
from flusso.domain.source_check import SourceFacts, SourceNeeds
from flusso.domain.validation import ServerFacts, TableFacts


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

    async def source_facts(self, needs: SourceNeeds) -> SourceFacts:
        """The role's rights, the replication settings and, per needed table, its
        privileges, keys and replica identity (a missing table: `exists` False)."""
        ...
