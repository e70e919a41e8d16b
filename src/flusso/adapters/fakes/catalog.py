"""`InMemoryCatalog`: the Catalog port over tables, publications and a role held in memory.

Tables are declared with their columns and key facts; the coverage verdict comes from the
same pure rules the Postgres catalog feeds (`domain.publication`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from flusso.domain.documents.change import TableRef
from flusso.domain.publication import (
    Coverage,
    PublicationFacts,
    ReplicaIdentity,
    TableStanding,
    missing_tables,
    plan_coverage,
)
from flusso.domain.source_check import (
    IdentityFacts,
    RoleFacts,
    ServerSettings,
    SourceFacts,
    SourceNeeds,
    TableSourceFacts,
)
from flusso.domain.validation import ColumnFacts, ServerFacts


@dataclass(frozen=True)
class InMemoryTable:
    """One table: its columns in declaration order and what makes its rows addressable
    (`primary_key`: the first column is the key)."""

    columns: Mapping[str, ColumnFacts]
    primary_key: bool = True
    identity: ReplicaIdentity = "d"
    identity_index: bool = False
    owned: bool = True


@dataclass
class InMemoryPublication:
    tables: set[TableRef] = field(default_factory=set)
    owned: bool = True


class InMemoryCatalog:
    """A Catalog over `tables` and `publications`; the role is a superuser unless told."""

    def __init__(
        self,
        tables: Mapping[TableRef, InMemoryTable] | None = None,
        *,
        publications: Mapping[str, Iterable[TableRef]] | None = None,
        server: ServerFacts | None = None,
        superuser: bool = True,
        can_create: bool = True,
    ) -> None:
        self.tables: dict[TableRef, InMemoryTable] = dict(tables or {})
        self.publications: dict[str, InMemoryPublication] = {
            name: InMemoryPublication(set(members)) for name, members in (publications or {}).items()
        }
        self.server = server or ServerFacts(
            wal_level="logical", role="flusso", can_replicate=True, version_num=160000
        )
        self.superuser = superuser
        self.can_create = can_create

    async def table_columns(self, table: TableRef) -> dict[str, ColumnFacts] | None:
        found = self.tables.get(table)
        return None if found is None else dict(found.columns)

    async def server_facts(self) -> ServerFacts:
        return self.server

    async def source_facts(self, needs: SourceNeeds) -> SourceFacts:
        """The role is the server's; every table is readable and its identity as declared."""
        tables: dict[TableRef, TableSourceFacts] = {}
        for need in needs.tables:
            found = self.tables.get(need.table)
            if found is None:
                tables[need.table] = TableSourceFacts(exists=False)
                continue
            names = tuple(found.columns)
            key = names[:1] if found.primary_key else ()
            carried = {"d": key, "f": names, "i": key if found.identity_index else ()}.get(
                found.identity, ()
            )
            tables[need.table] = TableSourceFacts(
                primary_key=key,
                identities=(IdentityFacts(need.table, found.identity, carried, key),),
            )
        return SourceFacts(
            role=RoleFacts(
                self.server.role, superuser=self.superuser, replication=self.server.can_replicate
            ),
            server=ServerSettings(
                version_num=self.server.version_num, wal_level=self.server.wal_level,
            ),
            tables=tables,
        )

    async def inspect_coverage(
        self, publication: str, tables: Sequence[TableRef], manage: bool
    ) -> Coverage:
        current = self.publications.get(publication)
        published = current.tables if current is not None else set()
        standings: dict[TableRef, TableStanding | None] = {}
        for table in missing_tables(tables, published):
            found = self.tables.get(table)
            standings[table] = None if found is None else TableStanding(
                owned=found.owned,
                has_primary_key=found.primary_key,
                has_identity_index=found.identity_index,
                identity=found.identity,
            )
        facts = PublicationFacts(
            exists=current is not None,
            owned=current is not None and current.owned,
            published=published,
            superuser=self.superuser,
            can_create=self.can_create,
            standings=standings,
        )
        return plan_coverage(publication, tables, manage, facts)
