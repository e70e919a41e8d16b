"""Catalog lookups for document SQL and reverse resolution: keys and column types.

Each table is read once per `CatalogCache` (all its columns in one query); the
builder keeps one cache for its lifetime. `column_facts` is the same lookup for
`flusso check` online.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from flusso.adapters.postgres.connection import driver_hint
from flusso.adapters.postgres.quoting import qualified
from flusso.app.ports import SourceError, SourceUnavailableError

# Per column: its `format_type` (for casts), and the type `check` compares with a field
# type: a domain is read as its base type and an array by its element, so `positive`
# (a domain over integer) is an integer and `mood[]` an array of enum values.
_COLUMNS_SQL = """
WITH RECURSIVE chain AS (
  SELECT a.attnum, a.atttypid AS typid, a.atttypmod AS typmod, false AS is_array, 0 AS depth
  FROM pg_attribute a
  WHERE a.attrelid = %(rel)s::regclass AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT c.attnum,
         CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.typelem END,
         CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE c.typmod END,
         c.is_array OR t.typtype <> 'd',
         c.depth + 1
  FROM chain c JOIN pg_type t ON t.oid = c.typid
  WHERE c.depth < 16
    AND (t.typtype = 'd' OR (t.typcategory = 'A' AND t.typelem <> 0 AND NOT c.is_array))
), base AS (
  SELECT DISTINCT ON (attnum) attnum, typid, typmod, is_array
  FROM chain ORDER BY attnum, depth DESC
)
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.atttypid::int8,
       bt.typtype = 'e',
       format_type(b.typid, b.typmod) || CASE WHEN b.is_array THEN '[]' ELSE '' END,
       a.attgenerated <> ''
FROM pg_attribute a
JOIN base b ON b.attnum = a.attnum
JOIN pg_type bt ON bt.oid = b.typid
WHERE a.attrelid = %(rel)s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
# Key order (the index definition's), which is the order a composite id joins values in.
_PRIMARY_KEY_SQL = (
    "SELECT a.attname FROM pg_index i "
    "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
    "WHERE i.indrelid = %s::regclass AND i.indisprimary "
    "ORDER BY array_position(i.indkey::int2[], a.attnum)"
)
_EXISTS_SQL = "SELECT to_regclass(%s) IS NOT NULL"


@dataclass(frozen=True)
class ColumnInfo:
    """`sql_type` is the `format_type` name, ready to paste into a cast; `base_type` is what a
    field type is checked against (a domain's base type, `[]` kept for arrays); `is_enum`
    holds for enums and arrays of them; `generated` for a generated column."""

    sql_type: str
    nullable: bool
    type_oid: int
    is_enum: bool
    base_type: str = ""
    generated: bool = False


def query_error(exc: psycopg.Error, what: str) -> SourceError:
    """Translate a driver error once, keeping the cause."""
    if isinstance(exc, psycopg.OperationalError):
        error: SourceError = SourceUnavailableError(
            f"{what}: Postgres connection failed: {exc}", hint=driver_hint(exc)
        )
    elif isinstance(exc, psycopg.errors.UndefinedColumn | psycopg.errors.UndefinedTable):
        # The database changed under a schema (or was never checked against it).
        primary = exc.diag.message_primary or str(exc).strip()
        advice = exc.diag.message_hint
        error = SourceError(
            f"{what} failed: {primary}",
            hint=(f"{advice} " if advice else "")
            + "a schema names a table or column the database lacks; "
            "run `flusso check` to list every mismatch, then fix the schema or the database",
        )
    else:
        error = SourceError(f"{what} failed: {exc}", hint=driver_hint(exc))
    error.__cause__ = exc
    return error


