"""`flusso check`'s findings about the source, read from a real catalog, each with its fix.

Each case makes the database lack one thing a run needs, asserts the finding names the
object and the exact statement, runs that statement, and asserts the finding is gone.
"""

from __future__ import annotations

import psycopg
import pytest
from tests.conftest import unique_name
from tests.integration.engine_harness import sql
from tests.integration.test_postgres_shapes import one_index

from flusso.adapters.postgres.source_facts import read_source_facts
from flusso.domain.source_check import diagnose_source, plan_source_needs

pytestmark = pytest.mark.asyncio

SHOP_SQL = """
CREATE TABLE customers (id int PRIMARY KEY, email text NOT NULL, secret text);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, total numeric NOT NULL);
ALTER TABLE orders REPLICA IDENTITY FULL;
INSERT INTO customers VALUES (1, 'a@x.io', 's');
INSERT INTO orders VALUES (10, 1, 5);
"""

CUSTOMERS = """
version: 1
table: customers
primary_key: id
fields:
  - integer: id
    required: true
  - keyword: email
    required: true
  - has_many: orders
    table: orders
    foreign_key: customer_id
    primary_key: id
    fields:
      - decimal: total
        required: true
"""


def as_role(url: str, role: str) -> str:
    return url.replace("postgresql://postgres@", f"postgresql://{role}@")


async def findings(url: str, schema: str = CUSTOMERS, index: str = "customers") -> list[str]:
    needs = plan_source_needs(one_index(index, schema))
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        facts = await read_source_facts(conn, needs)
    return [f"{d.field}: {d.message} => {d.fix}" for d in diagnose_source(needs, facts)]


async def test_a_superuser_on_a_keyed_schema_has_no_finding(pg_url):
    await sql(pg_url, SHOP_SQL)
    assert await findings(pg_url) == []


async def test_a_role_without_replication_or_select_gets_each_grant_and_then_passes(pg_url):
    await sql(pg_url, SHOP_SQL)
    role = unique_name("reader")
    await sql(pg_url, f"CREATE ROLE {role} LOGIN")
    await sql(pg_url, "REVOKE ALL ON SCHEMA public FROM PUBLIC")
    url = as_role(pg_url, role)
    assert await findings(url) == [
        f"role: role {role} may not stream changes (no REPLICATION right) => "
        f'ALTER ROLE "{role}" REPLICATION;  -- as a superuser',
        f"public.customers: role {role} may not use schema public, so it cannot read "
        f'public.customers => GRANT USAGE ON SCHEMA "public" TO "{role}"; GRANT SELECT ON '
        f'"public"."customers" TO "{role}";  -- and for tables made later: ALTER DEFAULT '
        f'PRIVILEGES IN SCHEMA "public" GRANT SELECT ON TABLES TO "{role}";',
        f"public.orders: role {role} may not use schema public, so it cannot read "
        f'public.orders => GRANT USAGE ON SCHEMA "public" TO "{role}"; GRANT SELECT ON '
        f'"public"."orders" TO "{role}";  -- and for tables made later: ALTER DEFAULT '
        f'PRIVILEGES IN SCHEMA "public" GRANT SELECT ON TABLES TO "{role}";',
    ]
    await sql(pg_url, f'ALTER ROLE "{role}" REPLICATION')
    await sql(pg_url, f'GRANT USAGE ON SCHEMA "public" TO "{role}"')
    # Column grants cover a table read column by column, not one a to-many join reads whole.
    await sql(pg_url, f'GRANT SELECT (id) ON "public"."customers" TO "{role}"')
    await sql(pg_url, f'GRANT SELECT (id, customer_id) ON "public"."orders" TO "{role}"')
    assert await findings(url) == [
        f"public.customers: role {role} may not read column(s) email of public.customers => "
        f'GRANT SELECT ON "public"."customers" TO "{role}";  -- or only the columns: '
        f'GRANT SELECT ("email") ON "public"."customers" TO "{role}";',
        f"public.orders: role {role} may not read table public.orders (a to-many join reads "
        f'whole rows) => GRANT SELECT ON "public"."orders" TO "{role}";',
    ]
    await sql(pg_url, f'GRANT SELECT ("email") ON "public"."customers" TO "{role}"')
    await sql(pg_url, f'GRANT SELECT ON "public"."orders" TO "{role}"')
    assert await findings(url) == []


