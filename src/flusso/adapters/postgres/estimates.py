"""Row-count estimates from the planner's statistics (`pg_class.reltuples`), for progress display.

Cheap by design: no table is scanned. A table never analysed (or vacuumed) has no
estimate; it comes back as None rather than a guess.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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


class IndexRowEstimator:
    """Estimated rows per index, read from the statistics of each index's root table
    (a backfill reads one root row per document).

    `source_url` is called on each estimate, so a secret is resolved only when needed.
    """

    def __init__(self, source_url: Callable[[], str], roots: Mapping[str, TableRef]) -> None:
        self._source_url = source_url
        self._roots = dict(roots)

    async def __call__(self, indexes: Sequence[str]) -> dict[str, int | None]:
        tables = {index: self._roots[index] for index in indexes if index in self._roots}
        by_table = await estimate_rows(self._source_url(), list(tables.values()))
        return {index: by_table.get(table) for index, table in tables.items()}