async def _table_columns(
    conn: psycopg.AsyncConnection, db_schema: str, table: str
) -> dict[str, ColumnInfo] | None:
    """Every column of the table in column order; None when the table does not exist."""
    name = qualified(db_schema, table)
    try:
        exists = await (await conn.execute(_EXISTS_SQL, (name,))).fetchone()
        if not exists or not exists[0]:
            return None
        rows = await (await conn.execute(_COLUMNS_SQL, {"rel": name})).fetchall()
    except psycopg.Error as exc:
        raise query_error(exc, f"reading columns of {db_schema}.{table}") from exc
    return {
        row[0]: ColumnInfo(
            sql_type=row[1], nullable=not row[2], type_oid=int(row[3]), is_enum=bool(row[4]),
            base_type=row[5], generated=bool(row[6]),
        )
        for row in rows
    }


async def column_facts(
    conn: psycopg.AsyncConnection, db_schema: str, table: str
) -> dict[str, tuple[str, bool, bool]] | None:
    """Column → (type, nullable, is_enum) in column order, the type as field types are checked
    against it (a domain's base type); None when the table is missing."""
    columns = await _table_columns(conn, db_schema, table)
    if columns is None:
        return None
    return {name: (info.base_type, info.nullable, info.is_enum) for name, info in columns.items()}


class CatalogCache:
    """Cached primary keys and column facts, per (schema, table)."""

    def __init__(self) -> None:
        self._columns: dict[tuple[str, str], dict[str, ColumnInfo]] = {}
        self._keys: dict[tuple[str, str], tuple[str, ...]] = {}

    async def columns(
        self, conn: psycopg.AsyncConnection, db_schema: str, table: str
    ) -> dict[str, ColumnInfo]:
        cached = self._columns.get((db_schema, table))
        if cached is not None:
            return cached
        columns = await _table_columns(conn, db_schema, table)
        if columns is None:
            raise SourceError(
                f"table {db_schema}.{table} does not exist",
                hint="create it or fix the table name in the schema",
            )
        self._columns[(db_schema, table)] = columns
        return columns

    async def column(
        self, conn: psycopg.AsyncConnection, db_schema: str, table: str, column: str
    ) -> ColumnInfo:
        info = (await self.columns(conn, db_schema, table)).get(column)
        if info is None:
            raise SourceError(
                f"unknown column {db_schema}.{table}.{column}",
                hint="run `flusso check` to list every mismatch, then fix the schema or the database",
            )
        return info

    async def primary_key_columns(
        self, conn: psycopg.AsyncConnection, db_schema: str, table: str
    ) -> tuple[str, ...]:
        """The primary-key columns in key order (empty when the table has none)."""
        cached = self._keys.get((db_schema, table))
        if cached is not None:
            return cached
        await self.columns(conn, db_schema, table)  # a clear error for a missing table
        try:
            cursor = await conn.execute(_PRIMARY_KEY_SQL, (qualified(db_schema, table),))
            rows = await cursor.fetchall()
        except psycopg.Error as exc:
            raise query_error(exc, f"reading the primary key of {db_schema}.{table}") from exc
        keys = tuple(row[0] for row in rows)
        self._keys[(db_schema, table)] = keys
        return keys

    async def relation_key(
        self, conn: psycopg.AsyncConnection, db_schema: str, table: str, declared: str | None
    ) -> str | None:
        """The one column a related table's rows are matched on: its single-column primary
        key, else the key its join declares (a composite or missing primary key has no one
        column to match). None when neither exists.
        """
        keys = await self.primary_key_columns(conn, db_schema, table)
        if len(keys) == 1:
            return keys[0]
        if declared is not None:
            await self.column(conn, db_schema, table, declared)
            return declared
        return None

    async def require_relation_key(
        self, conn: psycopg.AsyncConnection, db_schema: str, table: str, declared: str | None
    ) -> str:
        key = await self.relation_key(conn, db_schema, table, declared)
        if key is None:
            keys = await self.primary_key_columns(conn, db_schema, table)
            shape = f"a composite primary key ({', '.join(keys)})" if keys else "no primary key"
            raise SourceError(
                f"table {db_schema}.{table} has {shape}, so its rows cannot be matched on one column",
                hint="read it through a join, whose primary_key names a unique column, "
                f"or give the table a single-column key (ALTER TABLE {qualified(db_schema, table)} "
                "ADD COLUMN … UNIQUE)",
            )
        return key
