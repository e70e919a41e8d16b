"""What to write instead when a declared field type cannot read a column's Postgres type.

Pure: given the column's type as the catalog reports it (a domain's base type, `[]` kept
for arrays), it names the field types that read it, or, for types no field type reads,
the supported alternative: a `custom` field, or a generated column of a type that is read.
"""

from __future__ import annotations

from flusso.domain.types import accepts

SCALAR_TYPES = (
    "keyword", "text", "identifier", "enum", "uuid", "boolean", "short", "integer", "long",
    "float", "double", "decimal", "date", "timestamp", "binary", "json",
)

_RANGE_BOUNDS = {
    "int4range": "integer", "int8range": "bigint", "numrange": "numeric",
    "daterange": "date", "tsrange": "timestamp", "tstzrange": "timestamp with time zone",
}


def readable_as(pg_type: str, *, is_enum: bool = False) -> list[str]:
    """The scalar field types that read a column of `pg_type`, in the order docs list them."""
    return [name for name in SCALAR_TYPES if accepts(name, pg_type, is_enum_type=is_enum)]


def _base(pg_type: str) -> str:
    base = pg_type.strip()
    while base.endswith("[]"):
        base = base[:-2].strip()
    return base.split("(", 1)[0].strip().lower()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _generated(table: str, column: str, suffix: str, sql_type: str, expression: str) -> str:
    return (
        f"ALTER TABLE {table} ADD COLUMN {_quote(f'{column}_{suffix}')} {sql_type} "
        f"GENERATED ALWAYS AS ({expression}) STORED;"
    )


def unsupported_type_advice(table: str, column: str, pg_type: str) -> str:
    """The alternative for a type no scalar field type reads; `table` is the quoted table."""
    base = _base(pg_type)
    col = _quote(column)
    custom = f"a `custom` field (`postgres: [{base}]`, `opensearch: keyword`) indexes its text"
    if base == "interval":
        return (
            "no field type reads an interval: index its length in seconds with a `double` "
            "field on a generated column ("
            + _generated(table, column, "seconds", "double precision", f"extract(epoch FROM {col})")
            + f"), or {custom}"
        )
    if base in ("inet", "cidr"):
        return f"no scalar field type reads {base}: a `custom` field with `postgres: [{base}]` " \
            "and `opensearch: ip` indexes addresses (`ip_range` for networks)"
    if base == "point":
        return (
            "no field type reads a point: index it as a `geo` field with `lat:` and `lon:` on "
            "two generated columns ("
            + _generated(table, column, "lat", "double precision", f"{col}[1]")
            + " "
            + _generated(table, column, "lon", "double precision", f"{col}[0]")
            + ")"
        )
    if base in _RANGE_BOUNDS:
        bound = _RANGE_BOUNDS[base]
        return (
            f"no field type reads a {base}: index its bounds on generated columns ("
            + _generated(table, column, "lower", bound, f"lower({col})")
            + " "
            + _generated(table, column, "upper", bound, f"upper({col})")
            + f"), or {custom}"
        )
    return (
        f"no field type reads {base}: {custom}, or add a generated column of a supported "
        f"type (ALTER TABLE {table} ADD COLUMN … GENERATED ALWAYS AS (<expression on {col}>) "
        "STORED) and read that"
    )


def type_mismatch_advice(table: str, column: str, pg_type: str, *, is_enum: bool = False) -> str:
    """What to declare for a column whose type the declared field type does not read."""
    options = readable_as(pg_type, is_enum=is_enum)
    if options:
        listed = ", ".join(f"`{name}`" for name in options)
        return f"declare one of {listed}"
    return unsupported_type_advice(table, column, pg_type)
