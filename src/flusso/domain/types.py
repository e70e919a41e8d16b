"""Types and nullability of resolved fields, and the typed index mapping.

`resolve_fields` and the type-acceptance table are implemented here; the dataclasses
below are the shared contract read by mapping, the document decoder, `check` and sinks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from flusso.domain.config.field_types import (
    COORDINATE_TYPES,
    CUSTOM_TYPE,
    FIELD_TYPES,
    MAP_TYPE,
    FieldTypeSpec,
    normalise_postgres_type,
    spec_of,
)
from flusso.domain.config.model import (
    Aggregate,
    ColumnSource,
    CustomType,
    Field,
    FieldType,
    GeoSource,
    GroupSource,
    IndexSchema,
    Join,
    MapType,
    Value,
)


@dataclass(frozen=True)
class ResolvedField:
    """A field after type resolution.

    `type` is the OpenSearch type (`keyword`, `nested`, `object`, `geo_point`, …);
    `declared` is the flusso type it came from (`identifier`, `decimal`, `count`, …),
    which the document decoder uses to coerce values.
    """

    name: str
    type: str
    nullable: bool
    declared: str
    array: bool = False
    extra: Mapping[str, Value] = field(default_factory=dict)  # options, after injections
    children: tuple[ResolvedField, ...] = ()
    map_values: str | None = None
    decimal: bool = False
    enum_order: tuple[str, ...] = ()


@dataclass(frozen=True)
class IndexMapping:
    """The typed mapping of one enabled index: logical name, content hash, resolved fields."""

    index: str
    hash: str
    fields: tuple[ResolvedField, ...]


# ---------------------------------------------------------------------------
# Type acceptance: which columns a declared type may read
# ---------------------------------------------------------------------------


def accepts(declared: FieldType | str, pg_type: str, *, is_enum_type: bool = False) -> bool:
    """Whether a field declared as `declared` may read a column of Postgres type `pg_type`.

    `declared` is a scalar name, `geo`/`geo_point` (one column), `map`, a `MapType`
    or a `CustomType`. `is_enum_type` marks `pg_type` as a Postgres enum type, which
    only `enum` accepts (its labels are text).
    """
    base = normalise_postgres_type(pg_type)
    if isinstance(declared, CustomType):
        return any(normalise_postgres_type(accepted) == base for accepted in declared.postgres)
    key = "map" if isinstance(declared, MapType) else declared
    if key == "enum" and is_enum_type:
        return True
    spec = spec_of(key)
    return spec is not None and base in spec.postgres


def is_numeric_pg_type(pg_type: str) -> bool:
    """Whether a column may hold a coordinate of a two-column geo point (short … double, decimal)."""
    return any(accepts(name, pg_type) for name in COORDINATE_TYPES)


def field_type_spec(declared: FieldType) -> FieldTypeSpec:
    """The registry row of a declared column type (`map` and `custom` rows for theirs)."""
    if isinstance(declared, CustomType):
        return CUSTOM_TYPE
    if isinstance(declared, MapType):
        return MAP_TYPE
    return FIELD_TYPES[declared]


def opensearch_type(declared: FieldType) -> str:
    """The OpenSearch type a declared column type maps to."""
    if isinstance(declared, CustomType):
        return declared.opensearch
    return field_type_spec(declared).opensearch


# ---------------------------------------------------------------------------
# Resolution: the OpenSearch type and nullability of every field
# ---------------------------------------------------------------------------


def resolve_fields(schema: IndexSchema) -> tuple[ResolvedField, ...]:
    """Type and nullability of every field of `schema`, children included, in order."""
    return _resolve_all(schema.fields, schema.primary_key)


def _resolve_all(fields: tuple[Field, ...], primary_key: str | None) -> tuple[ResolvedField, ...]:
    return tuple(_resolve(field, primary_key) for field in fields)


def _resolve(field: Field, primary_key: str | None) -> ResolvedField:
    source = field.source
    extra = dict(field.options)
    if isinstance(source, ColumnSource):
        return _resolve_column(field.name, source, extra, primary_key)
    if isinstance(source, GroupSource):
        return ResolvedField(
            name=field.name, type="object", nullable=False, declared="object", extra=extra,
            children=_resolve_all(source.fields, primary_key),
        )
    if isinstance(source, GeoSource):
        return ResolvedField(
            name=field.name, type="geo_point", nullable=source.nullable, declared="geo",
            extra=extra,
        )
    if isinstance(source, Join):
        return ResolvedField(
            name=field.name,
            type="nested" if source.to_many else "object",
            nullable=source.nullable and not source.to_many,
            declared=source.verb,
            extra=extra,
            children=_resolve_all(source.fields, source.primary_key),
        )
    if isinstance(source, Aggregate):
        return _resolve_aggregate(field.name, source, extra)
    return ResolvedField(
        name=field.name,
        type=_constant_type(source.value),
        nullable=source.value is None,
        declared="constant",
        extra=extra,
        decimal=isinstance(source.value, Decimal),
    )


def _resolve_column(
    name: str, column: ColumnSource, extra: dict[str, Value], primary_key: str | None
) -> ResolvedField:
    declared_type = column.type
    if isinstance(declared_type, CustomType):
        declared = "custom"
    elif isinstance(declared_type, MapType):
        declared = "map"
    elif declared_type == "geo_point":
        declared = "geo"
    else:
        declared = declared_type
    # A primary key is never null, and a default coalesces nulls away.
    forced = column.column == primary_key or column.default is not None
    return ResolvedField(
        name=name,
        type=opensearch_type(declared_type),
        nullable=column.nullable and not forced,
        declared=declared,
        extra=extra,
        map_values=declared_type.values if isinstance(declared_type, MapType) else None,
        decimal=_exact(declared_type),
        enum_order=column.variants if declared_type == "enum" else (),
    )


def _resolve_aggregate(name: str, aggregate: Aggregate, extra: dict[str, Value]) -> ResolvedField:
    op = aggregate.op
    if op == "count":
        return ResolvedField(name=name, type="long", nullable=False, declared=op, extra=extra)
    if op == "avg":
        return ResolvedField(name=name, type="double", nullable=True, declared=op, extra=extra)
    if op == "ids":
        element = aggregate.element_type or "long"
        return ResolvedField(
            name=name, type=opensearch_type(element), nullable=False, declared=op,
            array=True, extra=extra, decimal=_exact(element),
        )
    value_type = aggregate.value_type
    return ResolvedField(
        name=name,
        type=opensearch_type(value_type) if value_type else "double",
        nullable=True,
        declared=op,
        extra=extra,
        decimal=_exact(value_type),
    )


def _exact(declared: FieldType | None) -> bool:
    """Whether values of the type are exact decimals (they decode to `Decimal`)."""
    return isinstance(declared, str) and declared in FIELD_TYPES and (
        FIELD_TYPES[declared].wire == "decimal"
    )


def _constant_type(value: Value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, (Decimal, float)):
        return "double"
    if isinstance(value, list):
        return _constant_type(value[0]) if value else "keyword"
    if isinstance(value, dict):
        return "object"
    return "keyword"
