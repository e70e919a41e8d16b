"""The backfill snapshot: every root row's key from one consistent view, read in bounded chunks.

Only keys are read; documents are built later from live rows. Own connection,
one REPEATABLE READ READ ONLY transaction for all tables.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import psycopg

from flusso.adapters.postgres.connection import connect_admin, translate
from flusso.adapters.postgres.quoting import quote_ident, quote_table
from flusso.app.ports import Change, NoAck
from flusso.domain.documents.change import ChangeEvent, TableRef
from flusso.domain.documents.keys import canonical_key_value

logger = logging.getLogger(__name__)

FETCH_SIZE = 1024

PRIMARY_KEY_SQL = """
SELECT a.attname, a.atttypid::int
FROM pg_index i
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
WHERE i.indrelid = %s::regclass AND i.indisprimary
ORDER BY array_position(i.indkey::int2[], a.attnum)
"""


async def primary_key(
    conn: psycopg.AsyncConnection[Any], table: TableRef
) -> list[tuple[str, int]] | None:
    """The catalog primary key `[(column, type oid)]` in key order; None when the table is absent."""
    exists = await (
        await conn.execute("SELECT to_regclass(%s)", (quote_table(table),))
    ).fetchone()
    if exists is None or exists[0] is None:
        return None
    rows = await (await conn.execute(PRIMARY_KEY_SQL, (quote_table(table),))).fetchall()
    return [(str(name), int(oid)) for name, oid in rows]


async def snapshot_changes(
    params: dict[str, Any], tables: Sequence[TableRef]
) -> AsyncIterator[Change]:
    """One `upsert` per existing row of each table, with no-op acks."""
    conn = await connect_admin(params)
    try:
        await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        for table in tables:
            try:
                key = await primary_key(conn, table)
            except psycopg.Error as exc:
                raise translate(exc, f"snapshot of {table} failed") from exc
            if key is None:
                logger.warning("snapshot: table %s does not exist; skipping it", table)
                continue
            if len(key) != 1:
                logger.warning(
                    "snapshot: table %s has %s; skipping it (its index is still marked seeded)",
                    table,
                    "no primary key" if not key else "a composite primary key",
                )
                continue
            column, type_oid = key[0]
            async for value in _keys(conn, table, column):
                event = ChangeEvent(
                    "upsert", table, ((column, canonical_key_value(type_oid, value)),)
                )
                yield Change(event, NoAck())
        await conn.execute("COMMIT")
    except psycopg.Error as exc:
        raise translate(exc, "snapshot failed") from exc
    finally:
        await conn.close()


async def _keys(
    conn: psycopg.AsyncConnection[Any], table: TableRef, column: str
) -> AsyncIterator[str | None]:
    cursor = "flusso_snapshot"
    await conn.execute(
        f"DECLARE {cursor} NO SCROLL CURSOR FOR "
        f"SELECT {quote_ident(column)}::text FROM {quote_table(table)}".encode()
    )
    fetch = f"FETCH FORWARD {FETCH_SIZE} FROM {cursor}".encode()
    while True:
        rows = await (await conn.execute(fetch)).fetchall()
        if not rows:
            break
        for (value,) in rows:
            yield value
    await conn.execute(f"CLOSE {cursor}".encode())
