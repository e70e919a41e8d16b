"""The RootRows contract, held by the in-memory fake and the Postgres adapter alike.

One fixture, parametrised over both, yields the root rows of an index `items` and a
way to insert or delete rows of its root table behind the adapter's back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from flusso.adapters.fakes.builder import InMemoryIndex
from flusso.adapters.fakes.rows import InMemoryRootRows
from flusso.app.ports import RootRows, SourceError
from flusso.domain.config.model import (
    ColumnSource,
    Deployment,
    Field,
    IndexConfig,
    IndexSchema,
    SourceConfig,
)
from flusso.domain.documents.change import TableRef

ITEMS = TableRef("public", "items")


@dataclass
class Leg:
    rows: RootRows
    insert: Callable[[list[int]], Awaitable[None]]
    delete: Callable[[int], Awaitable[None]]


def _deployment() -> Deployment:
    schema = IndexSchema(
        table="items",
        fields=(Field("id", ColumnSource("id", "integer", False)),),
        primary_key="id",
    )
    return Deployment(
        source=SourceConfig(), indexes=(IndexConfig("items", True, schema),)
    )


@pytest.fixture(params=["memory", "postgres"])
async def leg(request: pytest.FixtureRequest) -> AsyncIterator[Leg]:
    if request.param == "memory":
        tables: dict[TableRef, dict[Any, dict[str, Any]]] = {ITEMS: {}}
        fake = InMemoryRootRows([InMemoryIndex("items", ITEMS)], tables)

        async def insert_memory(keys: list[int]) -> None:
            for key in keys:
                tables[ITEMS][(("id", key),)] = {"id": key}

        async def delete_memory(key: int) -> None:
            tables[ITEMS].pop((("id", key),), None)

        yield Leg(fake, insert_memory, delete_memory)
        return

    from flusso.adapters.postgres.root_rows import PostgresRootRows

    url: str = request.getfixturevalue("pg_url")
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("CREATE TABLE items (id int PRIMARY KEY, label text)")

        async def insert_postgres(keys: list[int]) -> None:
            await conn.execute(
                "INSERT INTO items SELECT k, 'x' FROM unnest(%s::int[]) AS k", (keys,)
            )

        async def delete_postgres(key: int) -> None:
            await conn.execute("DELETE FROM items WHERE id = %s", (key,))

        rows = PostgresRootRows(url, _deployment())
        try:
            yield Leg(rows, insert_postgres, delete_postgres)
        finally:
            await rows.close()


async def test_pages_walk_every_root_row_in_key_order(leg: Leg) -> None:
    await leg.insert([5, 3, 11, 1, 8, 2, 13])
    pages = [page async for page in leg.rows.pages("items", 3)]
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [d.render() for page in pages for d in page] == ["1", "2", "3", "5", "8", "11", "13"]
    assert {d.index for page in pages for d in page} == {"items"}
    assert pages[0][0].key == (1,)  # typed like the snapshot types keys


async def test_a_walk_over_no_rows_yields_nothing(leg: Leg) -> None:
    assert [page async for page in leg.rows.pages("items", 10)] == []


async def test_rows_added_ahead_of_the_walk_are_seen_and_removed_ones_are_not(leg: Leg) -> None:
    await leg.insert([1, 2, 3, 4])
    walk = leg.rows.pages("items", 2)
    first = await anext(walk)
    await leg.insert([10])
    await leg.delete(3)
    rest = [page async for page in walk]
    assert [d.render() for d in first] == ["1", "2"]
    assert [d.render() for page in rest for d in page] == ["4", "10"]


async def test_existing_answers_for_ids_as_the_sink_spells_them(leg: Leg) -> None:
    await leg.insert([1, 2, 7])
    found = await leg.rows.existing("items", ["1", "7", "8", "007", "not-a-number", ""])
    assert found == {"1", "7"}
    assert await leg.rows.existing("items", []) == set()


async def test_a_sample_is_distinct_root_ids(leg: Leg) -> None:
    await leg.insert(list(range(1, 51)))
    picked = await leg.rows.sample("items", 10)
    assert len(picked) == len({d.render() for d in picked})
    assert 1 <= len(picked) <= 10
    assert {d.render() for d in picked} <= {str(k) for k in range(1, 51)}
    assert len(await leg.rows.sample("items", 500)) == 50


async def test_an_unknown_index_is_a_source_error(leg: Leg) -> None:
    with pytest.raises(SourceError, match="nope"):
        [page async for page in leg.rows.pages("nope", 10)]

