"""The store fixture: its tables, both index schemas (users, orders) and the seeded documents.

Reusable by any test: `STORE_SQL` loads the tables and rows, `users_schema()` and
`orders_schema()` are the two index schemas as model objects, `store_deployment()`
wraps them, and `SEEDED_DOCUMENTS` lists the bodies a backfill produces (numbers
compare by value: use `plain()` on built documents before comparing).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from flusso.domain.config.model import (
    Aggregate,
    BelongsTo,
    ColumnSource,
    Comparison,
    Deployment,
    Field,
    ForeignKey,
    HasMany,
    IndexConfig,
    IndexSchema,
    Join,
    ManyToMany,
    OrderBy,
    SoftDelete,
    SourceConfig,
    Through,
)

STORE_SQL = """
CREATE TABLE orgs  (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL, org_id int,
                    status text NOT NULL DEFAULT 'active',
                    deleted boolean NOT NULL DEFAULT false, bio text);
CREATE TABLE orders (id bigint PRIMARY KEY, user_id int NOT NULL, total numeric(10,2) NOT NULL,
                     status text NOT NULL, placed_at timestamptz NOT NULL);
CREATE TABLE order_items (id int PRIMARY KEY, order_id bigint NOT NULL, sku text NOT NULL, qty int NOT NULL);
CREATE TABLE tags (id int PRIMARY KEY, label text NOT NULL);
CREATE TABLE user_tags (user_id int NOT NULL, tag_id int NOT NULL, PRIMARY KEY (user_id, tag_id));
INSERT INTO orgs VALUES (1,'Acme'),(2,'Globex');
INSERT INTO users VALUES (1,'  Ada@X.io ',1,'active',false,NULL),(2,'bob@x.io',2,'active',false,'hi'),
                         (3,'cy@x.io',NULL,'banned',false,NULL),(4,'dee@x.io',1,'active',true,NULL);
INSERT INTO orders VALUES (10,1,19.99,'paid','2024-01-01Z'),(11,1,5.00,'cancelled','2024-02-01Z'),
                          (12,2,7.50,'paid','2024-03-01Z');
INSERT INTO order_items VALUES (100,10,'sku-a',2),(101,10,'sku-b',1);
INSERT INTO tags VALUES (1,'red'),(2,'blue');
INSERT INTO user_tags VALUES (1,1),(1,2),(2,1);
"""


def column(name: str, type_: str, *, nullable: bool = False, **extra: Any) -> Field:
    """A column field whose key equals its column name."""
    return Field(name, ColumnSource(column=name, type=type_, nullable=nullable, **extra))


def users_schema() -> IndexSchema:
    items = Join(
        table="order_items",
        kind=HasMany(foreign_key="order_id"),
        primary_key="id",
        nullable=False,
        fields=(column("sku", "keyword"), column("qty", "integer")),
        order_by=(OrderBy("id", "asc"),),
    )
    orders = Join(
        table="orders",
        kind=HasMany(foreign_key="user_id"),
        primary_key="id",
        nullable=False,
        fields=(column("id", "long"), column("total", "decimal"), Field("items", items)),
        filters=(Comparison("status", "neq", ("cancelled",)),),
        order_by=(OrderBy("placed_at", "desc"),),
        limit=5,
    )
    return IndexSchema(
        table="users",
        primary_key="id",
        soft_delete=SoftDelete(kind="column", name="deleted"),
        filters=(Comparison("status", "neq", ("banned",)),),
        fields=(
            column("id", "integer"),
            column("email", "keyword", transforms=("trim", "lowercase")),
            column("bio", "text", nullable=True, default="(none)"),
            Field("org", Join(
                table="orgs", kind=BelongsTo(column="org_id"), primary_key="id",
                nullable=True, fields=(column("name", "text"),),
            )),
            Field("orders", orders),
            Field("tags", Join(
                table="tags",
                kind=ManyToMany(Through(table="user_tags", left_key="user_id", right_key="tag_id")),
                primary_key="id",
                nullable=False,
                fields=(column("label", "keyword"),),
                order_by=(OrderBy("label"),),
            )),
            Field("orderCount", Aggregate(table="orders", op="count", key=ForeignKey("user_id"))),
            Field("spent", Aggregate(
                table="orders", op="sum", key=ForeignKey("user_id"), column="total",
                value_type="decimal",
            )),
        ),
    )


def orders_schema() -> IndexSchema:
    return IndexSchema(
        table="orders",
        primary_key="id",
        fields=(
            column("id", "long"),
            column("total", "decimal"),
            column("status", "keyword"),
            Field("buyer", Join(
                table="users", kind=BelongsTo(column="user_id"), primary_key="id",
                nullable=True, fields=(column("email", "keyword"),),
            )),
            Field("itemCount", Aggregate(
                table="order_items", op="count", key=ForeignKey("order_id"),
            )),
        ),
    )


def store_deployment(*extra: IndexConfig) -> Deployment:
    """Indexes `orders` and `users` (plus any extra ones), enabled, default source."""
    return Deployment(
        source=SourceConfig(),
        indexes=(
            IndexConfig(name="users", enabled=True, schema=users_schema()),
            IndexConfig(name="orders", enabled=True, schema=orders_schema()),
            *extra,
        ),
    )


SEEDED_DOCUMENTS: dict[str, dict[str, Any]] = {
    "users/1": {
        "id": 1, "email": "ada@x.io", "bio": "(none)", "org": {"name": "Acme"},
        "orders": [{"id": 10, "total": 19.99, "items": [
            {"sku": "sku-a", "qty": 2}, {"sku": "sku-b", "qty": 1}]}],
        "tags": [{"label": "blue"}, {"label": "red"}], "orderCount": 2, "spent": 24.99,
    },
    "users/2": {
        "id": 2, "email": "bob@x.io", "bio": "hi", "org": {"name": "Globex"},
        "orders": [{"id": 12, "total": 7.5, "items": []}], "tags": [{"label": "red"}],
        "orderCount": 1, "spent": 7.5,
    },
    "orders/10": {"id": 10, "total": 19.99, "status": "paid",
                  "buyer": {"email": "  Ada@X.io "}, "itemCount": 2},
    "orders/11": {"id": 11, "total": 5.0, "status": "cancelled",
                  "buyer": {"email": "  Ada@X.io "}, "itemCount": 0},
    "orders/12": {"id": 12, "total": 7.5, "status": "paid",
                  "buyer": {"email": "bob@x.io"}, "itemCount": 0},
}
"""Bodies after the initial backfill; users/3 (filtered) and users/4 (soft-deleted) are deletes."""


def plain(value: Any) -> Any:
    """Decimals as floats, recursively, so built documents compare by value with the listings."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Mapping):  # a built document is a Mapping (a WireDocument)
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
