"""The backfill snapshot: every root row's key from one consistent view, read in bounded chunks.

Only keys are read; documents are built later from live rows. Own connection,
one REPEATABLE READ READ ONLY transaction for all tables. A partitioned table is
read through its parent, so every partition, attached or created later, is included.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import psycopg

from flusso.adapters.postgres.connection import connect_admin, translate
from flusso.adapters.postgres.quoting import quote_ident, quote_table
from flusso.app.ports import Change, NoAck, SourceError
from flusso.domain.documents.change import ChangeEvent, TableRef
from flusso.domain.documents.keys import canonical_key_value

logger = logging.getLogger(__name__)

FETCH_SIZE = 1024

# Key order (the order of the index definition), not column order: a composite
# document id joins the key values in this order.
PRIMARY_KEY_SQL = """
SELECT a.attname, a.atttypid::int
FROM pg_index i
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
WHERE i.indrelid = %s::regclass AND i.indisprimary
ORDER BY array_position(i.indkey::int2[], a.attnum)
"""
_COLUMN_TYPE_SQL = (
    "SELECT a.atttypid::int FROM pg_attribute a WHERE a.attrelid = %s::regclass "
    "AND a.attname = %s AND a.attnum > 0 AND NOT a.attisdropped"
)

KeyColumns = list[tuple[str, int]]
"""`[(column, type oid)]` in key order."""


async def primary_key(conn: psycopg.AsyncConnection[Any], table: TableRef) -> KeyColumns | None:
    """The catalog primary key in key order; None when the table is absent."""
    exists = await (
        await conn.execute("SELECT to_regclass(%s)", (quote_table(table),))
    ).fetchone()
    if exists is None or exists[0] is None:
        return None
    rows = await (await conn.execute(PRIMARY_KEY_SQL, (quote_table(table),))).fetchall()
    return [(str(name), int(oid)) for name, oid in rows]


async def document_key(
    conn: psycopg.AsyncConnection[Any], table: TableRef, declared: str | None
) -> KeyColumns | None:
    """The columns a root table's documents are addressed by: the declared `primary_key`,
    else the catalog primary key. None when the table is absent; empty when it has no key.
    """
    catalog = await primary_key(conn, table)
    if catalog is None or declared is None:
        return catalog
    row = await (await conn.execute(_COLUMN_TYPE_SQL, (quote_table(table), declared))).fetchone()
    if row is None:
        raise SourceError(
            f"table {table} has no column {declared!r} (its schema's primary_key)",
            hint="fix primary_key in the schema; `flusso check` lists every mismatch",
        )
    return [(declared, int(row[0]))]


def keyless_error(table: TableRef) -> SourceError:
    return SourceError(
        f"table {table} has no primary key and its schema declares none, so its rows "
        "cannot be addressed as documents",
        hint="declare `primary_key: <column>` in the schema (a unique, not-null column), "
        f"or add one: ALTER TABLE {quote_table(table)} ADD PRIMARY KEY (…); "
        "`flusso check` names the candidates",
    )


async def snapshot_changes(
    params: dict[str, Any],
    tables: Sequence[TableRef],
    declared: Mapping[TableRef, str | None] | None = None,
) -> AsyncIterator[Change]:
    """One `upsert` per existing row of each table, keyed as its documents are, with no-op acks.

    A table without a usable key stops the snapshot: marking its index seeded with
    no documents would hide the problem for good.
    """
    conn = await connect_admin(params)
    try:
        await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        for table in tables:
            try:
                key = await document_key(conn, table, (declared or {}).get(table))
            except psycopg.Error as exc:
                raise translate(exc, f"snapshot of {table} failed") from exc
            if key is None:
                logger.warning("snapshot: table %s does not exist; skipping it", table)
                continue
            if not key:
                raise keyless_error(table)
            names = [name for name, _ in key]
            async for values in _keys(conn, table, names):
                row_key = tuple(
                    (name, canonical_key_value(oid, value))
                    for (name, oid), value in zip(key, values, strict=True)
                )
                yield Change(ChangeEvent("upsert", table, row_key), NoAck())
        await conn.execute("COMMIT")
    except psycopg.Error as exc:
        raise translate(exc, "snapshot failed") from exc
    finally:
        await conn.close()


async def _keys(
    conn: psycopg.AsyncConnection[Any], table: TableRef, columns: Sequence[str]
) -> AsyncIterator[tuple[str | None, ...]]:
    cursor = "flusso_snapshot"
    listed = ", ".join(f"{quote_ident(column)}::text" for column in columns)
    await conn.execute(
        f"DECLARE {cursor} NO SCROLL CURSOR FOR SELECT {listed} FROM {quote_table(table)}".encode()
    )
    fetch = f"FETCH FORWARD {FETCH_SIZE} FROM {cursor}".encode()
    while True:
        rows = await (await conn.execute(fetch)).fetchall()
        if not rows:
            break
        for row in rows:
            yield tuple(row)
    await conn.execute(f"CLOSE {cursor}".encode())
