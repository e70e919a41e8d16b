"""Postgres as users run it: partitioned tables and composite keys, under live changes.

Each test drives the real engine (capture, builder, pipeline) against a throwaway
Postgres and compares the sink with documents built afresh from the rows.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.integration.engine_harness import Engine, plain, sql

from flusso.domain.config.config_file import parse_config
from flusso.domain.config.model import Deployment
from flusso.domain.documents.change import DocumentId, Upsert

pytestmark = pytest.mark.asyncio


def deployment(toml: str, schemas: dict[str, str]) -> Deployment:
    def read(path: str) -> str:
        return schemas[path]

    return parse_config(toml, path="flusso.toml", read_schema=read)


def one_index(name: str, schema: str) -> Deployment:
    toml = (
        '[source]\ntype = "postgres"\n\n'
        f'[[index]]\nname = "{name}"\nschema = "{name}.schema.yml"\nenabled = true\n'
    )
    return deployment(toml, {f"{name}.schema.yml": schema})


async def documents(engine: Engine, index: str) -> dict[str, Any]:
    await engine.settle()
    return plain(engine.sink.documents(index))


async def fresh(engine: Engine, index: str, keys: list[tuple[Any, ...]]) -> dict[str, Any]:
    ops = await (await engine.oracle()).build_many([DocumentId(index, k) for k in keys])
    return {op.id.render(): plain(op.document) for op in ops if isinstance(op, Upsert)}


PARTITIONED_SQL = """
CREATE TABLE events (id bigint NOT NULL, at date NOT NULL, kind text NOT NULL, note text,
                     PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE events_2023 PARTITION OF events FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
INSERT INTO events VALUES (1, '2023-05-01', 'a', NULL), (2, '2024-05-01', 'b', 'x');
"""

EVENTS_SCHEMA = """
version: 1
table: events
fields:
  - long: id
    required: true
  - date: at
    required: true
  - keyword: kind
    required: true
  - keyword: note
    required: false
"""


async def test_a_partitioned_root_follows_changes_in_every_partition_new_ones_and_moves(pg_url):
    await sql(pg_url, PARTITIONED_SQL)
    engine = Engine(pg_url, one_index("events", EVENTS_SCHEMA))
    try:
        await engine.start()
        got = await documents(engine, "events")
        assert set(got) == {"1:2023-05-01", "2:2024-05-01"}

        await sql(pg_url, "INSERT INTO events VALUES (3, '2023-07-01', 'c', NULL)")
        await sql(pg_url, "UPDATE events SET note = 'y' WHERE id = 2")
        await sql(pg_url, "CREATE TABLE events_2025 PARTITION OF events "
                          "FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')")
        await sql(pg_url, "INSERT INTO events VALUES (4, '2025-02-01', 'd', NULL)")
        # A move between partitions: the key changes, so the old document goes.
        await sql(pg_url, "UPDATE events SET at = '2024-09-09' WHERE id = 1")
        await sql(pg_url, "DELETE FROM events WHERE id = 3")
        got = await documents(engine, "events")
        assert set(got) == {"1:2024-09-09", "2:2024-05-01", "4:2025-02-01"}
        assert got["2:2024-05-01"]["note"] == "y"
        assert got == await fresh(
            engine, "events",
            [(1, "2024-09-09"), (2, "2024-05-01"), (4, "2025-02-01")],
        )
        await engine.stop()
        await engine.start()
        await sql(pg_url, "UPDATE events SET kind = 'z'")
        got = await documents(engine, "events")
        assert {doc["kind"] for doc in got.values()} == {"z"}
    finally:
        await engine.close()


COMPOSITE_CHILD_SQL = """
CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL);
CREATE TABLE order_lines (order_id int NOT NULL, line_no int NOT NULL,
                          line_id int NOT NULL UNIQUE, product_id int NOT NULL, qty int NOT NULL,
                          PRIMARY KEY (order_id, line_no));
CREATE TABLE line_notes (id int PRIMARY KEY, line_id int NOT NULL, body text NOT NULL);
CREATE TABLE warehouses (region text NOT NULL, code text NOT NULL, wh_id int NOT NULL UNIQUE,
                         name text NOT NULL, PRIMARY KEY (region, code));
CREATE TABLE labels (lang text NOT NULL, slug text NOT NULL, label_id int NOT NULL UNIQUE,
                     title text NOT NULL, PRIMARY KEY (lang, slug));
