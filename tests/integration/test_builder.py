"""`PostgresDocumentBuilder` against a real Postgres loaded with the store fixture (`fixtures_store`).

Each case runs its SQL, hands the builder the change events the WAL would produce
for it (kind, table, key, and the old/new tuple values the WAL carries), and checks
the ops that `resolve` + `build_many` return.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from fixtures_store import (
    SEEDED_DOCUMENTS,
    STORE_SQL,
    column,
    plain,
    store_deployment,
)

import flusso.adapters.postgres.builder as builder_module
from flusso.adapters.postgres.builder import PostgresDocumentBuilder
from flusso.adapters.postgres.catalog import column_facts
from flusso.app.ports import SourceError
from flusso.domain.config.model import (
    Aggregate,
    BelongsTo,
    Comparison,
    Constant,
    Deployment,
    Field,
    ForeignKey,
    GeoSource,
    IndexConfig,
    IndexSchema,
    Join,
    SoftDelete,
    SourceConfig,
    Through,
)
from flusso.domain.documents.change import ChangeEvent, Delete, DocumentId, TableRef, Upsert


def t(name: str) -> TableRef:
    return TableRef("public", name)


def up(table: str, key: int | str | uuid.UUID, *, pk: str = "id", **new: Any) -> ChangeEvent:
    return ChangeEvent("upsert", t(table), ((pk, key),), new={pk: key, **new})


def gone(table: str, key: Any, *, pk: str = "id", **old: Any) -> ChangeEvent:
    return ChangeEvent("delete", t(table), ((pk, key),), old={pk: key, **old})


@dataclass
class Store:
    url: str
    builder: PostgresDocumentBuilder

    def sql(self, statement: str) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(statement)

    async def sync(self, statement: str | None, events: Sequence[ChangeEvent]) -> dict[str, Any]:
        """Run the SQL, then resolve and build; `{"index/id": body-or-None}` (None = delete)."""
        if statement:
            self.sql(statement)
        ids = await self.builder.resolve(events)
        assert len(ids) == len(set(ids))
        ops = await self.builder.build_many(ids)
        assert sorted(op.id for op in ops) == sorted(ids)
        return {
            f"{op.id.index}/{op.id.render()}": plain(op.document) if isinstance(op, Upsert) else None
            for op in ops
        }


async def open_store(url: str, deployment: Deployment, sql: str = STORE_SQL) -> Store:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)
    builder = PostgresDocumentBuilder(url, deployment, pool_size=3)
    await builder.open()
    return Store(url, builder)


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[Store]:
    opened = await open_store(pg_url, store_deployment())
    yield opened
    await opened.builder.close()


def users_doc(key: str, **changes: Any) -> dict[str, Any]:
    return {**SEEDED_DOCUMENTS[f"users/{key}"], **changes}


def orders_doc(key: str, **changes: Any) -> dict[str, Any]:
    return {**SEEDED_DOCUMENTS[f"orders/{key}"], **changes}


ADA_ORDER_10 = SEEDED_DOCUMENTS["users/1"]["orders"][0]

# ---------------------------------------------------------------------------
# Seeding
# ---------------------------------------------------------------------------


async def test_backfill_builds_the_seeded_documents_and_deletes_filtered_and_soft_deleted_users(
    store: Store,
) -> None:
    roots = [up("users", k) for k in (1, 2, 3, 4)] + [up("orders", k) for k in (10, 11, 12)]
    ids = await store.builder.resolve(roots, roots_only=True)
    assert ids == [DocumentId("users", (k,)) for k in (1, 2, 3, 4)] + [
        DocumentId("orders", (k,)) for k in (10, 11, 12)
    ]
    assert await store.sync(None, roots) == {**SEEDED_DOCUMENTS, "users/3": None, "users/4": None}


async def test_roots_only_maps_no_related_rows(store: Store) -> None:
    assert await store.builder.resolve([up("order_items", 100), up("tags", 1)], roots_only=True) == []


def test_scopes_and_indexes_follow_index_name_order() -> None:
    builder = PostgresDocumentBuilder("postgresql://unused", store_deployment())
    assert builder.backfill_scopes() == [("orders", t("orders")), ("users", t("users"))]
    assert [m.index for m in builder.index_mappings()] == ["orders", "users"]


# ---------------------------------------------------------------------------
# B. Root rows
# ---------------------------------------------------------------------------


async def test_b10_an_inserted_user_is_upserted(store: Store) -> None:
    ops = await store.sync(
        "INSERT INTO users VALUES (5,' Eve@X.io',2,'active',false,NULL)",
        [up("users", 5, email=" Eve@X.io", org_id=2)],
    )
    assert ops == {"users/5": {
        "id": 5, "email": "eve@x.io", "bio": "(none)", "org": {"name": "Globex"}, "orders": [],
        "tags": [], "orderCount": 0, "spent": None,
    }}


async def test_b11_updating_a_user_rebuilds_it_and_its_belongs_to_referrers(store: Store) -> None:
    ops = await store.sync("UPDATE users SET bio='new' WHERE id=1", [up("users", 1)])
    assert ops == {
        "users/1": users_doc("1", bio="new"),
        "orders/10": orders_doc("10"),
        "orders/11": orders_doc("11"),
    }


async def test_b12_deleting_a_user_deletes_it_and_nulls_the_buyer(store: Store) -> None:
    ops = await store.sync("DELETE FROM users WHERE id=2", [gone("users", 2)])
    assert ops == {"users/2": None, "orders/12": orders_doc("12", buyer=None)}


async def test_b13_a_primary_key_change_is_a_delete_plus_an_upsert(store: Store) -> None:
    ops = await store.sync(
        "UPDATE users SET id=6 WHERE id=2", [gone("users", 2), up("users", 6, org_id=2)]
    )
    assert ops == {
        "users/2": None,
        "users/6": users_doc("2", id=6, orders=[], tags=[], orderCount=0, spent=None),
        "orders/12": orders_doc("12", buyer=None),
    }


async def test_b14_b15_soft_delete_set_then_cleared(store: Store) -> None:
    ops = await store.sync("UPDATE users SET deleted=true WHERE id=1", [up("users", 1)])
    assert ops == {"users/1": None, "orders/10": orders_doc("10"), "orders/11": orders_doc("11")}
    ops = await store.sync("UPDATE users SET deleted=false WHERE id=1", [up("users", 1)])
    assert ops == {
        "users/1": SEEDED_DOCUMENTS["users/1"],
        "orders/10": orders_doc("10"),
        "orders/11": orders_doc("11"),
    }


async def test_b16_a_timestamp_marker_soft_deletes_while_set(pg_url: str) -> None:
    schema = IndexSchema(
        table="soft_ts", primary_key="id", soft_delete=SoftDelete("column", "deleted_at"),
        fields=(column("id", "integer"), column("name", "text")),
    )
    deployment = Deployment(source=SourceConfig(), indexes=(IndexConfig("soft_ts", True, schema),))
    store = await open_store(
        pg_url, deployment, "CREATE TABLE soft_ts (id int PRIMARY KEY, name text, deleted_at timestamptz)"
    )
    try:
        event = [up("soft_ts", 1)]
        assert await store.sync("INSERT INTO soft_ts VALUES (1,'alive')", event) == {
            "soft_ts/1": {"id": 1, "name": "alive"}
        }
        assert await store.sync("UPDATE soft_ts SET deleted_at=now()", event) == {"soft_ts/1": None}
        assert await store.sync("UPDATE soft_ts SET deleted_at=NULL", event) == {
            "soft_ts/1": {"id": 1, "name": "alive"}
        }
    finally:
        await store.builder.close()


async def test_b17_leaving_the_root_filter_deletes_but_joins_still_see_the_row(store: Store) -> None:
    ops = await store.sync("UPDATE users SET status='banned' WHERE id=2", [up("users", 2)])
    assert ops == {"users/2": None, "orders/12": orders_doc("12")}


async def test_b18_entering_the_root_filter_upserts(store: Store) -> None:
    ops = await store.sync("UPDATE users SET status='active' WHERE id=3", [up("users", 3)])
    assert ops == {"users/3": {
        "id": 3, "email": "cy@x.io", "bio": "(none)", "org": None, "orders": [], "tags": [],
        "orderCount": 0, "spent": None,
    }}


async def test_b19_a_change_outside_the_root_filter_is_a_harmless_delete(store: Store) -> None:
    assert await store.sync("UPDATE users SET bio='x' WHERE id=3", [up("users", 3)]) == {"users/3": None}


KEY_MATRIX = [
    ("by_uuid", "uuid", uuid.UUID("095b7d61-cbbc-49d6-842c-231d06b81e7a"), "095b7d61-cbbc-49d6-842c-231d06b81e7a"),
    ("by_int", "int", 7, "7"),
    ("by_bigint", "bigint", 8, "8"),
    ("by_text", "text", "sku-9", "sku-9"),
]


async def test_b20_every_key_type_upserts_updates_and_deletes_under_one_id(pg_url: str) -> None:
    indexes = tuple(
        IndexConfig(table, True, IndexSchema(table=table, primary_key="id", fields=(column("name", "text"),)))
        for table, *_ in KEY_MATRIX
    )
    ddl = ";".join(f"CREATE TABLE {table} (id {type_} PRIMARY KEY, name text)" for table, type_, *_ in KEY_MATRIX)
    store = await open_store(pg_url, Deployment(source=SourceConfig(), indexes=indexes), ddl)
    try:
        for table, _type, key, rendered in KEY_MATRIX:
            literal = f"'{key}'"
            doc_id = f"{table}/{rendered}"
            assert await store.sync(f"INSERT INTO {table} VALUES ({literal}, 'first')", [up(table, key)]) == {
                doc_id: {"name": "first"}
            }
            assert await store.sync(f"UPDATE {table} SET name='second'", [up(table, key)]) == {
                doc_id: {"name": "second"}
            }
            assert await store.sync(f"DELETE FROM {table}", [gone(table, key)]) == {doc_id: None}
    finally:
        await store.builder.close()


async def test_b21_a_toasted_value_is_read_whole_from_the_row(store: Store) -> None:
    store.sql(
        "UPDATE users SET bio=(SELECT string_agg(md5(g::text),'') FROM generate_series(1,400) g) WHERE id=2"
    )
    ops = await store.sync(
        "UPDATE users SET email='BOB2@x.io' WHERE id=2",
        [up("users", 2, email="BOB2@x.io", org_id=2, status="active", deleted=False)],
    )
    assert len(ops["users/2"]["bio"]) == 12_800
    assert ops["users/2"]["email"] == "bob2@x.io"
    assert ops["orders/12"] == orders_doc("12", buyer={"email": "BOB2@x.io"})


async def test_b22_a_transaction_resolves_to_one_op_per_document(store: Store) -> None:
    events = [up("users", 1), up("users", 1), up("order_items", 102, order_id=10, sku="sku-c", qty=5)]
    ops = await store.sync(
        "BEGIN; UPDATE users SET bio='a' WHERE id=1; UPDATE users SET bio='b' WHERE id=1;"
        "INSERT INTO order_items VALUES (102,10,'sku-c',5); COMMIT;",
        events,
    )
    items = [*ADA_ORDER_10["items"], {"sku": "sku-c", "qty": 5}]
    assert ops == {
        "users/1": users_doc("1", bio="b", orders=[{**ADA_ORDER_10, "items": items}]),
        "orders/10": orders_doc("10", itemCount=3),
        "orders/11": orders_doc("11"),
    }


# ---------------------------------------------------------------------------
# C. Related rows
# ---------------------------------------------------------------------------

ORDER_COLUMNS = ("user_id", "total", "status", "placed_at")


def order_row(key: int, user_id: int, total: str, status: str, placed: str) -> dict[str, Any]:
    return dict(zip(ORDER_COLUMNS, (user_id, Decimal(total), status, placed), strict=True))


async def test_c23_a_new_order_rebuilds_its_user_and_creates_its_document(store: Store) -> None:
    ops = await store.sync(
        "INSERT INTO orders VALUES (13,1,3.00,'paid','2024-04-01Z')",
        [up("orders", 13, **order_row(13, 1, "3.00", "paid", "2024-04-01 00:00:00+00"))],
    )
    assert ops == {
        "users/1": users_doc("1", orders=[{"id": 13, "total": 3.0, "items": []}, ADA_ORDER_10],
                             orderCount=3, spent=27.99),
        "orders/13": {"id": 13, "total": 3.0, "status": "paid", "buyer": {"email": "  Ada@X.io "},
                      "itemCount": 0},
    }


async def test_c24_an_order_update_rebuilds_the_user_and_the_order(store: Store) -> None:
    ops = await store.sync("UPDATE orders SET total=20.00 WHERE id=10", [up("orders", 10, user_id=1)])
    assert ops == {
        "users/1": users_doc("1", orders=[{**ADA_ORDER_10, "total": 20.0}], spent=25.0),
        "orders/10": orders_doc("10", total=20.0),
    }


async def test_c25_an_order_leaving_the_join_filter_still_rebuilds_the_user(store: Store) -> None:
    ops = await store.sync("UPDATE orders SET status='cancelled' WHERE id=10", [up("orders", 10, user_id=1)])
    assert ops == {
        "users/1": users_doc("1", orders=[], orderCount=2, spent=24.99),
        "orders/10": orders_doc("10", status="cancelled"),
    }


FK_MOVE = "UPDATE orders SET user_id=1 WHERE id=12"
USERS_1_WITH_12 = users_doc(
    "1", orders=[{"id": 12, "total": 7.5, "items": []}, ADA_ORDER_10], orderCount=3, spent=32.49
)


async def test_c26_a_foreign_key_move_with_default_identity_rebuilds_only_the_new_parent(store: Store) -> None:
    ops = await store.sync(FK_MOVE, [up("orders", 12, **order_row(12, 1, "7.50", "paid", "2024-03-01"))])
    assert ops == {"users/1": USERS_1_WITH_12, "orders/12": orders_doc("12", buyer={"email": "  Ada@X.io "})}


async def test_c26_a_foreign_key_move_with_full_identity_also_rebuilds_the_old_parent(store: Store) -> None:
    event = ChangeEvent(
        "upsert", t("orders"), (("id", 12),),
        old={"id": 12, **order_row(12, 2, "7.50", "paid", "2024-03-01")},
        new={"id": 12, **order_row(12, 1, "7.50", "paid", "2024-03-01")},
    )
    ops = await store.sync(FK_MOVE, [event])
    assert ops == {
        "users/1": USERS_1_WITH_12,
        "users/2": users_doc("2", orders=[], orderCount=0, spent=None),
        "orders/12": orders_doc("12", buyer={"email": "  Ada@X.io "}),
    }


async def test_c27_deleting_an_order_with_default_identity_leaves_its_user_stale(store: Store) -> None:
    assert await store.sync("DELETE FROM orders WHERE id=12", [gone("orders", 12)]) == {"orders/12": None}


async def test_c27_deleting_an_order_with_full_identity_rebuilds_its_user(store: Store) -> None:
    event = gone("orders", 12, **order_row(12, 2, "7.50", "paid", "2024-03-01"))
    assert await store.sync("DELETE FROM orders WHERE id=12", [event]) == {
        "orders/12": None,
        "users/2": users_doc("2", orders=[], orderCount=0, spent=None),
    }


async def test_c28_a_new_grandchild_resolves_through_two_hops(store: Store) -> None:
    ops = await store.sync(
        "INSERT INTO order_items VALUES (102,10,'sku-c',5)",
        [up("order_items", 102, order_id=10, sku="sku-c", qty=5)],
    )
    items = [*ADA_ORDER_10["items"], {"sku": "sku-c", "qty": 5}]
    assert ops == {
        "users/1": users_doc("1", orders=[{**ADA_ORDER_10, "items": items}]),
        "orders/10": orders_doc("10", itemCount=3),
    }


async def test_c29_a_grandchild_update_rebuilds_user_and_order(store: Store) -> None:
    ops = await store.sync("UPDATE order_items SET qty=3 WHERE id=100", [up("order_items", 100, order_id=10)])
    items = [{"sku": "sku-a", "qty": 3}, ADA_ORDER_10["items"][1]]
    assert ops == {
        "users/1": users_doc("1", orders=[{**ADA_ORDER_10, "items": items}]),
        "orders/10": orders_doc("10"),
    }


async def test_c30_a_belongs_to_target_change_rebuilds_every_referrer(store: Store) -> None:
    ops = await store.sync("UPDATE orgs SET name='Acme Corp' WHERE id=1", [up("orgs", 1, name="Acme Corp")])
    assert ops == {"users/1": users_doc("1", org={"name": "Acme Corp"}), "users/4": None}


async def test_c31_a_deleted_belongs_to_target_leaves_a_null_object(store: Store) -> None:
    assert await store.sync("DELETE FROM orgs WHERE id=2", [gone("orgs", 2)]) == {
        "users/2": users_doc("2", org=None)
    }


async def test_c32_re_pointing_a_parent_column_is_a_change_of_the_parent_row(store: Store) -> None:
    ops = await store.sync("UPDATE users SET org_id=2 WHERE id=1", [up("users", 1, org_id=2)])
    assert ops == {
        "users/1": users_doc("1", org={"name": "Globex"}),
        "orders/10": orders_doc("10"),
        "orders/11": orders_doc("11"),
    }


def junction(kind: str, user_id: int, tag_id: int) -> ChangeEvent:
    values = {"user_id": user_id, "tag_id": tag_id}
    key = (("user_id", user_id), ("tag_id", tag_id))
    if kind == "upsert":
        return ChangeEvent("upsert", t("user_tags"), key, new=values)
    return ChangeEvent("delete", t("user_tags"), key, old=values)


async def test_c33_a_new_junction_row_rebuilds_the_left_document(store: Store) -> None:
    assert await store.sync("INSERT INTO user_tags VALUES (2,2)", [junction("upsert", 2, 2)]) == {
        "users/2": users_doc("2", tags=[{"label": "blue"}, {"label": "red"}])
    }


async def test_c34_a_deleted_junction_row_resolves_from_its_key(store: Store) -> None:
    ops = await store.sync("DELETE FROM user_tags WHERE user_id=1 AND tag_id=1", [junction("delete", 1, 1)])
    assert ops == {"users/1": users_doc("1", tags=[{"label": "blue"}])}


async def test_c35_a_far_row_change_rebuilds_every_linked_document(store: Store) -> None:
    ops = await store.sync("UPDATE tags SET label='crimson' WHERE id=1", [up("tags", 1, label="crimson")])
    assert ops == {
        "users/1": users_doc("1", tags=[{"label": "blue"}, {"label": "crimson"}]),
        "users/2": users_doc("2", tags=[{"label": "crimson"}]),
    }


async def test_c36_a_table_no_index_reads_resolves_to_nothing(store: Store) -> None:
    store.sql("CREATE TABLE audit (id int PRIMARY KEY)")
    assert await store.sync("INSERT INTO audit VALUES (1)", [up("audit", 1)]) == {}
    assert await store.builder.resolve([ChangeEvent("upsert", TableRef("other", "users"), (("id", 1),))]) == []


# ---------------------------------------------------------------------------
# Resolution details
# ---------------------------------------------------------------------------


async def test_resolving_a_batch_keeps_first_seen_order_across_events(store: Store) -> None:
    ids = await store.builder.resolve([
        up("tags", 2),
        up("orders", 12, user_id=2),
        up("order_items", 100),
        up("users", 1),
    ])
    assert [f"{i.index}/{i.render()}" for i in ids] == [
        "users/1", "orders/12", "users/2", "orders/10", "orders/11",
    ]


async def test_a_self_referencing_join_rebuilds_the_referrers_too(pg_url: str) -> None:
    schema = IndexSchema(
        table="people", primary_key="id",
        fields=(column("name", "text"), Field("manager", Join(
            "people", BelongsTo("manager_id"), "id", True, (column("name", "text"),),
        ))),
    )
    store = await open_store(
        pg_url, Deployment(source=SourceConfig(), indexes=(IndexConfig("people", True, schema),)),
        "CREATE TABLE people (id int PRIMARY KEY, name text, manager_id int);"
        "INSERT INTO people VALUES (1,'boss',NULL),(2,'dev',1),(3,'ops',1)",
    )
    try:
        ops = await store.sync("UPDATE people SET name='chief' WHERE id=1", [up("people", 1)])
        assert ops == {
            "people/1": {"name": "chief", "manager": None},
            "people/2": {"name": "dev", "manager": {"name": "chief"}},
            "people/3": {"name": "ops", "manager": {"name": "chief"}},
        }
    finally:
        await store.builder.close()


async def test_an_int_foreign_key_to_a_bigint_root_key_yields_root_typed_ids(store: Store) -> None:
    ids = await store.builder.resolve([up("order_items", 100)])
    assert DocumentId("orders", (10,)) in ids
    ops = await store.builder.build_many([DocumentId("orders", (10,))])
    assert isinstance(ops[0], Upsert)


# ---------------------------------------------------------------------------
# Types, features and batching
# ---------------------------------------------------------------------------

FEATURES_SQL = """
CREATE TABLE things (id uuid PRIMARY KEY, at timestamptz, naive timestamp, clock time, day date,
                     blob bytea, price numeric(10,2), ratio float8, pad char(4), doc jsonb,
                     lat float8, lon float8, kind text);
