"""Document and reverse-lookup SQL, generated from the model.

Pure: every function here is a function of the index schema and the catalog
facts it is handed (primary keys of relation tables, `format_type` names of
compared columns). Nothing here opens a connection.

Identifiers are double-quoted, field names are string literals, and every data
value is a bound `$n` parameter cast to its column's catalog type. The fixed
part of a document query (the object, soft delete, root filters) is numbered
first; root keys are bound last, so one plan serves every batch size.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from flusso.adapters.postgres.quoting import qualified, quote_ident, quote_literal
from flusso.app.ports import SourceError
from flusso.domain.config.model import (
    Aggregate,
    BelongsTo,
    ColumnSource,
    Comparison,
    Constant,
    Field,
    Filter,
    ForeignKey,
    GeoSource,
    GroupSource,
    HasMany,
    HasOne,
    IndexSchema,
    Join,
    ManyToMany,
    NullCheck,
    OrderBy,
    RawFilter,
    SoftDelete,
    Through,
    Value,
)
from flusso.domain.types import field_type_spec

ROOT = "root"
MAX_PAIRS_PER_OBJECT = 50
"""Postgres caps a function call at 100 arguments; each field spends two."""

_COMPARISON_SQL = {
    "eq": "=", "neq": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">=",
    "like": "LIKE", "ilike": "ILIKE",
}


def _col(alias: str, column: str) -> str:
    return f"{quote_ident(alias)}.{quote_ident(column)}"


@dataclass(frozen=True)
class CatalogFacts:
    """What the catalog says about the tables one index reads (looked up by the adapter).

    `primary_keys`: relation target table → the one column its rows are matched on (its
    single-column primary key, else the key its join declares); absent when it has none.
    `column_types`: (table, column) → `format_type` name, for every compared column.
    """

    primary_keys: Mapping[str, str] = field(default_factory=dict)
    column_types: Mapping[tuple[str, str], str] = field(default_factory=dict)


@dataclass(frozen=True)
class FactsNeeded:
    """The catalog lookups a schema's document query depends on."""

    tables: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]


def _relations(fields: Iterable[Field]) -> Iterator[Join | Aggregate]:
    for f in fields:
        source = f.source
        if isinstance(source, GroupSource):
            yield from _relations(source.fields)
        elif isinstance(source, Join):
            yield source
            yield from _relations(source.fields)
        elif isinstance(source, Aggregate):
            yield source


def _compared_columns(filters: Sequence[Filter] | None) -> Iterator[str]:
    for f in filters or ():
        if isinstance(f, Comparison):
            yield f.column


def facts_needed(schema: IndexSchema) -> FactsNeeded:
    """Relation target tables (their primary keys) and every column a bound value is compared with."""
    tables: dict[str, None] = {}
    columns: dict[tuple[str, str], None] = {}
    if schema.primary_key is not None:
        columns[(schema.table, schema.primary_key)] = None
    for relation in _relations(schema.fields):
        tables[relation.table] = None
        for column in _compared_columns(relation.filters):
            columns[(relation.table, column)] = None
    when = schema.soft_delete.when if schema.soft_delete is not None else None
    for column in (*_compared_columns(when), *_compared_columns(schema.filters)):
        columns[(schema.table, column)] = None
    return FactsNeeded(tuple(tables), tuple(columns))


def _default_literal(value: Value) -> str | None:
    if value is None or isinstance(value, (list, dict)):
        return None
    if isinstance(value, bool):
        return quote_literal("true" if value else "false")
    return quote_literal(str(value))


