"""Differential test of the real engine: hundreds of random transactions over a schema
that uses every relation kind, then the in-memory sink must equal a fresh rebuild.

The schema: root `customers` (soft delete on a timestamp, root filter on `tier`),
belongs_to `regions`, has_one `profiles` (ordered), has_many `orders` (join filter)
→ has_many `items` → belongs_to `products`, many_to_many `labels` through
`customer_labels`, and aggregates count/sum/ids (direct and through). Child tables
use REPLICA IDENTITY FULL so deletes and foreign-key moves reach old parents (R-9).
"""

from __future__ import annotations

import asyncio
import random
import time

import psycopg
import pytest
from engine_harness import Engine, sql
from fixtures_store import column

from flusso.domain.config.model import (
    Aggregate,
    BelongsTo,
    Comparison,
    Deployment,
    Field,
    ForeignKey,
    HasMany,
    HasOne,
    IndexConfig,
    IndexSchema,
    Join,
    ManyToMany,
    OrderBy,
    SoftDelete,
    SourceConfig,
    Through,
)

SEEDS = (20240611, 7)
TRANSACTIONS = 320

SCHEMA_SQL = """
CREATE TABLE regions (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, region_id int,
                        tier text NOT NULL DEFAULT 'gold', deleted_at timestamptz);
CREATE TABLE profiles (id int PRIMARY KEY, customer_id int NOT NULL, bio text, rank int NOT NULL);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, status text NOT NULL,
                     total numeric(10,2) NOT NULL);
CREATE TABLE items (id int PRIMARY KEY, order_id int NOT NULL, product_id int, qty int NOT NULL);
CREATE TABLE products (id int PRIMARY KEY, title text NOT NULL);
CREATE TABLE labels (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE customer_labels (customer_id int NOT NULL, label_id int NOT NULL,
                              PRIMARY KEY (customer_id, label_id));
ALTER TABLE profiles REPLICA IDENTITY FULL;
ALTER TABLE orders REPLICA IDENTITY FULL;
ALTER TABLE items REPLICA IDENTITY FULL;
ALTER TABLE customer_labels REPLICA IDENTITY FULL;
INSERT INTO regions SELECT g, 'region-' || g FROM generate_series(1, 4) g;
INSERT INTO products SELECT g, 'product-' || g FROM generate_series(1, 8) g;
INSERT INTO labels SELECT g, 'label-' || g FROM generate_series(1, 6) g;
INSERT INTO customers SELECT g, 'c' || g, 1 + g % 4, CASE WHEN g % 7 = 0 THEN 'blocked' ELSE 'gold' END,
                             CASE WHEN g % 9 = 0 THEN now() END FROM generate_series(1, 30) g;
INSERT INTO profiles SELECT g, g, 'bio ' || g, g FROM generate_series(1, 20) g;
INSERT INTO orders SELECT g, 1 + g % 30, CASE WHEN g % 5 = 0 THEN 'void' ELSE 'paid' END, g * 1.25
                   FROM generate_series(1, 60) g;
INSERT INTO items SELECT g, 1 + g % 60, 1 + g % 8, 1 + g % 3 FROM generate_series(1, 120) g;
INSERT INTO customer_labels SELECT g, 1 + g % 6 FROM generate_series(1, 30) g;
"""

CUSTOMERS, ORDERS, ITEMS, PROFILES = 40, 80, 160, 30


