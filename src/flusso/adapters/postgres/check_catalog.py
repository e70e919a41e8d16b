"""`PostgresCatalog`: the read-only column facts and publication coverage `flusso check` asks for.

Never changes the database: coverage is inspected, not ensured.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg

from flusso.adapters.postgres.catalog import column_facts
from flusso.adapters.postgres.connection import connect_admin, parse_conninfo
from flusso.adapters.postgres.publication import Coverage, inspect_publication
from flusso.adapters.postgres.source_facts import read_source_facts
from flusso.domain.documents.change import TableRef
from flusso.domain.source_check import SourceFacts, SourceNeeds
from flusso.domain.validation import ColumnFacts, ServerFacts


class PostgresCatalog:
    """Catalog lookups over one open connection (the caller owns it)."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn

    async def table_columns(self, table: TableRef) -> dict[str, ColumnFacts] | None:
        facts = await column_facts(self._conn, table.schema, table.name)
        if facts is None:
            return None
        return {
            name: ColumnFacts(pg_type=pg_type, nullable=nullable, is_enum=is_enum)
            for name, (pg_type, nullable, is_enum) in facts.items()
        }

    async def server_facts(self) -> ServerFacts:
        cursor = await self._conn.execute(
            "SELECT current_setting('wal_level'), current_user, "
            "rolsuper OR rolreplication, current_setting('server_version_num')::int "
            "FROM pg_roles WHERE rolname = current_user"
        )
        wal_level, role, can_replicate, version = await cursor.fetchone()  # type: ignore[misc]
        return ServerFacts(
            wal_level=wal_level, role=role, can_replicate=bool(can_replicate),
            version_num=int(version),
        )

    async def source_facts(self, needs: SourceNeeds) -> SourceFacts:
        return await read_source_facts(self._conn, needs)

    async def inspect_coverage(
        self, publication: str, tables: Sequence[TableRef], manage: bool
    ) -> Coverage:
        return await inspect_publication(self._conn, publication, tables, manage)


@asynccontextmanager
async def open_postgres_catalog(url: str) -> AsyncIterator[PostgresCatalog]:
    """A `PostgresCatalog` on a fresh autocommit connection, closed on exit."""
    conn = await connect_admin(parse_conninfo(url))
    try:
        yield PostgresCatalog(conn)
    finally:
        await conn.close()