async def test_rds_replication_membership_counts_as_the_right_to_replicate(pg_url):
    await sql(pg_url, SHOP_SQL)
    role = unique_name("rdsuser")
    await sql(pg_url, f"CREATE ROLE {role} LOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public "
                      f"TO {role}")
    await sql(pg_url, "DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = "
                      "'rds_replication') THEN CREATE ROLE rds_replication; END IF; END$$")
    url = as_role(pg_url, role)
    try:
        assert [f for f in await findings(url) if f.startswith("role:")] == [
            f"role: role {role} may not stream changes (no REPLICATION right) => "
            f'ALTER ROLE "{role}" REPLICATION;  -- as a superuser',
        ]
        await sql(pg_url, "CREATE ROLE rds_superuser")
        assert [f for f in await findings(url) if f.startswith("role:")] == [
            f"role: role {role} may not stream changes (no REPLICATION right) => "
            f'GRANT rds_replication TO "{role}";  -- as the master user (RDS and Aurora)',
        ]
        await sql(pg_url, f'GRANT rds_replication TO "{role}"')
        assert [f for f in await findings(url) if f.startswith("role:")] == []
    finally:
        await sql(pg_url, "DROP ROLE IF EXISTS rds_superuser; DROP ROLE IF EXISTS rds_replication")


KEYLESS_SQL = """
CREATE TABLE notes (code text NOT NULL, body text NOT NULL);
CREATE UNIQUE INDEX notes_code ON notes (code);
CREATE TABLE people (id int PRIMARY KEY, email text NOT NULL UNIQUE, name text NOT NULL);
"""

NOTES = """
version: 1
table: notes
fields:
  - keyword: code
    required: true
  - text: body
    required: true
"""

PEOPLE_BY_EMAIL = """
version: 1
table: people
primary_key: email
fields:
  - keyword: email
    required: true
"""


async def test_a_keyless_root_is_told_which_key_to_declare_and_which_identity_to_set(pg_url):
    await sql(pg_url, KEYLESS_SQL)
    assert await findings(pg_url, NOTES, "notes") == [
        "public.notes: table public.notes has no primary key and index notes declares none, so "
        "its rows cannot be addressed as documents => declare `primary_key: code` in the schema "
        "of index notes (a unique, not-null column)",
        "public.notes: table public.notes has no primary key or replica identity: once "
        "published, its UPDATE and DELETE statements fail and deletes cannot be followed => "
        'ALTER TABLE "public"."notes" REPLICA IDENTITY USING INDEX "notes_code";',
    ]
    await sql(pg_url, 'ALTER TABLE "public"."notes" REPLICA IDENTITY USING INDEX "notes_code";')
    keyed = NOTES.replace("fields:", "primary_key: code\nfields:")
    assert await findings(pg_url, keyed, "notes") == []


async def test_a_root_keyed_by_a_column_deletes_do_not_carry_gets_the_identity_to_set(pg_url):
    await sql(pg_url, KEYLESS_SQL)
    assert await findings(pg_url, PEOPLE_BY_EMAIL, "people") == [
        "public.people: a deleted row of public.people carries only (id) in the WAL, but its "
        "documents are keyed by email: deletes could not be followed => "
        'ALTER TABLE "public"."people" REPLICA IDENTITY USING INDEX "people_email_key";',
    ]
    await sql(pg_url, 'ALTER TABLE "public"."people" REPLICA IDENTITY USING INDEX "people_email_key"')
    assert await findings(pg_url, PEOPLE_BY_EMAIL, "people") == []