CREATE TABLE order_labels (order_id int NOT NULL, label_id int NOT NULL,
                           PRIMARY KEY (order_id, label_id));
ALTER TABLE order_lines ADD COLUMN wh_id int NOT NULL DEFAULT 1;
INSERT INTO warehouses VALUES ('eu', 'mil', 1, 'Milan'), ('eu', 'ber', 2, 'Berlin');
INSERT INTO labels VALUES ('en', 'gift', 7, 'Gift'), ('it', 'regalo', 8, 'Regalo');
INSERT INTO order_labels VALUES (10, 7), (11, 7), (11, 8);
INSERT INTO products VALUES (1, 'pen'), (2, 'ink');
INSERT INTO orders VALUES (10, 'ada'), (11, 'bob');
INSERT INTO order_lines VALUES (10, 1, 100, 1, 2), (10, 2, 101, 2, 1), (11, 1, 110, 1, 5);
INSERT INTO line_notes VALUES (1, 100, 'gift');
"""

ORDERS_SCHEMA = """
version: 1
table: orders
primary_key: id
fields:
  - integer: id
    required: true
  - keyword: customer
    required: true
  - has_many: lines
    table: order_lines
    foreign_key: order_id
    primary_key: line_id
    order_by: [{ column: line_no }]
    fields:
      - integer: line_no
        required: true
      - integer: qty
        required: true
      - belongs_to: product
        table: products
        column: product_id
        primary_key: id
        required: true
        fields:
          - keyword: name
            required: true
      - count: notes
        table: line_notes
        foreign_key: line_id
      - belongs_to: warehouse
        table: warehouses
        column: wh_id
        primary_key: wh_id
        required: true
        fields:
          - keyword: name
            required: true
  - many_to_many: labels
    table: labels
    primary_key: label_id
    through: { table: order_labels, left_key: order_id, right_key: label_id }
    order_by: [{ column: title }]
    fields:
      - keyword: title
        required: true
"""


async def test_a_composite_key_child_follows_live_changes_at_every_depth(pg_url):
    await sql(pg_url, COMPOSITE_CHILD_SQL)
    engine = Engine(pg_url, one_index("orders", ORDERS_SCHEMA))
    try:
        await engine.start()
        got = await documents(engine, "orders")
        assert got["10"]["lines"] == [
            {"line_no": 1, "qty": 2, "product": {"name": "pen"}, "notes": 1,
             "warehouse": {"name": "Milan"}},
            {"line_no": 2, "qty": 1, "product": {"name": "ink"}, "notes": 0,
             "warehouse": {"name": "Milan"}},
        ]
        steps = [
            "INSERT INTO order_lines VALUES (11, 2, 111, 2, 3)",
            "UPDATE order_lines SET qty = 9 WHERE order_id = 10 AND line_no = 2",
            "UPDATE products SET name = 'fountain pen' WHERE id = 1",
            "INSERT INTO line_notes VALUES (2, 110, 'rush')",
            "UPDATE order_lines SET order_id = 11, line_no = 3 WHERE line_id = 101",
            "DELETE FROM order_lines WHERE order_id = 10 AND line_no = 1",
            "UPDATE warehouses SET name = 'Milano' WHERE region = 'eu' AND code = 'mil'",
            "UPDATE labels SET title = 'A gift' WHERE lang = 'en' AND slug = 'gift'",
            "INSERT INTO order_labels VALUES (10, 8)",
            "DELETE FROM order_labels WHERE order_id = 11 AND label_id = 7",
        ]
        for step in steps:
            await sql(pg_url, step)
            assert await documents(engine, "orders") == await fresh(
                engine, "orders", [(10,), (11,)]
            ), step
        got = await documents(engine, "orders")
        assert got["10"]["lines"] == []
        assert [line["line_no"] for line in got["11"]["lines"]] == [1, 2, 3]
        assert got["11"]["lines"][0] == {
            "line_no": 1, "qty": 5, "product": {"name": "fountain pen"}, "notes": 1,
            "warehouse": {"name": "Milano"},
        }
        assert got["10"]["labels"] == [{"title": "A gift"}, {"title": "Regalo"}]
        assert got["11"]["labels"] == [{"title": "Regalo"}]
    finally:
        await engine.close()