def deployment() -> Deployment:
    items = Join(
        table="items", kind=HasMany(foreign_key="order_id"), primary_key="id", nullable=False,
        fields=(
            column("id", "integer"), column("qty", "integer"),
            Field("product", Join(
                table="products", kind=BelongsTo(column="product_id"), primary_key="id",
                nullable=True, fields=(column("title", "keyword"),))),
        ),
        order_by=(OrderBy("id"),),
    )
    orders = Join(
        table="orders", kind=HasMany(foreign_key="customer_id"), primary_key="id",
        nullable=False,
        fields=(column("id", "integer"), column("status", "keyword"),
                column("total", "decimal"), Field("items", items)),
        filters=(Comparison("status", "neq", ("void",)),),
        order_by=(OrderBy("id"),),
    )
    schema = IndexSchema(
        table="customers",
        primary_key="id",
        soft_delete=SoftDelete(kind="column", name="deleted_at"),
        filters=(Comparison("tier", "neq", ("blocked",)),),
        fields=(
            column("id", "integer"),
            column("name", "keyword"),
            Field("region", Join(
                table="regions", kind=BelongsTo(column="region_id"), primary_key="id",
                nullable=True, fields=(column("name", "keyword"),))),
            Field("profile", Join(
                table="profiles", kind=HasOne(foreign_key="customer_id"), primary_key="id",
                nullable=True, fields=(column("bio", "text", nullable=True),),
                order_by=(OrderBy("rank", "desc"), OrderBy("id")))),
            Field("orders", orders),
            Field("labels", Join(
                table="labels",
                kind=ManyToMany(Through("customer_labels", "customer_id", "label_id")),
                primary_key="id", nullable=False, fields=(column("name", "keyword"),),
                order_by=(OrderBy("name"),))),
            Field("orderCount", Aggregate("orders", "count", ForeignKey("customer_id"))),
            Field("spent", Aggregate("orders", "sum", ForeignKey("customer_id"),
                                     column="total", value_type="decimal")),
            Field("orderIds", Aggregate("orders", "ids", ForeignKey("customer_id"),
                                        element_type="integer")),
            Field("labelIds", Aggregate("labels", "ids",
                                        Through("customer_labels", "customer_id", "label_id"),
                                        element_type="integer")),
            Field("labelCount", Aggregate("labels", "count",
                                          Through("customer_labels", "customer_id", "label_id"))),
        ),
    )
    return Deployment(source=SourceConfig(),
                      indexes=(IndexConfig("customers", True, schema),))


