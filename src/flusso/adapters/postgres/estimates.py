"""Row-count estimates from the planner's statistics (`pg_class.reltuples`), for progress display.

Cheap by design: no table is scanned. A table never analysed (or vacuumed) has no
estimate; it comes back as None rather than a guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from flusso.adapters.postgres.connection import connect_admin, parse_conninfo, translate
from flusso.domain.documents.change import TableRef

# to_regclass: a missing table yields NULL instead of aborting the whole query.
_ESTIMATE_SQL = (
    "SELECT c.reltuples::bigint FROM pg_class c "
    "WHERE c.oid = to_regclass(format('%%I.%%I', %s::text, %s::text))"
)


async def estimate_rows(
    source: psycopg.AsyncConnection[Any] | str, tables: Sequence[TableRef]
) -> dict[TableRef, int | None]:
    """Estimated rows of each table; None when Postgres has no statistics or no such table."""
    if isinstance(source, str):
        conn = await connect_admin(parse_conninfo(source))
        try:
            return await _estimate(conn, tables)
        finally:
            await conn.close()
    return await _estimate(source, tables)


async def _estimate(
    conn: psycopg.AsyncConnection[Any], tables: Sequence[TableRef]
) -> dict[TableRef, int | None]:
    estimates: dict[TableRef, int | None] = {}
    try:
        for table in dict.fromkeys(tables):
            cursor = await conn.execute(_ESTIMATE_SQL, (table.schema, table.name))
            row = await cursor.fetchone()
            # reltuples is -1 until the first ANALYZE or VACUUM (Postgres 14+).
            estimates[table] = int(row[0]) if row is not None and row[0] >= 0 else None
    except psycopg.Error as exc:
        raise translate(exc, "estimating table sizes") from exc
    return estimates
