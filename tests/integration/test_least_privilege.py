"""flusso as users run it: a least-privilege role and a publication its owner made beforehand.

`flusso check` names every missing grant, right and publication part with the statement
that fixes it; once the owner runs exactly those statements, check passes and a run
backfills and follows live changes without touching the publication.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.conftest import unique_name
from tests.integration.engine_harness import Engine, plain, scalar, sql
from tests.integration.test_postgres_shapes import deployment

from flusso.entrypoints.cli.main import cli

pytestmark = pytest.mark.asyncio

SHOP_SQL = """
CREATE TABLE customers (id int PRIMARY KEY, email text NOT NULL);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, total numeric(10,2) NOT NULL)
  PARTITION BY RANGE (id);
CREATE TABLE orders_low PARTITION OF orders FOR VALUES FROM (0) TO (1000);
CREATE TABLE orders_high PARTITION OF orders FOR VALUES FROM (1000) TO (2000);
INSERT INTO customers VALUES (1, 'ada@x.io'), (2, 'bob@x.io');
INSERT INTO orders VALUES (10, 1, 5.00), (1010, 1, 7.50);
"""

CONFIG = """\
[source]
type = "postgres"

[[index]]
name = "customers"
schema = "customers.schema.yml"
enabled = true
"""

SCHEMA = """\
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
    order_by: [{ column: id }]
    fields:
      - decimal: total
        required: true
  - sum: spent
    table: orders
    foreign_key: customer_id
    column: total
    value_type: decimal
"""


async def check(url: str, config: Path, publication: str, slot: str) -> tuple[int, dict]:
    # The CLI runs its own event loop, so it runs beside this test's.
    result = await asyncio.to_thread(
        CliRunner().invoke,
        cli, ["check", "-c", str(config), "--publication", publication, "--format", "json"],
        env={"DATABASE_URL": url, "FLUSSO_OFFLINE": None, "FLUSSO_FORMAT": None,
             "FLUSSO_CONFIG": None, "FLUSSO_MANAGE_PUBLICATION": None, "FLUSSO_SLOT": slot,
             "FLUSSO_PUBLICATION": None, "NO_COLOR": "1"},
    )
    assert result.stdout, result.output
    return result.exit_code, json.loads(result.stdout)


def statement(fix: str) -> str:
    """The statements of a printed fix, without its trailing advice."""
    return fix.split("  --")[0]


async def test_a_least_privilege_role_gets_every_fix_then_checks_clean_and_runs(
    pg_url, tmp_path
):
    await sql(pg_url, SHOP_SQL)
    role, publication = unique_name("app"), unique_name("pub")
    # The owner made the publication beforehand, for one table and without deletes.
    await sql(pg_url, f"CREATE ROLE {role} LOGIN; "
                      f"CREATE PUBLICATION {publication} FOR TABLE customers "
                      "WITH (publish = 'insert, update')")
    (tmp_path / "flusso.toml").write_text(CONFIG)
    (tmp_path / "customers.schema.yml").write_text(SCHEMA)
    role_url = pg_url.replace("postgresql://postgres@", f"postgresql://{role}@")
    slot = unique_name("slot")

    code, report = await check(role_url, tmp_path / "flusso.toml", publication, slot)
    assert code == 1
    errors = [(d["field"], d["message"], d["fix"]) for d in report["diagnostics"]
              if d["severity"] == "error"]
    assert errors == [
        ("role", f"role {role} may not stream changes (no REPLICATION right)",
         f'ALTER ROLE "{role}" REPLICATION;  -- as a superuser'),
        ("public.customers", f"role {role} may not read column(s) email, id of public.customers",
         f'GRANT SELECT ON "public"."customers" TO "{role}";  -- or only the columns: '
         f'GRANT SELECT ("email", "id") ON "public"."customers" TO "{role}";'),
        ("public.orders", f"role {role} may not read table public.orders (a to-many join reads "
         "whole rows)", f'GRANT SELECT ON "public"."orders" TO "{role}";'),
        (f"publication {publication}",
         f"publication {publication} does not publish public.orders and the delete, truncate "
         f"action(s); flusso may not change it: role does not own table public.orders; role "
         f'does not own publication "{publication}"',
         f'ALTER PUBLICATION "{publication}" ADD TABLE "public"."orders"; ALTER PUBLICATION '
         f"\"{publication}\" SET (publish = 'insert, update, delete, truncate');"),
    ]
    for _, _, fix in errors:
        await sql(pg_url, statement(fix))

    code, report = await check(role_url, tmp_path / "flusso.toml", publication, slot)
    assert code == 0, report["diagnostics"]
    # Warnings pass: orders moving between customers, and the owner's publication
    # publishing partitions under their own names (flusso maps them).
    assert [(d["severity"], d["fix"]) for d in report["diagnostics"]] == [
        ("warning", 'ALTER TABLE "public"."orders_high" REPLICA IDENTITY FULL; ALTER TABLE '
                    '"public"."orders_low" REPLICA IDENTITY FULL;  -- and on each partition '
                    "made later"),
        ("warning", f'ALTER PUBLICATION "{publication}" SET (publish_via_partition_root = true);'),
    ]
    await sql(pg_url, statement(report["diagnostics"][0]["fix"]))

    config = deployment(CONFIG, {"customers.schema.yml": SCHEMA})
    engine = Engine(role_url, config, slot=slot, publication=publication)
    try:
        await engine.start()
        await engine.settle()
        assert plain(engine.sink.documents("customers")) == {
            "1": {"id": 1, "email": "ada@x.io", "orders": [{"total": 5.0}, {"total": 7.5}],
                  "spent": 12.5},
            "2": {"id": 2, "email": "bob@x.io", "orders": [], "spent": None},
        }
        await sql(pg_url, "INSERT INTO orders VALUES (1500, 2, 1.25)")
        await sql(pg_url, "UPDATE orders SET customer_id = 2 WHERE id = 10")  # 1 → 2
        await sql(pg_url, "DELETE FROM orders WHERE id = 1010")
        await sql(pg_url, "UPDATE orders SET id = 20 WHERE id = 1500")  # across partitions
        await engine.settle()
        assert plain(engine.sink.documents("customers")) == {
            "1": {"id": 1, "email": "ada@x.io", "orders": [], "spent": None},
            "2": {"id": 2, "email": "bob@x.io", "orders": [{"total": 5.0}, {"total": 1.25}],
                  "spent": 6.25},
        }
        await sql(pg_url, "DELETE FROM customers WHERE id = 1")
        await engine.settle()
        assert set(engine.sink.documents("customers")) == {"2"}
    finally:
        await engine.close()
    # flusso used the owner's publication as it was.
    assert await scalar(
        pg_url, "SELECT count(*) FROM pg_publication_rel r JOIN pg_publication p "
                "ON p.oid = r.prpubid WHERE p.pubname = %s", (publication,)) == 2