async def test_a_partition_without_a_key_is_named_with_its_own_statement(pg_url):
    await sql(pg_url, """
        CREATE TABLE readings (sensor int NOT NULL, at date NOT NULL, v float8)
          PARTITION BY RANGE (at);
        CREATE TABLE readings_a PARTITION OF readings FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
        CREATE TABLE readings_b PARTITION OF readings FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
        ALTER TABLE readings_a REPLICA IDENTITY FULL;
    """)
    schema = "version: 1\ntable: readings\nprimary_key: sensor\nfields:\n  - integer: sensor\n    required: true\n"
    assert await findings(pg_url, schema, "readings") == [
        "public.readings_b: table public.readings_b has no primary key or replica identity: "
        "once published, its UPDATE and DELETE statements fail and deletes cannot be followed "
        '=> ALTER TABLE "public"."readings_b" REPLICA IDENTITY FULL;',
    ]
    await sql(pg_url, 'ALTER TABLE "public"."readings_b" REPLICA IDENTITY FULL;')
    assert await findings(pg_url, schema, "readings") == []


async def test_a_generated_key_column_is_refused(pg_url):
    await sql(pg_url, "CREATE TABLE g (a int NOT NULL, k int GENERATED ALWAYS AS (a * 2) STORED "
                      "PRIMARY KEY)")
    schema = "version: 1\ntable: g\nfields:\n  - integer: a\n    required: true\n"
    assert await findings(pg_url, schema, "g") == [
        "public.g: the document key of public.g uses generated column(s) k, which logical "
        "replication does not send => declare a `primary_key:` on a stored, non-generated "
        "unique column",
    ]


async def test_a_physical_slot_under_the_name_is_found_before_run_trips_on_it(pg_url):
    await sql(pg_url, SHOP_SQL)
    slot = unique_name("slot")
    needs = plan_source_needs(one_index("customers", CUSTOMERS), slot=slot)
    await sql(pg_url, f"SELECT pg_create_physical_replication_slot('{slot}')")
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        found = diagnose_source(needs, await read_source_facts(conn, needs))
    assert [(d.field, d.message, d.fix) for d in found] == [(
        f"slot {slot}",
        f"replication slot {slot} exists with plugin none (a physical slot), not pgoutput",
        f"SELECT pg_drop_replication_slot('{slot}');  -- or choose another --slot",
    )]
    await sql(pg_url, found[0].fix.split("  --")[0])
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        assert diagnose_source(needs, await read_source_facts(conn, needs)) == []


async def test_children_whose_old_parent_the_wal_cannot_name_get_a_warning_per_partition(pg_url):
    await sql(pg_url, """
        CREATE TABLE customers (id int PRIMARY KEY, email text NOT NULL);
        CREATE TABLE orders (id int, customer_id int NOT NULL, total numeric NOT NULL,
                             PRIMARY KEY (id)) PARTITION BY RANGE (id);
        CREATE TABLE orders_a PARTITION OF orders FOR VALUES FROM (0) TO (100);
        CREATE TABLE orders_b PARTITION OF orders FOR VALUES FROM (100) TO (200);
        ALTER TABLE orders_a REPLICA IDENTITY FULL;
    """)
    needs = plan_source_needs(one_index("customers", CUSTOMERS))
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        found = diagnose_source(needs, await read_source_facts(conn, needs))
    assert [(d.severity, d.field, d.message, d.fix) for d in found] == [(
        "warning", "public.orders",
        "deleting a row of public.orders, or changing its customer_id, leaves the old parent's "
        "document stale until it changes again: the WAL does not carry the old customer_id",
        'ALTER TABLE "public"."orders_b" REPLICA IDENTITY FULL;  -- and on each partition made '
        "later",
    )]
    await sql(pg_url, found[0].fix.split("  --")[0])
    assert await findings(pg_url) == []