CREATE TABLE labels (id int PRIMARY KEY, name text);
CREATE TABLE thing_labels (thing_id uuid, label_id int, PRIMARY KEY (thing_id, label_id));
INSERT INTO things VALUES ('095b7d61-cbbc-49d6-842c-231d06b81e7a', '2024-01-02 03:04:05.5+01',
  '2024-01-02 03:04:05.678901', '03:04:05.12', '2024-01-02', '\\x0102ff', 19.90, 'NaN', 'ab',
  '{"n": 1.10}', 1.5, NULL, 'a');
INSERT INTO labels VALUES (1,'red'),(2,'blue'),(3,'green');
INSERT INTO thing_labels VALUES ('095b7d61-cbbc-49d6-842c-231d06b81e7a',1),
  ('095b7d61-cbbc-49d6-842c-231d06b81e7a',2),('095b7d61-cbbc-49d6-842c-231d06b81e7a',3);
"""
THING = uuid.UUID("095b7d61-cbbc-49d6-842c-231d06b81e7a")


async def test_wire_values_decode_per_declared_type_with_filters_and_constants(pg_url: str) -> None:
    labels = Through("thing_labels", "thing_id", "label_id")
    schema = IndexSchema(
        table="things", primary_key="id",
        filters=(Comparison("kind", "in", ("a", "b")), Comparison("day", "between", ("2024-01-01", "2024-12-31"))),
        fields=(
            column("id", "uuid"), column("at", "timestamp"), column("naive", "timestamp"),
            column("clock", "timestamp"), column("day", "date"), column("blob", "binary"),
            column("price", "decimal"), column("ratio", "double"), column("pad", "keyword"),
            column("doc", "json"),
            Field("where", GeoSource("lat", "lon", nullable=True)),
            Field("n", Constant(5)), Field("yes", Constant(True)), Field("nested", Constant({"a": [1, "x"]})),
            Field("labelIds", Aggregate("labels", "ids", labels, element_type="integer",
                                        filters=(Comparison("name", "neq", ("blue",)),))),
            Field("allIds", Aggregate("labels", "ids", labels, element_type="integer")),
        ),
    )
    store = await open_store(pg_url, Deployment(source=SourceConfig(), indexes=(IndexConfig("things", True, schema),)),
                             FEATURES_SQL)
    try:
        (op,) = await store.builder.build_many([DocumentId("things", (THING,))])
        assert isinstance(op, Upsert)
        doc = dict(op.document)
        assert sorted(doc.pop("labelIds")) == [1, 3]
        assert sorted(doc.pop("allIds")) == [1, 2, 3]
        assert doc == {
            "id": str(THING), "at": "2024-01-02T02:04:05.500+00:00", "naive": "2024-01-02T03:04:05.678901",
            "clock": "03:04:05.120", "day": "2024-01-02", "blob": b"\x01\x02\xff",
            "price": Decimal("19.90"), "ratio": "NaN", "pad": "ab  ", "doc": {"n": Decimal("1.10")},
            "where": None, "n": 5, "yes": True, "nested": {"a": [1, "x"]},
        }
        store.sql("UPDATE things SET kind='c'")
        assert await store.builder.build_many([DocumentId("things", (THING,))]) == [
            Delete(DocumentId("things", (THING,)))
        ]
    finally:
        await store.builder.close()


async def test_more_than_fifty_fields_build_through_jsonb_concatenation(pg_url: str) -> None:
    columns = [f"c{i}" for i in range(120)]
    ddl = f"CREATE TABLE wide (id int PRIMARY KEY, {', '.join(f'{c} int' for c in columns)});" + (
        f"INSERT INTO wide VALUES (1, {', '.join(str(i) for i in range(120))})"
    )
    schema = IndexSchema(table="wide", primary_key="id", fields=tuple(column(c, "integer") for c in columns))
    store = await open_store(pg_url, Deployment(source=SourceConfig(), indexes=(IndexConfig("wide", True, schema),)), ddl)
    try:
        (op,) = await store.builder.build_many([DocumentId("wide", (1,))])
        assert isinstance(op, Upsert)
        assert op.document == {c: i for i, c in enumerate(columns)}
    finally:
        await store.builder.close()


async def test_an_index_without_a_declared_key_builds_one_row_per_id(pg_url: str) -> None:
    """A composite id joins the key values in primary-key order, not column order."""
    schema = IndexSchema(table="pairs", fields=(column("a", "integer"), column("b", "text")))
    store = await open_store(
        pg_url, Deployment(source=SourceConfig(), indexes=(IndexConfig("pairs", True, schema),)),
        "CREATE TABLE pairs (b text, a int, PRIMARY KEY (a, b)); INSERT INTO pairs VALUES ('x', 1)",
    )
    try:
        event = ChangeEvent("upsert", t("pairs"), (("a", 1), ("b", "x")))
        ids = await store.builder.resolve([event])
        assert [i.render() for i in ids] == ["1:x"]
        ops = await store.builder.build_many([*ids, DocumentId("pairs", (1, "y"))])
        assert ops == [Upsert(ids[0], {"a": 1, "b": "x"}), Delete(DocumentId("pairs", (1, "y")))]
    finally:
        await store.builder.close()


async def test_building_a_thousand_documents_takes_one_statement_per_512_ids(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.sql(
        "INSERT INTO users SELECT g, 'u' || g || '@x.io', 1, 'active', false, NULL "
        "FROM generate_series(1000, 1999) g"
    )
    ids = [DocumentId("users", (k,)) for k in range(1000, 2000)]
    await store.builder.build_many(ids[:1])  # catalog facts are cached after the first build
    executed: list[str] = []
    original = psycopg.AsyncRawCursor.execute

    async def counting(self, query, params=None, **kwargs):  # type: ignore[no-untyped-def]
        executed.append(query)
        return await original(self, query, params, **kwargs)

    monkeypatch.setattr(psycopg.AsyncRawCursor, "execute", counting)
    ops = await store.builder.build_many(ids)
    assert len(executed) == 2
    assert len(ops) == 1000
    assert all(isinstance(op, Upsert) and op.document["orderCount"] == 0 for op in ops)


async def test_a_failing_query_is_a_source_error_with_its_cause(store: Store) -> None:
    store.sql("ALTER TABLE users RENAME COLUMN bio TO about")
    with pytest.raises(SourceError, match="building users documents failed") as caught:
        await store.builder.build_many([DocumentId("users", (1,))])
    assert isinstance(caught.value.__cause__, psycopg.Error)


async def test_a_join_target_without_a_primary_key_is_matched_on_its_declared_key(
    pg_url: str,
) -> None:
    schema = IndexSchema(table="a", primary_key="id", fields=(Field("b", Join(
        "b", BelongsTo("b_id"), "id", True, (column("x", "text"),))),))
    store = await open_store(
        pg_url, Deployment(source=SourceConfig(), indexes=(IndexConfig("a", True, schema),)),
        "CREATE TABLE a (id int PRIMARY KEY, b_id int); CREATE TABLE b (id int, x text); "
        "INSERT INTO a VALUES (1, 5); INSERT INTO b VALUES (5, 'five')",
    )
    try:
        ops = await store.builder.build_many([DocumentId("a", (1,))])
        assert ops == [Upsert(DocumentId("a", (1,)), {"b": {"x": "five"}})]
    finally:
        await store.builder.close()


async def test_ids_of_a_table_without_a_single_column_key_are_reported(pg_url: str) -> None:
    schema = IndexSchema(table="a", primary_key="id", fields=(
        Field("bs", Aggregate("b", "ids", ForeignKey("a_id"), element_type="integer")),))
    store = await open_store(
        pg_url, Deployment(source=SourceConfig(), indexes=(IndexConfig("a", True, schema),)),
        "CREATE TABLE a (id int PRIMARY KEY); "
        "CREATE TABLE b (a_id int, n int, PRIMARY KEY (a_id, n))",
    )
    try:
        with pytest.raises(SourceError, match=r"table public.b has no primary key of one column"):
            await store.builder.build_many([DocumentId("a", (1,))])
    finally:
        await store.builder.close()


async def test_column_facts_reports_types_nullability_and_enums(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TYPE mood AS ENUM ('ok'); CREATE TABLE f (id int PRIMARY KEY, "
                     "total numeric(10,2), m mood NOT NULL, at timestamp(3) with time zone)")
    async with await psycopg.AsyncConnection.connect(pg_url) as conn:
        assert await column_facts(conn, "public", "f") == {
            "id": ("integer", False, False),
            "total": ("numeric(10,2)", True, False),
            "m": ("mood", False, True),
            "at": ("timestamp(3) with time zone", True, False),
        }
        assert await column_facts(conn, "public", "missing") is None


# -- visibility of decoded commits --------------------------------------------------------


async def test_await_visible_waits_while_a_transaction_is_open_and_returns_once_it_commits(
    store: Store,
) -> None:
    writer = await psycopg.AsyncConnection.connect(store.url)  # one open transaction
    try:
        await writer.execute("UPDATE users SET email = 'pending@x.io' WHERE id = 1")
        row = await (await writer.execute("SELECT pg_current_xact_id()::text")).fetchone()
        assert row is not None
        xid = int(row[0]) % 2**32  # pgoutput sends 32-bit transaction ids

        waiting = asyncio.create_task(store.builder.await_visible({xid}))
        await asyncio.sleep(0.2)
        assert not waiting.done()  # its rows are not visible to new reads yet

        await writer.commit()
        await asyncio.wait_for(waiting, timeout=5)
    finally:
        await writer.close()

    # Committed long ago, or aborted: both are finished, so nothing to wait for.
    await asyncio.wait_for(store.builder.await_visible({xid, 3}), timeout=5)


async def test_await_visible_gives_up_with_a_source_error(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(builder_module, "VISIBILITY_TIMEOUT", 0.05)
    writer = await psycopg.AsyncConnection.connect(store.url)
    try:
        row = await (await writer.execute("SELECT pg_current_xact_id()::text")).fetchone()
        assert row is not None
        with pytest.raises(SourceError, match="stayed invisible"):
            await store.builder.await_visible({int(row[0]) % 2**32})
    finally:
        await writer.close()
