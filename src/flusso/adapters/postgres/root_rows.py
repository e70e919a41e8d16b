"""`PostgresRootRows`: each index's root-row keys, read in key-ordered pages without building documents.

Every page is its own short statement (`WHERE key > last ORDER BY key LIMIT n`, an
index range scan on the root key), so a walk over a large table holds no snapshot
open. Keys are read as text and typed like the backfill snapshot types them, so the
ids match the `_id`s flusso writes.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from flusso.adapters.postgres.catalog import CatalogCache, query_error
from flusso.adapters.postgres.connection import connect_admin, parse_conninfo
from flusso.adapters.postgres.estimates import estimate_rows
from flusso.app.ports import SourceError
from flusso.domain.config.model import Deployment, IndexConfig
from flusso.domain.documents.change import DocumentId, TableRef, render_key_value
from flusso.domain.documents.keys import canonical_key_value

logger = logging.getLogger(__name__)

SAMPLE_SCAN_FACTOR = 4
"""A sample reads about this many times the rows it needs (Bernoulli), then keeps a random few."""


@dataclass(frozen=True)
class _RootKey:
    table: TableRef
    column: str
    sql_type: str
    type_oid: int

    def query(self, template: str, **parts: sql.Composable) -> sql.Composed:
        """`template` with `{key}`, `{relation}` and `{type}` filled in, identifiers quoted."""
        return sql.SQL(template).format(
            key=sql.Identifier(self.column),
            relation=sql.Identifier(self.table.schema, self.table.name),
            type=sql.SQL(self.sql_type),
            **parts,
        )


class PostgresRootRows:
    """The RootRows port over one Postgres database; one connection, opened on first use."""

    def __init__(self, url: str, deployment: Deployment) -> None:
        self._url = url
        self._indexes = {i.name: i for i in deployment.enabled_indexes()}
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._catalog = CatalogCache()
        self._keys: dict[str, _RootKey] = {}

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = await connect_admin(parse_conninfo(self._url))
        return self._conn

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def _key(self, index: str) -> _RootKey:
        key = self._keys.get(index)
        if key is not None:
            return key
        config = self._indexes.get(index)
        if config is None:
            raise SourceError(f"unknown or disabled index {index!r}")
        key = await self._resolve(config)
        self._keys[index] = key
        return key

    async def _resolve(self, index: IndexConfig) -> _RootKey:
        conn = await self._connection()
        schema = index.schema
        db, table = schema.db_schema, schema.table
        if schema.primary_key is not None:
            columns: tuple[str, ...] = (schema.primary_key,)
        else:
            columns = await self._catalog.primary_key_columns(conn, db, table)
        if len(columns) != 1:
            shape = "no primary key" if not columns else f"a composite key ({', '.join(columns)})"
            raise SourceError(
                f"index {index.name}: table {db}.{table} has {shape}; verify walks a "
                "single-column root key",
                hint="declare primary_key in the schema (a unique, not-null column), "
                "or leave this index out with --index",
            )
        info = await self._catalog.column(conn, db, table, columns[0])
        return _RootKey(TableRef(db, table), columns[0], info.sql_type, info.type_oid)

    async def _texts(self, query: sql.Composed, params: Sequence[Any], what: str) -> list[str]:
        conn = await self._connection()
        try:
            cursor = await conn.execute(query, params)
            return [row[0] for row in await cursor.fetchall() if row[0] is not None]
        except psycopg.Error as exc:
            raise query_error(exc, what) from exc

    def _id(self, index: str, key: _RootKey, text: str) -> DocumentId:
        return DocumentId(index, (canonical_key_value(key.type_oid, text),))

    async def estimate(self, index: str) -> int | None:
        key = await self._key(index)
        return (await estimate_rows(await self._connection(), [key.table]))[key.table]

    async def pages(self, index: str, page_size: int) -> AsyncIterator[list[DocumentId]]:
        key = await self._key(index)
        size = max(1, page_size)
        # The text column needs its own name: `ORDER BY key` would otherwise sort by the
        # output column of that name, the text, and skip keys in the next page.
        first = key.query(
            "SELECT {key}::text AS key_text FROM {relation} WHERE {key} IS NOT NULL "
            "ORDER BY {key} LIMIT %s"
        )
        after = key.query(
            "SELECT {key}::text AS key_text FROM {relation} WHERE {key} > %s::{type} "
            "ORDER BY {key} LIMIT %s"
        )
        what = f"reading the keys of {key.table} for index {index}"
        texts = await self._texts(first, [size], what)
        while texts:
            yield [self._id(index, key, text) for text in texts]
            if len(texts) < size:
                return
            texts = await self._texts(after, [texts[-1], size], what)

    async def sample(self, index: str, count: int) -> list[DocumentId]:
        if count <= 0:
            return []
        key = await self._key(index)
        rows = await self.estimate(index)
        sampling: sql.Composable = sql.SQL("")
        if rows is not None and rows > SAMPLE_SCAN_FACTOR * count:
            percent = 100.0 * SAMPLE_SCAN_FACTOR * count / rows
            sampling = sql.SQL(" TABLESAMPLE BERNOULLI ({})").format(sql.Literal(percent))
        query = key.query(
            "SELECT {key}::text AS key_text FROM {relation}{sampling} WHERE {key} IS NOT NULL "
            "ORDER BY random() LIMIT %s",
            sampling=sampling,
        )
        texts = await self._texts(query, [count], f"sampling the keys of {key.table}")
        return [self._id(index, key, text) for text in texts]

    async def existing(self, index: str, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        key = await self._key(index)
        query = key.query(
            "SELECT {key}::text AS key_text FROM {relation} WHERE {key} = ANY(%s::{type}[])"
        )
        what = f"looking up keys of {key.table}"
        try:
            texts = await self._texts(query, [list(ids)], what)
        except SourceError as exc:
            if not isinstance(exc.__cause__, psycopg.errors.DataError):
                raise
            # Some id is not even a value of the key's type (an orphan for sure): look
            # the ids up one by one so the others are still answered.
            texts = []
            for one in ids:
                try:
                    texts.extend(await self._texts(query, [[one]], what))
                except SourceError as single:
                    if not isinstance(single.__cause__, psycopg.errors.DataError):
                        raise
        rendered = {render_key_value(canonical_key_value(key.type_oid, t)) for t in texts}
        return {one for one in ids if one in rendered}