def json_text(value: Value) -> str:
    """A YAML value as JSON text, numbers exact: a constant `5` or `true` keeps its JSON type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else "null"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(json_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(
            f"{json.dumps(str(k), ensure_ascii=False)}:{json_text(v)}" for k, v in value.items()
        ) + "}"
    raise SourceError(f"constant value {value!r} cannot be rendered as JSON")


def constant_sql(value: Value) -> str:
    if value is None:
        return "NULL"
    return f"{quote_literal(json_text(value))}::json"


class _Generator:
    """Accumulates bound parameters and relation aliases while rendering one statement."""

    def __init__(self, schema: IndexSchema, facts: CatalogFacts) -> None:
        self.schema = schema
        self.facts = facts
        self.params: list[str] = []
        self.seq = 0

    # -- basics ---------------------------------------------------------------

    def table(self, name: str) -> str:
        return qualified(self.schema.db_schema, name)

    def alias(self) -> str:
        self.seq += 1
        return f"rel{self.seq}"

    def pk_of(self, table: str) -> str:
        pk = self.facts.primary_keys.get(table)
        if pk is None:
            raise SourceError(
                f"table {self.schema.db_schema}.{table} has no primary key of one column "
                "to match its rows on",
                hint="read the rows through a join, whose primary_key names a unique column, "
                "or give the table a single-column primary key",
            )
        return pk

    def type_of(self, table: str, column: str) -> str:
        sql_type = self.facts.column_types.get((table, column))
        if sql_type is None:
            raise SourceError(f"unknown column {self.schema.db_schema}.{table}.{column}")
        return sql_type

    def param(self, value: str, table: str, column: str) -> str:
        sql_type = self.type_of(table, column)
        self.params.append(value)
        return f"${len(self.params)}::{sql_type}"

    def require_pk(self, parent_pk: str | None) -> str:
        if parent_pk is None:
            raise SourceError(
                f"index on {self.schema.db_schema}.{self.schema.table}: relations require the "
                "parent table to declare a primary key",
                hint="set primary_key in the schema",
            )
        return parent_pk

    # -- objects and fields -----------------------------------------------------

    def object(self, fields: Sequence[Field], alias: str, parent_pk: str | None) -> str:
        pairs = [
            f"{quote_literal(f.name)}, {self.value(f, alias, parent_pk)}" for f in fields
        ]
        if len(pairs) <= MAX_PAIRS_PER_OBJECT:
            return f"json_build_object({', '.join(pairs)})"
        chunks = [
            f"jsonb_build_object({', '.join(pairs[i:i + MAX_PAIRS_PER_OBJECT])})"
            for i in range(0, len(pairs), MAX_PAIRS_PER_OBJECT)
        ]
        return f"({' || '.join(chunks)})"

    def value(self, f: Field, alias: str, parent_pk: str | None) -> str:
        source = f.source
        if isinstance(source, ColumnSource):
            expr = field_type_spec(source.type).column_sql.format(
                column=_col(alias, source.column)
            )
            for transform in source.transforms:
                expr = f"lower({expr})" if transform == "lowercase" else f"trim({expr})"
            default = _default_literal(source.default)
            if default is not None:
                expr = f"coalesce({expr}, {default})"
            return expr
        if isinstance(source, GroupSource):
            return self.object(source.fields, alias, parent_pk)
        if isinstance(source, GeoSource):
            lat, lon = _col(alias, source.lat), _col(alias, source.lon)
            return (
                f"CASE WHEN {lat} IS NULL OR {lon} IS NULL THEN NULL "
                f"ELSE json_build_object('lat', {lat}, 'lon', {lon}) END"
            )
        if isinstance(source, Join):
            return self.join(source, alias, parent_pk)
        if isinstance(source, Aggregate):
            return self.aggregate(source, alias, parent_pk)
        if isinstance(source, Constant):
            return constant_sql(source.value)
        raise SourceError(f"field {f.name!r}: unsupported source {source!r}")

    # -- relations ----------------------------------------------------------------

    def order(self, order_by: Sequence[OrderBy] | None, alias: str) -> str:
        if not order_by:
            return ""
        parts = [
            f"{_col(alias, o.column)} {'DESC' if o.direction == 'desc' else 'ASC'}"
            for o in order_by
        ]
        return " ORDER BY " + ", ".join(parts)

    def join(self, join: Join, parent: str, parent_pk: str | None) -> str:
        kind = join.kind
        if isinstance(kind, BelongsTo):
            # The parent row points at the related row's primary key; no order applies.
            target_pk = self.pk_of(join.table)
            return self.single_row(join, target_pk, _col(parent, kind.column), ordered=False)
        ppk = self.require_pk(parent_pk)
        if isinstance(kind, HasOne):
            return self.single_row(join, kind.foreign_key, _col(parent, ppk), ordered=True)
        if not isinstance(kind, HasMany | ManyToMany):  # pragma: no cover - no other kind
            raise SourceError(f"unsupported join kind {kind!r}")
        derived = self.alias()
        obj = self.object(join.fields, derived, self.pk_of(join.table))
        row = self.alias()
        limit = f" LIMIT {join.limit}" if join.limit is not None else ""
        if isinstance(kind, HasMany):
            source = f"{self.table(join.table)} AS {quote_ident(row)}"
            match = _col(row, kind.foreign_key)
        else:
            through = kind.through
            junction = self.alias()
            source = (
                f"{self.table(join.table)} AS {quote_ident(row)} "
                f"JOIN {self.table(through.table)} AS {quote_ident(junction)} "
                f"ON {_col(junction, through.right_key)} = {_col(row, self.pk_of(join.table))}"
            )
            match = _col(junction, through.left_key)
        filters = self.filters(join.filters, row, join.table)
        inner_sql = (
            f"SELECT {quote_ident(row)}.* FROM {source} "
            f"WHERE {match} = {_col(parent, ppk)}{filters}"
            f"{self.order(join.order_by, row)}{limit}"
        )
        return (
            f"(SELECT coalesce(json_agg({obj}{self.order(join.order_by, derived)}), '[]'::json) "
            f"FROM ({inner_sql}) AS {quote_ident(derived)})"
        )

    def single_row(self, join: Join, match: str, parent_value: str, *, ordered: bool) -> str:
        """The first related row whose `match` column equals `parent_value`, as an object (or null)."""
        row_pk = self.pk_of(join.table)
        alias = self.alias()
        obj = self.object(join.fields, alias, row_pk)
        filters = self.filters(join.filters, alias, join.table)
        order = self.order(join.order_by, alias) if ordered else ""
        return (
            f"(SELECT {obj} FROM {self.table(join.table)} AS {quote_ident(alias)} "
            f"WHERE {_col(alias, match)} = {parent_value}{filters}{order} LIMIT 1)"
        )

    def aggregate(self, agg: Aggregate, parent: str, parent_pk: str | None) -> str:
        ppk = self.require_pk(parent_pk)
        key = agg.key
        if isinstance(key, Through) and agg.op == "ids" and not agg.filters:
            # The far rows' ids are the junction's right keys: the far table is not read.
            junction = self.alias()
            return (
                f"(SELECT {self.ids(junction, key.right_key)} "
                f"FROM {self.table(key.table)} AS {quote_ident(junction)} "
                f"WHERE {_col(junction, key.left_key)} = {_col(parent, ppk)})"
            )
        if isinstance(key, ForeignKey):
            alias = self.alias()
            fn = (
                self.ids(alias, self.pk_of(agg.table)) if agg.op == "ids"
                else self.fold(agg, alias)
            )
            source = f"{self.table(agg.table)} AS {quote_ident(alias)}"
            match = _col(alias, key.column)
        elif isinstance(key, Through):
            far_pk = self.pk_of(agg.table)
            alias = self.alias()
            junction = self.alias()
            # `ids` with filters joins the far table, or its filters would be silently ignored.
            fn = self.ids(junction, key.right_key) if agg.op == "ids" else self.fold(agg, alias)
            source = (
                f"{self.table(agg.table)} AS {quote_ident(alias)} "
                f"JOIN {self.table(key.table)} AS {quote_ident(junction)} "
                f"ON {_col(junction, key.right_key)} = {_col(alias, far_pk)}"
            )
            match = _col(junction, key.left_key)
        else:  # pragma: no cover - the model admits no other key
            raise SourceError(f"unsupported aggregate key {key!r}")
        filters = self.filters(agg.filters, alias, agg.table)
        return f"(SELECT {fn} FROM {source} WHERE {match} = {_col(parent, ppk)}{filters})"

    @staticmethod
    def ids(alias: str, column: str) -> str:
        return f"coalesce(json_agg({_col(alias, column)}), '[]'::json)"

    def fold(self, agg: Aggregate, alias: str) -> str:
        if agg.op == "count":
            return "count(*)"
        if agg.column is None:
            raise SourceError(f"aggregate {agg.op} over {agg.table} names no column")
        return f"{agg.op}({_col(alias, agg.column)})"

    # -- filters ----------------------------------------------------------------

    def filters(self, filters: Sequence[Filter] | None, alias: str, table: str) -> str:
        return "".join(f" AND ({self.condition(f, alias, table)})" for f in filters or ())

    def condition(self, f: Filter, alias: str, table: str) -> str:
        if isinstance(f, RawFilter):
            return f.raw
        if isinstance(f, NullCheck):
            return f"{_col(alias, f.column)} IS {'NULL' if f.op == 'is_null' else 'NOT NULL'}"
        column = _col(alias, f.column)
        values = f.values
        if f.op in _COMPARISON_SQL and len(values) == 1:
            return f"{column} {_COMPARISON_SQL[f.op]} {self.param(values[0], table, f.column)}"
        if f.op in ("in", "not_in") and values:
            listed = ", ".join(self.param(v, table, f.column) for v in values)
            return f"{column} {'IN' if f.op == 'in' else 'NOT IN'} ({listed})"
        if f.op == "between" and len(values) == 2:
            low = self.param(values[0], table, f.column)
            high = self.param(values[1], table, f.column)
            return f"{column} BETWEEN {low} AND {high}"
        raise SourceError(
            f"filter on {table}.{f.column}: operator {f.op} does not fit {len(values)} value(s)"
        )

    def soft_delete(self, soft: SoftDelete) -> str:
        column = self.schema.soft_delete_column
        if column is None:
            raise SourceError(
                f"soft_delete.field {soft.name!r} is not a column field of the root row"
            )
        marker = _col(ROOT, column)
        truthy = (
            f"CASE WHEN {marker} IS NULL THEN false "
            f"WHEN pg_typeof({marker}) = 'boolean'::regtype THEN {marker}::text::boolean "
            "ELSE true END"
        )
        return f"({truthy}){self.filters(soft.when, ROOT, self.schema.table)}"


@dataclass(frozen=True)
class DocumentSql:
    """One index's document query with the root keys still to bind (they are numbered last)."""

    object_sql: str
    from_sql: str
    conditions: tuple[str, ...]
    params: tuple[str, ...]

    def _where(self, key_condition: str) -> str:
        return " AND ".join((key_condition, *self.conditions))

    def batched(self, key_column: str, key_type: str, count: int) -> str:
        """`… WHERE "root"."pk" IN ($k+1::T, …)`, selecting the key as text beside the document."""
        start = len(self.params) + 1
        keys = ", ".join(f"${n}::{key_type}" for n in range(start, start + count))
        return (
            f'SELECT {_col(ROOT, key_column)}::text AS "doc_key", {self.object_sql}::text AS "document" '
            f"FROM {self.from_sql} WHERE {self._where(f'{_col(ROOT, key_column)} IN ({keys})')}"
        )

    def single(self, key_columns: Sequence[tuple[str, str]]) -> str:
        """One document: an equality per `(column, type)` key column."""
        start = len(self.params) + 1
        equalities = [
            f"{_col(ROOT, column)} = ${start + i}::{sql_type}"
            for i, (column, sql_type) in enumerate(key_columns)
        ]
        return (
            f'SELECT {self.object_sql}::text AS "document" FROM {self.from_sql} '
            f"WHERE {self._where(' AND '.join(equalities) or 'true')}"
        )


