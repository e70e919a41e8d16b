"""The DocumentBuilder contract, held by `InMemoryDocumentBuilder` and `PostgresDocumentBuilder`
on a throwaway database alike.

The world: `users(id, email)` is the root of the index `users`; `orders(id, user_id, total)`
rows belong to a user through `user_id`. Each leg can commit rows; the suite resolves
change events and builds documents through the port. The fake's document is the root row
itself, so bodies are compared on the root columns.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from flusso.adapters.fakes.builder import InMemoryDocumentBuilder, InMemoryIndex
from flusso.adapters.postgres.builder import PostgresDocumentBuilder
from flusso.app.ports import DocumentBuilder
from flusso.domain.config.model import (
    ColumnSource,
    Deployment,
    Field,
    HasMany,
    IndexConfig,
    IndexSchema,
    Join,
    SourceConfig,
)
from flusso.domain.documents.change import ChangeEvent, Delete, DocumentId, TableRef, Upsert

USERS = TableRef("public", "users")
ORDERS = TableRef("public", "orders")

Row = dict[str, Any]


@dataclass
class Leg:
    builder: DocumentBuilder
    put: Callable[[TableRef, Row], Awaitable[int]]
    """Commit a row (insert or replace by `id`); the transaction id that committed it."""
    delete: Callable[[TableRef, int], Awaitable[None]]


def _deployment() -> Deployment:
    def column(name: str, type_: str) -> Field:
        return Field(name, ColumnSource(column=name, type=type_, nullable=name != "id"))

    orders = Join(
        table="orders",
        kind=HasMany(foreign_key="user_id"),
        primary_key="id",
        nullable=False,
        fields=(column("total", "integer"),),
    )
    schema = IndexSchema(
        table="users",
        fields=(column("id", "integer"), column("email", "keyword"), Field("orders", orders)),
        primary_key="id",
    )
    return Deployment(
        source=SourceConfig(), indexes=(IndexConfig(name="users", enabled=True, schema=schema),)
    )


@pytest.fixture(params=["memory", "postgres"])
async def leg(request: pytest.FixtureRequest) -> AsyncIterator[Leg]:
    if request.param == "memory":
        fake = InMemoryDocumentBuilder([InMemoryIndex("users", USERS, {ORDERS: "user_id"})])
        xids = iter(range(1000, 2000))

        async def put_memory(table: TableRef, row: Row) -> int:
            fake.put_row(table, (("id", row["id"]),), row)
            return next(xids)

        async def delete_memory(table: TableRef, id: int) -> None:
            fake.delete_row(table, (("id", id),))

        yield Leg(fake, put_memory, delete_memory)
        return
    url: str = request.getfixturevalue("pg_url")
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("CREATE TABLE users (id int PRIMARY KEY, email text)")
        await conn.execute(
            "CREATE TABLE orders (id int PRIMARY KEY, user_id int, total int NOT NULL)"
        )

        async def put_pg(table: TableRef, row: Row) -> int:
            columns = ", ".join(row)
            updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in row if c != "id")
            placeholders = ", ".join(["%s"] * len(row))
            async with conn.transaction():
                await conn.execute(
                    f"INSERT INTO {table.name} ({columns}) VALUES ({placeholders}) "  # noqa: S608
                    f"ON CONFLICT (id) DO UPDATE SET {updates}".encode(),
                    tuple(row.values()),
                )
                cursor = await conn.execute("SELECT txid_current()")
                (xid,) = await cursor.fetchone()  # type: ignore[misc]
            return int(xid)

        async def delete_pg(table: TableRef, id: int) -> None:
            await conn.execute(f"DELETE FROM {table.name} WHERE id = %s".encode(), (id,))

        builder = PostgresDocumentBuilder(url, _deployment())
        await builder.open()
        try:
            yield Leg(builder, put_pg, delete_pg)
        finally:
            await builder.close()


def user(id: int) -> DocumentId:
    return DocumentId("users", (id,))


def upsert(table: TableRef, id: int, **new: Any) -> ChangeEvent:
    return ChangeEvent("upsert", table, (("id", id),), new={"id": id, **new})


def roots(ops: list[Any]) -> dict[str, Row | None]:
    """`id -> root columns of the body` (None for a delete)."""
    return {
        op.id.render(): {k: op.document[k] for k in ("id", "email")}
        if isinstance(op, Upsert)
        else None
        for op in ops
    }


async def test_the_scopes_and_mappings_name_each_index_and_its_root(leg: Leg):
    assert leg.builder.backfill_scopes() == [("users", USERS)]
    assert [m.index for m in leg.builder.index_mappings()] == ["users"]


async def test_root_changes_resolve_to_their_documents_once_in_first_seen_order(leg: Leg):
    for id in (1, 2):
        await leg.put(USERS, {"id": id, "email": f"u{id}@x.io"})
    events = [upsert(USERS, 2), upsert(USERS, 1), upsert(USERS, 2)]
    assert await leg.builder.resolve(events) == [user(2), user(1)]


async def test_a_related_change_resolves_to_the_old_and_the_new_parent(leg: Leg):
    for id in (1, 2):
        await leg.put(USERS, {"id": id, "email": f"u{id}@x.io"})
    await leg.put(ORDERS, {"id": 10, "user_id": 2, "total": 5})
    moved = ChangeEvent(
        "upsert", ORDERS, (("id", 10),),
        old={"id": 10, "user_id": 1, "total": 5}, new={"id": 10, "user_id": 2, "total": 5},
    )
    assert sorted(await leg.builder.resolve([moved])) == [user(1), user(2)]


async def test_with_roots_only_related_changes_resolve_to_nothing(leg: Leg):
    await leg.put(USERS, {"id": 1, "email": "u1@x.io"})
    await leg.put(ORDERS, {"id": 10, "user_id": 1, "total": 5})
    events = [upsert(ORDERS, 10, user_id=1, total=5), upsert(USERS, 1)]
    assert await leg.builder.resolve(events, roots_only=True) == [user(1)]


async def test_an_existing_row_builds_an_upsert_and_a_missing_one_a_delete(leg: Leg):
    await leg.put(USERS, {"id": 1, "email": "u1@x.io"})
    await leg.put(USERS, {"id": 2, "email": "u2@x.io"})
    await leg.delete(USERS, 2)
    ops = await leg.builder.build_many([user(1), user(2), user(3)])
    assert sorted(op.id for op in ops) == [user(1), user(2), user(3)]
    assert roots(ops) == {"1": {"id": 1, "email": "u1@x.io"}, "2": None, "3": None}
    assert all(isinstance(op, Delete) for op in ops if op.id != user(1))


async def test_a_committed_transaction_is_visible_once_awaited(leg: Leg):
    await leg.builder.await_visible([])
    xid = await leg.put(USERS, {"id": 1, "email": "first@x.io"})
    await asyncio.wait_for(leg.builder.await_visible([xid]), timeout=10)
    xid = await leg.put(USERS, {"id": 1, "email": "second@x.io"})
    await asyncio.wait_for(leg.builder.await_visible([xid]), timeout=10)
    assert roots(await leg.builder.build_many([user(1)])) == {
        "1": {"id": 1, "email": "second@x.io"}
    }
