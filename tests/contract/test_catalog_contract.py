"""The Catalog contract, held by `InMemoryCatalog` and `PostgresCatalog` on a throwaway
database alike: column facts as `format_type` spells them, server facts, and the
publication coverage verdict. The catalog never changes the database.

Each leg can create a table and a publication in its world; the suite reads them back
through the port.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import psycopg
import pytest
from tests.conftest import unique_name

from flusso.adapters.fakes.catalog import InMemoryCatalog, InMemoryPublication, InMemoryTable
from flusso.adapters.postgres.check_catalog import open_postgres_catalog
from flusso.app.ports import Catalog
from flusso.domain.documents.change import TableRef
from flusso.domain.source_check import SourceNeeds, TableNeed, diagnose_source
from flusso.domain.validation import ColumnFacts

Column = tuple[str, str, bool]
"""name, type as `format_type` spells it, nullable"""

USERS = TableRef("public", "users")
ORDERS = TableRef("public", "orders")
NOTES = TableRef("public", "notes")


@dataclass
class Leg:
    catalog: Catalog
    role: str
    create_table: Callable[[TableRef, Sequence[Column], bool], Awaitable[None]]
    """`(table, columns, primary key on the first column?)`"""
    create_publication: Callable[[str, Sequence[TableRef]], Awaitable[None]]


@pytest.fixture(params=["memory", "postgres"])
async def leg(request: pytest.FixtureRequest) -> AsyncIterator[Leg]:
    if request.param == "memory":
        fake = InMemoryCatalog()

        async def table_memory(table: TableRef, columns: Sequence[Column], pk: bool) -> None:
            facts = {name: ColumnFacts(pg_type, nullable) for name, pg_type, nullable in columns}
            fake.tables[table] = InMemoryTable(facts, primary_key=pk)

        async def publication_memory(name: str, tables: Sequence[TableRef]) -> None:
            fake.publications[name] = InMemoryPublication(set(tables))

        yield Leg(fake, fake.server.role, table_memory, publication_memory)
        return
    url: str = request.getfixturevalue("pg_url")
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        role = (await (await conn.execute("SELECT current_user")).fetchone())[0]  # type: ignore[index]

        async def table_pg(table: TableRef, columns: Sequence[Column], pk: bool) -> None:
            parts = [
                f'"{name}" {pg_type}{"" if nullable else " NOT NULL"}'
                for name, pg_type, nullable in columns
            ]
            if pk:
                parts.append(f'PRIMARY KEY ("{columns[0][0]}")')
            await conn.execute(f'CREATE TABLE "{table.name}" ({", ".join(parts)})'.encode())

        async def publication_pg(name: str, tables: Sequence[TableRef]) -> None:
            listed = ", ".join(f'"{t.schema}"."{t.name}"' for t in tables)
            await conn.execute(f'CREATE PUBLICATION "{name}" FOR TABLE {listed}'.encode())

        async with open_postgres_catalog(url) as catalog:
            yield Leg(catalog, role, table_pg, publication_pg)


USER_COLUMNS: list[Column] = [
    ("id", "integer", False),
    ("email", "text", True),
    ("name", "character varying(40)", False),
    ("joined", "timestamp with time zone", True),
]


async def test_a_missing_table_has_no_facts(leg: Leg):
    assert await leg.catalog.table_columns(TableRef("public", "nope")) is None


async def test_columns_come_back_in_order_with_their_type_and_nullability(leg: Leg):
    await leg.create_table(USERS, USER_COLUMNS, True)
    facts = await leg.catalog.table_columns(USERS)
    assert facts is not None
    assert [(n, f.pg_type, f.nullable, f.is_enum) for n, f in facts.items()] == [
        (name, pg_type, nullable, False) for name, pg_type, nullable in USER_COLUMNS
    ]
    assert await leg.catalog.table_columns(USERS) == facts


async def test_the_server_allows_logical_decoding_for_the_current_role(leg: Leg):
    facts = await leg.catalog.server_facts()
    assert (facts.wal_level, facts.role, facts.can_replicate) == ("logical", leg.role, True)
    assert facts.version_num >= 140000


async def test_without_a_publication_every_table_is_missing_and_may_be_added(leg: Leg):
    publication = unique_name("pub")
    await leg.create_table(USERS, USER_COLUMNS, True)
    await leg.create_table(ORDERS, [("id", "integer", False)], True)
    coverage = await leg.catalog.inspect_coverage(publication, [USERS, ORDERS, USERS], True)
    assert (coverage.satisfied, coverage.manageable, coverage.will_manage) == (False, True, True)
    assert coverage.present == ()
    assert coverage.missing == (ORDERS, USERS)
    assert coverage.blockers == ()
    assert coverage.remediation == (
        f'CREATE PUBLICATION "{publication}" FOR TABLE "public"."orders", "public"."users";',
    )
    unmanaged = await leg.catalog.inspect_coverage(publication, [USERS], False)
    assert (unmanaged.manageable, unmanaged.will_manage) == (True, False)


async def test_a_publication_covering_some_tables_is_extended_with_the_rest(leg: Leg):
    publication = unique_name("pub")
    await leg.create_table(USERS, USER_COLUMNS, True)
    await leg.create_table(ORDERS, [("id", "integer", False)], True)
    await leg.create_publication(publication, [USERS])
    coverage = await leg.catalog.inspect_coverage(publication, [USERS, ORDERS], True)
    assert coverage.present == (USERS,)
    assert coverage.missing == (ORDERS,)
    assert coverage.remediation == (
        f'ALTER PUBLICATION "{publication}" ADD TABLE "public"."orders";',
    )
    full = await leg.catalog.inspect_coverage(publication, [USERS], True)
    assert (full.satisfied, full.will_manage, full.remediation) == (True, False, ())


async def test_a_table_without_a_key_is_never_published_by_flusso(leg: Leg):
    publication = unique_name("pub")
    await leg.create_table(NOTES, [("body", "text", True)], False)
    coverage = await leg.catalog.inspect_coverage(publication, [NOTES], True)
    assert (coverage.manageable, coverage.will_manage) == (False, False)
    assert coverage.blockers == (
        "table public.notes has no primary key or replica identity; publishing it would "
        "make UPDATE and DELETE on it fail (add a primary key or set REPLICA IDENTITY)",
    )


async def test_source_facts_of_a_keyed_table_raise_no_finding_and_a_keyless_one_does(leg: Leg):
    await leg.create_table(USERS, USER_COLUMNS, True)
    await leg.create_table(NOTES, [("body", "text", True)], False)
    needs = SourceNeeds((
        TableNeed(NOTES, frozenset({"body"}), declared_key="body", is_root=True, indexes=("n",)),
        TableNeed(USERS, frozenset({"id", "email"}), is_root=True, indexes=("u",)),
        TableNeed(TableRef("public", "nope"), frozenset({"x"})),
    ), slot=unique_name("slot"))
    facts = await leg.catalog.source_facts(needs)
    assert facts.role.name == leg.role
    assert facts.tables[TableRef("public", "nope")].exists is False
    assert facts.tables[USERS].primary_key == ("id",)
    assert [(d.field, d.fix) for d in diagnose_source(needs, facts)] == [
        ("public.notes", 'ALTER TABLE "public"."notes" REPLICA IDENTITY FULL;'),
    ]