def plan_document_sql(schema: IndexSchema, facts: CatalogFacts) -> DocumentSql:
    """Render the document object, soft-delete predicate and root filters of one index."""
    gen = _Generator(schema, facts)
    object_sql = gen.object(schema.fields, ROOT, schema.primary_key)
    conditions: list[str] = []
    if schema.soft_delete is not None:
        conditions.append(f"NOT ({gen.soft_delete(schema.soft_delete)})")
    conditions.extend(f"({gen.condition(f, ROOT, schema.table)})" for f in schema.filters or ())
    return DocumentSql(
        object_sql=object_sql,
        from_sql=f"{gen.table(schema.table)} AS {quote_ident(ROOT)}",
        conditions=tuple(conditions),
        params=tuple(gen.params),
    )


# ---------------------------------------------------------------------------
# Reverse lookups (one hop of reverse resolution)
# ---------------------------------------------------------------------------


def lookup_many_sql(
    db_schema: str, table: str, match_column: str, match_type: str, select_column: str
) -> str:
    """Batched hop: `(match, select)` as text for every row whose match column is in `$1`."""
    match = quote_ident(match_column)
    return (
        f"SELECT {match}::text, {quote_ident(select_column)}::text "
        f"FROM {qualified(db_schema, table)} WHERE {match} = ANY($1::{match_type}[])"
    )


def lookup_row_sql(
    db_schema: str, table: str, key_columns: Sequence[tuple[str, str]], select_column: str
) -> str:
    """Hop for a composite row key: one equality per `(column, type)`."""
    equalities = " AND ".join(
        f"{quote_ident(column)} = ${i}::{sql_type}"
        for i, (column, sql_type) in enumerate(key_columns, start=1)
    )
    return (
        f"SELECT {quote_ident(select_column)}::text FROM {qualified(db_schema, table)} "
        f"WHERE {equalities or 'true'}"
    )