def random_statement(rng: random.Random) -> str:
    """One random DML statement; ids collide on purpose (no-op updates, dangling references)."""
    c, o, i, p = (rng.randint(1, n) for n in (CUSTOMERS, ORDERS, ITEMS, PROFILES))
    kind = rng.choices(
        ["customer", "soft", "tier", "customer_pk", "profile", "order", "order_move",
         "order_status", "item", "item_move", "junction", "label", "product", "region"],
        weights=[8, 6, 6, 1, 6, 8, 6, 6, 8, 6, 7, 3, 3, 2],
    )[0]
    if kind == "customer":
        return rng.choice([
            f"INSERT INTO customers VALUES ({c}, 'n{c}', {rng.randint(1, 5)}, 'gold', NULL) "
            "ON CONFLICT DO NOTHING",
            f"INSERT INTO customers VALUES ({c}, 'm{c}', NULL, 'gold', NULL) "
            "ON CONFLICT DO NOTHING",
            f"UPDATE customers SET name = 'r{rng.randint(0, 99)}' WHERE id = {c}",
            f"UPDATE customers SET region_id = {rng.choice(['NULL', '1', '2', '3', '5'])} "
            f"WHERE id = {c}",
            f"DELETE FROM customers WHERE id = {c}",
        ])
    if kind == "soft":
        marker = rng.choices(["now()", "NULL"], weights=[1, 2])[0]
        return f"UPDATE customers SET deleted_at = {marker} WHERE id = {c}"
    if kind == "tier":
        tier = rng.choices(["gold", "blocked"], weights=[2, 1])[0]
        return f"UPDATE customers SET tier = '{tier}' WHERE id = {c}"
    if kind == "customer_pk":
        new = rng.randint(CUSTOMERS + 1, CUSTOMERS + 20)
        return (f"UPDATE customers SET id = {new} WHERE id = {c} "
                f"AND NOT EXISTS (SELECT 1 FROM customers WHERE id = {new})")
    if kind == "profile":
        return rng.choice([
            f"INSERT INTO profiles VALUES ({p}, {c}, 'b{rng.randint(0, 9)}', {rng.randint(0, 5)}) "
            "ON CONFLICT DO NOTHING",
            f"UPDATE profiles SET bio = 'u{rng.randint(0, 99)}', rank = {rng.randint(0, 5)} "
            f"WHERE id = {p}",
            f"UPDATE profiles SET customer_id = {c} WHERE id = {p}",
            f"DELETE FROM profiles WHERE id = {p}",
        ])
    if kind == "order":
        return rng.choice([
            f"INSERT INTO orders VALUES ({o}, {c}, 'paid', {rng.randint(1, 9999) / 100}) "
            "ON CONFLICT DO NOTHING",
            f"UPDATE orders SET total = {rng.randint(1, 9999) / 100} WHERE id = {o}",
            f"DELETE FROM orders WHERE id = {o}",
        ])
    if kind == "order_move":
        return f"UPDATE orders SET customer_id = {c} WHERE id = {o}"
    if kind == "order_status":
        return f"UPDATE orders SET status = '{rng.choice(['paid', 'void'])}' WHERE id = {o}"
    if kind == "item":
        return rng.choice([
            f"INSERT INTO items VALUES ({i}, {o}, {rng.randint(1, 9)}, {rng.randint(1, 5)}) "
            "ON CONFLICT DO NOTHING",
            f"UPDATE items SET qty = {rng.randint(1, 5)}, product_id = {rng.randint(1, 9)} "
            f"WHERE id = {i}",
            f"DELETE FROM items WHERE id = {i}",
        ])
    if kind == "item_move":
        return f"UPDATE items SET order_id = {o} WHERE id = {i}"
    if kind == "junction":
        label = rng.randint(1, 7)
        return rng.choice([
            f"INSERT INTO customer_labels VALUES ({c}, {label}) ON CONFLICT DO NOTHING",
            f"DELETE FROM customer_labels WHERE customer_id = {c} AND label_id = {label}",
        ])
    if kind == "label":
        label = rng.randint(1, 7)
        return rng.choice([
            f"UPDATE labels SET name = 'l{rng.randint(0, 99)}' WHERE id = {label}",
            f"DELETE FROM labels WHERE id = {label}",
            f"INSERT INTO labels VALUES ({label}, 'new{label}') ON CONFLICT DO NOTHING",
        ])
    if kind == "product":
        product = rng.randint(1, 9)
        return rng.choice([
            f"UPDATE products SET title = 't{rng.randint(0, 99)}' WHERE id = {product}",
            f"DELETE FROM products WHERE id = {product}",
            f"INSERT INTO products VALUES ({product}, 'p{product}') ON CONFLICT DO NOTHING",
        ])
    region = rng.randint(1, 5)
    return rng.choice([
        f"UPDATE regions SET name = 'g{rng.randint(0, 99)}' WHERE id = {region}",
        f"DELETE FROM regions WHERE id = {region}",
        f"INSERT INTO regions VALUES ({region}, 'r{region}') ON CONFLICT DO NOTHING",
    ])


@pytest.mark.parametrize("seed", SEEDS)
async def test_random_transactions_converge_to_a_fresh_rebuild(pg_url, seed):
    await sql(pg_url, SCHEMA_SQL)
    rng = random.Random(seed)
    started = time.monotonic()
    eng = await Engine(pg_url, deployment()).start()
    try:
        await eng.assert_converged()  # the backfill alone
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
            for _ in range(TRANSACTIONS):
                statements = [random_statement(rng) for _ in range(rng.randint(1, 3))]
                async with conn.transaction():
                    for statement in statements:
                        await conn.execute(statement.encode())
                if rng.random() < 0.1:
                    await asyncio.sleep(0.01)  # let batches of different sizes form
        await eng.assert_converged()
        documents = eng.sink.documents("customers")
        assert len(documents) >= 10
        live_changes = sum(t.confirmed for t in eng.capture.delivered)  # type: ignore[union-attr]
        assert live_changes >= TRANSACTIONS
    finally:
        await eng.close()
    assert time.monotonic() - started < 60
