"""Which columns `flusso check` must look up, and what the live facts say about them.

Every column a schema names is checked: value columns for their type and nullability,
keys, filters, order and soft-delete columns for their existence.

Pure: `plan_column_checks` walks a schema into checks; `diagnose` turns the
catalog facts the caller fetched into diagnostics. Nothing here talks to a database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Literal

from flusso.domain.config import model
from flusso.domain.documents.change import TableRef
from flusso.domain.type_advice import type_mismatch_advice
from flusso.domain.types import accepts, is_numeric_pg_type

Severity = Literal["error", "warning"]
ERROR: Severity = "error"
WARNING: Severity = "warning"

CheckRole = Literal["table", "value", "aggregate", "coordinate", "reference"]
"""`table`: the table must exist. `value`: a column-backed field (type and nullability).
`aggregate`: a sum/min/max column against `value_type`. `coordinate`: a numeric geo
column. `reference`: a key, filter, order or soft-delete column that must only exist."""


@dataclass(frozen=True)
class Diagnostic:
    """One disagreement between a declared schema and the live database."""

    index: str
    field: str
    severity: Severity
    message: str
    # The table or column does not exist at all: `run` cannot work until it does.
    missing: bool = dataclass_field(default=False, compare=False)
    # What to do about it: a statement to run or a declaration to write ("" when obvious).
    fix: str = dataclass_field(default="", compare=False)


@dataclass(frozen=True)
class ColumnFacts:
    """What the catalog says about one live column (`pg_type` as `format_type` spells it)."""

    pg_type: str
    nullable: bool
    is_enum: bool = False


TableFacts = Mapping[str, ColumnFacts]
"""Column name → facts, for one table."""


@dataclass(frozen=True)
class ColumnCheck:
    """One lookup to make: `column` of `table` (None for a `table` check), seen from `field`.

    `via` names the schema key that references a `reference` column (`foreign_key`,
    `through.left_key`, `filters`, …). `warn_nullable` is set for a value declared
    `required` whose column is neither the current key nor defaulted.
    """

    field: str
    table: TableRef
    column: str | None
    role: CheckRole
    declared: model.FieldType | None = None
    warn_nullable: bool = False
    via: str = ""


# ---------------------------------------------------------------------------
# Planning
# ---------------------------------------------------------------------------


def plan_column_checks(schema: model.IndexSchema) -> list[ColumnCheck]:
    """Every lookup `check` makes for one schema, in walk order (depth-first, declaration order).

    A `reference` whose column another check of the schema already covers is dropped,
    so a missing column is reported once.
    """
    root = TableRef(schema.db_schema, schema.table)
    checks: list[ColumnCheck] = [ColumnCheck("table", root, None, "table")]
    if schema.primary_key is not None:
        checks.append(_reference("primary_key", root, schema.primary_key, "primary_key"))
    soft_delete = schema.soft_delete
    if soft_delete is not None:
        if soft_delete.kind == "column":
            checks.append(_reference("soft_delete", root, soft_delete.name, "soft_delete.column"))
        checks.extend(_filter_checks("soft_delete", root, soft_delete.when, "soft_delete.when"))
    checks.extend(_filter_checks("filters", root, schema.filters, "filters"))
    _walk(schema.fields, "", root, schema.primary_key, checks)
    return _without_redundant_references(checks)


def tables_to_inspect(checks: Iterable[ColumnCheck]) -> list[TableRef]:
    """The distinct tables the checks read, sorted by (schema, table)."""
    return sorted({check.table for check in checks})


def _reference(field: str, table: TableRef, column: str, via: str) -> ColumnCheck:
    return ColumnCheck(field, table, column, "reference", via=via)


def _filter_checks(
    field: str, table: TableRef, filters: Sequence[model.Filter] | None, via: str
) -> list[ColumnCheck]:
    # Raw filters are opaque SQL; only structured ones name a column.
    return [
        _reference(field, table, item.column, via)
        for item in filters or ()
        if isinstance(item, (model.Comparison, model.NullCheck))
    ]


def _walk(
    fields: Sequence[model.Field],
    prefix: str,
    table: TableRef,
    key: str | None,
    out: list[ColumnCheck],
) -> None:
    for field in fields:
        path = f"{prefix}{field.name}"
        source = field.source
        if isinstance(source, model.ColumnSource):
            forced = source.column == key or source.default is not None
            out.append(ColumnCheck(
                path, table, source.column, "value", declared=source.type,
                warn_nullable=not source.nullable and not forced,
            ))
        elif isinstance(source, model.GroupSource):
            _walk(source.fields, f"{path}.", table, key, out)
        elif isinstance(source, model.GeoSource):
            out.append(ColumnCheck(path, table, source.lat, "coordinate", via="lat"))
            out.append(ColumnCheck(path, table, source.lon, "coordinate", via="lon"))
        elif isinstance(source, model.Join):
            _plan_join(path, table, source, out)
        elif isinstance(source, model.Aggregate):
            _plan_aggregate(path, table, source, out)
        # Constants read nothing.


def _plan_through(
    path: str, table: TableRef, through: model.Through, out: list[ColumnCheck]
) -> None:
    junction = TableRef(table.schema, through.table)
    out.append(ColumnCheck(path, junction, None, "table", via="through.table"))
    out.append(_reference(path, junction, through.left_key, "through.left_key"))
    out.append(_reference(path, junction, through.right_key, "through.right_key"))


def _plan_join(path: str, parent: TableRef, join: model.Join, out: list[ColumnCheck]) -> None:
    target = TableRef(parent.schema, join.table)
    kind = join.kind
    if isinstance(kind, model.BelongsTo):
        out.append(_reference(path, parent, kind.column, "column"))
    out.append(ColumnCheck(path, target, None, "table", via="table"))
    out.append(_reference(path, target, join.primary_key, "primary_key"))
    if isinstance(kind, (model.HasOne, model.HasMany)):
        out.append(_reference(path, target, kind.foreign_key, "foreign_key"))
    elif isinstance(kind, model.ManyToMany):
        _plan_through(path, parent, kind.through, out)
    _walk(join.fields, f"{path}.", target, join.primary_key, out)
    out.extend(_filter_checks(path, target, join.filters, "filters"))
    out.extend(_reference(path, target, order.column, "order_by") for order in join.order_by or ())


def _plan_aggregate(
    path: str, parent: TableRef, aggregate: model.Aggregate, out: list[ColumnCheck]
) -> None:
    target = TableRef(parent.schema, aggregate.table)
    out.append(ColumnCheck(path, target, None, "table", via="table"))
    key = aggregate.key
    if isinstance(key, model.ForeignKey):
        out.append(_reference(path, target, key.column, "foreign_key"))
    else:
        _plan_through(path, parent, key, out)
    column = aggregate.column
    if column is not None and aggregate.op in ("sum", "min", "max", "avg"):
        if aggregate.op != "avg" and aggregate.value_type is not None:
            out.append(ColumnCheck(
                path, target, column, "aggregate", declared=aggregate.value_type, via="column",
            ))
        else:
            # avg's result is always a double, so its column's type is not checked; the
            # column must still exist, or the document query fails.
            out.append(_reference(path, target, column, "column"))
    out.extend(_filter_checks(path, target, aggregate.filters, "filters"))


def _without_redundant_references(checks: list[ColumnCheck]) -> list[ColumnCheck]:
    covered = {(c.table, c.column) for c in checks if c.role not in ("reference", "table")}
    tables_seen: set[TableRef] = set()
    kept: list[ColumnCheck] = []
    for check in checks:
        if check.role == "table":
            if check.table in tables_seen:
                continue
            tables_seen.add(check.table)
        elif check.role == "reference":
            spot = (check.table, check.column)
            if spot in covered:
                continue
            covered.add(spot)
        kept.append(check)
    return kept


# ---------------------------------------------------------------------------
# Diagnosis
# ---------------------------------------------------------------------------


def diagnose(
    index: str,
    checks: Sequence[ColumnCheck],
    facts: Mapping[TableRef, TableFacts | None],
) -> list[Diagnostic]:
    """The diagnostics of one index, in check order; a table absent from `facts` counts as
    missing."""
    out: list[Diagnostic] = []
    for check in checks:
        columns = facts.get(check.table)
        if check.role == "table":
            if columns is None:
                out.append(Diagnostic(
                    index, check.field, ERROR,
                    f"references unknown table `{check.table}` (no such table in the database)",
                    missing=True,
                ))
            continue
        # A missing table was reported once by its `table` check.
        if columns is None or check.column is None:
            continue
        found = columns.get(check.column)
        if found is None:
            where = f"`{check.table}.{check.column}`"
            message = f"references unknown column {where}"
            if check.role in ("reference", "coordinate"):
                message = f"`{check.via}` {message}"
            out.append(Diagnostic(index, check.field, ERROR, message, missing=True))
            continue
        out.extend(_judge(index, check, found))
    return out


def _judge(index: str, check: ColumnCheck, found: ColumnFacts) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    if check.role == "value" and check.declared is not None:
        if not accepts(check.declared, found.pg_type, is_enum_type=found.is_enum):
            out.append(Diagnostic(
                index, check.field, ERROR,
                f"declared type does not accept the column's database type `{found.pg_type}`",
                fix=_advice(check, found),
            ))
        if check.warn_nullable and found.nullable:
            out.append(Diagnostic(
                index, check.field, WARNING,
                "declared non-null (`required`) but the database column allows null",
            ))
    elif check.role == "aggregate" and check.declared is not None:
        if not accepts(check.declared, found.pg_type, is_enum_type=found.is_enum):
            out.append(Diagnostic(
                index, check.field, ERROR,
                "declared aggregate type does not accept the column's database type "
                f"`{found.pg_type}`",
                fix=_advice(check, found),
            ))
    elif check.role == "coordinate" and not is_numeric_pg_type(found.pg_type):
        out.append(Diagnostic(
            index, check.field, ERROR,
            f"geo_point coordinate column `{check.column}` must be numeric, "
            f"found `{found.pg_type}`",
        ))
    return out


def _advice(check: ColumnCheck, found: ColumnFacts) -> str:
    table = f'"{check.table.schema}"."{check.table.name}"'
    return type_mismatch_advice(table, check.column or "", found.pg_type, is_enum=found.is_enum)


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.severity == ERROR for d in diagnostics)


MIN_SERVER_VERSION = 130000
"""PostgreSQL 13: live batches wait for their commits with `pg_visible_in_snapshot`."""


@dataclass(frozen=True)
class ServerFacts:
    """What the source server and role allow: logical decoding needs both."""

    wal_level: str
    role: str
    can_replicate: bool  # superuser or REPLICATION attribute
    version_num: int = MIN_SERVER_VERSION  # `server_version_num`, e.g. 150004




def diagnose_server(facts: ServerFacts) -> list[Diagnostic]:
    """Errors `run` would hit: a server too old, no logical WAL, or a role that may not
    stream it."""
    problems: list[Diagnostic] = []
    if facts.version_num < MIN_SERVER_VERSION:
        major = facts.version_num // 10000
        problems.append(Diagnostic(
            "source", "server_version", "error",
            f"the server is PostgreSQL {major}; flusso needs PostgreSQL 13 or newer "
            "(upgrade the server, or point the source at one that is)",
        ))
    if facts.wal_level != "logical":
        problems.append(Diagnostic(
            "source", "wal_level", "error",
            f"the server runs with wal_level = {facts.wal_level}; logical replication needs "
            "`wal_level = logical` (ALTER SYSTEM SET wal_level = logical; then restart Postgres)",
        ))
    if not facts.can_replicate:
        problems.append(Diagnostic(
            "source", "role", "error",
            f"role {facts.role} may not stream changes; grant it with "
            f"`ALTER ROLE \"{facts.role}\" REPLICATION;`",
        ))
    return problems
