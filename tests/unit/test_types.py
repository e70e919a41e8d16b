"""Type acceptance and resolution of fields."""

from __future__ import annotations

from decimal import Decimal

import pytest
from mapping_examples import column, worked_example

from flusso.domain.config.field_types import normalise_postgres_type
from flusso.domain.config.model import (
    Aggregate,
    BelongsTo,
    ColumnSource,
    Constant,
    CustomType,
    Field,
    ForeignKey,
    GeoSource,
    GroupSource,
    HasMany,
    HasOne,
    IndexSchema,
    Join,
    ManyToMany,
    MapType,
    Through,
)
from flusso.domain.types import (
    accepts,
    is_numeric_pg_type,
    opensearch_type,
    resolve_fields,
)


@pytest.mark.parametrize(
    ("written", "normalised"),
    [
        ("numeric(10,2)[]", "numeric"),
        ("  Character Varying(255) ", "character varying"),
        ("integer[][]", "integer"),
        ("timestamp(3) with time zone", "timestamp"),
        ("TEXT", "text"),
    ],
)
def test_postgres_type_names_are_normalised_to_their_base(written, normalised):
    assert normalise_postgres_type(written) == normalised


ACCEPTED = [
    ("text", "character varying(40)"), ("identifier", "citext"), ("keyword", "bpchar"),
    ("enum", "varchar"), ("uuid", "uuid"), ("boolean", "bool"), ("short", "smallserial"),
    ("integer", "int4"), ("integer", "serial"), ("long", "bigserial"), ("float", "real"),
    ("double", "double precision"), ("decimal", "numeric(10,2)"), ("decimal", "money"),
    ("date", "date"), ("timestamp", "timestamp with time zone"), ("timestamp", "timetz"),
    ("timestamp", "time without time zone"), ("binary", "bytea"), ("json", "jsonb"),
    ("map", "json"), (MapType(values="text"), "jsonb"), ("geo", "jsonb"), ("geo_point", "text"),
    ("text", "text[]"), (CustomType(postgres=("numeric",), opensearch="scaled_float"), "numeric(12,4)"),
    (CustomType(postgres=("Character Varying(3)",), opensearch="keyword"), "character varying(9)"),
]

REJECTED = [
    ("text", "integer"), ("keyword", "uuid"), ("uuid", "text"), ("boolean", "integer"),
    ("short", "integer"), ("integer", "bigint"), ("long", "numeric"), ("float", "double precision"),
    ("double", "real"), ("decimal", "double precision"), ("date", "timestamp"),
    ("timestamp", "date"), ("binary", "text"), ("json", "text"), ("map", "text"),
    ("geo", "geometry"), ("geo_point", "point"), ("custom", "text"),
    (CustomType(postgres=("numeric",), opensearch="scaled_float"), "integer"),
]


@pytest.mark.parametrize(("declared", "pg_type"), ACCEPTED)
def test_a_declared_type_accepts_the_postgres_types_of_its_row(declared, pg_type):
    assert accepts(declared, pg_type)


@pytest.mark.parametrize(("declared", "pg_type"), REJECTED)
def test_a_declared_type_rejects_postgres_types_outside_its_row(declared, pg_type):
    assert not accepts(declared, pg_type)


def test_only_enum_accepts_a_postgres_enum_type():
    assert accepts("enum", "mood", is_enum_type=True)
    assert not accepts("enum", "mood")
    assert not accepts("keyword", "mood", is_enum_type=True)


@pytest.mark.parametrize("pg_type", ["smallint", "integer", "bigint", "real", "float8", "numeric(9,6)"])
def test_numeric_columns_can_hold_geo_coordinates(pg_type):
    assert is_numeric_pg_type(pg_type)


@pytest.mark.parametrize("pg_type", ["text", "jsonb", "point"])
def test_non_numeric_columns_cannot_hold_geo_coordinates(pg_type):
    assert not is_numeric_pg_type(pg_type)


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        ("text", "text"), ("identifier", "text"), ("keyword", "keyword"), ("enum", "keyword"),
        ("uuid", "keyword"), ("boolean", "boolean"), ("short", "short"), ("integer", "integer"),
        ("long", "long"), ("float", "float"), ("double", "double"), ("decimal", "double"),
        ("date", "date"), ("timestamp", "date"), ("binary", "binary"), ("json", "object"),
        ("geo_point", "geo_point"), (MapType(values="keyword"), "object"),
        (CustomType(postgres=("geometry",), opensearch="geo_shape"), "geo_shape"),
    ],
)
def test_each_declared_type_maps_to_its_opensearch_type(declared, expected):
    assert opensearch_type(declared) == expected


def _one(field: Field, primary_key: str | None = None):
    (resolved,) = resolve_fields(IndexSchema(table="t", primary_key=primary_key, fields=(field,)))
    return resolved


def test_a_minimal_schema_resolves_to_one_nullable_integer():
    resolved = _one(column("id", "integer", required=False))
    assert (resolved.name, resolved.type, resolved.nullable, resolved.declared) == (
        "id", "integer", True, "integer",
    )


def test_the_primary_key_column_is_never_null():
    assert _one(column("id", "integer", required=False), primary_key="id").nullable is False


def test_a_default_makes_a_column_non_null():
    assert _one(column("score", "integer", required=False, default=0)).nullable is False


def test_a_required_column_is_non_null_and_an_optional_one_nullable():
    assert _one(column("a", "keyword", required=True)).nullable is False
    assert _one(column("a", "keyword", required=False)).nullable is True


def test_the_primary_key_of_a_join_replaces_the_roots_inside_it():
    join = Join(
        table="orders", kind=HasMany(foreign_key="user_id"), primary_key="order_no",
        nullable=False,
        fields=(column("order_no", "long", required=False), column("id", "long", required=False)),
    )
    resolved = _one(Field("orders", join), primary_key="id")
    assert [(c.name, c.nullable) for c in resolved.children] == [("order_no", False), ("id", True)]


def test_objects_keep_the_current_primary_key():
    group = GroupSource(fields=(column("id", "integer", required=False),))
    resolved = _one(Field("meta", group), primary_key="id")
    assert (resolved.type, resolved.nullable, resolved.declared) == ("object", False, "object")
    assert resolved.children[0].nullable is False


@pytest.mark.parametrize(
    ("kind", "nullable", "expected_type", "expected_nullable", "verb"),
    [
        (BelongsTo(column="org_id"), True, "object", True, "belongs_to"),
        (BelongsTo(column="org_id"), False, "object", False, "belongs_to"),
        (HasOne(foreign_key="user_id"), True, "object", True, "has_one"),
        (HasMany(foreign_key="user_id"), False, "nested", False, "has_many"),
        (ManyToMany(through=Through("j", "l", "r")), False, "nested", False, "many_to_many"),
    ],
)
def test_joins_resolve_to_objects_or_nested_arrays(
    kind, nullable, expected_type, expected_nullable, verb
):
    join = Join(table="x", kind=kind, primary_key="id", nullable=nullable, fields=())
    resolved = _one(Field("rel", join))
    assert (resolved.type, resolved.nullable, resolved.declared, resolved.children) == (
        expected_type, expected_nullable, verb, (),
    )


def _aggregate(op: str, **kwargs) -> Aggregate:
    return Aggregate(table="orders", op=op, key=ForeignKey(column="user_id"), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("aggregate", "expected"),
    [
        (_aggregate("count"), ("long", False, False, False)),
        (_aggregate("avg", column="total"), ("double", True, False, False)),
        (_aggregate("sum", column="total", value_type="decimal"), ("double", True, False, True)),
        (_aggregate("min", column="placed_at", value_type="timestamp"), ("date", True, False, False)),
        (_aggregate("max", column="code", value_type="keyword"), ("keyword", True, False, False)),
        (_aggregate("ids", element_type="keyword"), ("keyword", False, True, False)),
        (_aggregate("ids", element_type="decimal"), ("double", False, True, True)),
    ],
)
def test_aggregates_resolve_by_op(aggregate, expected):
    resolved = _one(Field("agg", aggregate))
    assert (resolved.type, resolved.nullable, resolved.array, resolved.decimal) == expected
    assert resolved.declared == aggregate.op


@pytest.mark.parametrize(
    ("value", "expected_type", "nullable"),
    [
        (True, "boolean", False), (7, "long", False), (Decimal("1.5"), "double", False),
        ("x", "keyword", False), (None, "keyword", True), ([3, 4], "long", False),
        ([], "keyword", False), ({"a": 1}, "object", False),
    ],
)
def test_constants_take_the_type_of_their_value(value, expected_type, nullable):
    resolved = _one(Field("c", Constant(value=value)))
    assert (resolved.type, resolved.nullable, resolved.declared) == (expected_type, nullable, "constant")


def test_a_decimal_constant_is_marked_decimal():
    assert _one(Field("c", Constant(value=Decimal("2.5")))).decimal is True


def test_a_map_keeps_the_type_of_its_values_out_of_opensearch():
    resolved = _one(column("labels", MapType(values="keyword"), required=False))
    assert (resolved.type, resolved.map_values, resolved.declared) == ("object", "keyword", "map")
    assert resolved.extra == {"dynamic": True}


def test_one_column_geo_and_two_column_geo_are_geo_points():
    one = _one(column("loc", "geo_point", required=True, column="loc_json"))
    two = _one(Field("loc", GeoSource(lat="la", lon="lo", nullable=True)))
    assert (one.type, one.nullable, one.declared) == ("geo_point", False, "geo")
    assert (two.type, two.nullable, two.declared) == ("geo_point", True, "geo")


def test_custom_fields_emit_their_opensearch_type_verbatim():
    resolved = _one(column(
        "price", CustomType(postgres=("numeric",), opensearch="scaled_float"), required=False,
    ))
    assert (resolved.type, resolved.declared) == ("scaled_float", "custom")


def test_an_enum_with_variants_carries_its_rank_order_and_a_bare_enum_none():
    ordered = _one(column("tier", "enum", required=True, variants=("free", "pro")))
    bare = _one(column("tier", "enum", required=True))
    assert ordered.enum_order == ("free", "pro")
    assert bare.enum_order == ()


def test_declared_decimal_columns_are_marked_decimal():
    assert _one(column("total", "decimal", required=True)).decimal is True
    assert _one(column("total", "double", required=True)).decimal is False


def test_the_worked_example_has_the_documented_nullability():
    fields = resolve_fields(worked_example())
    nullable = {f.name for f in fields if f.nullable}
    assert nullable == {"fullName", "sku", "location", "title", "price", "organization"}
    by_name = {f.name: f for f in fields}
    assert by_name["tagIds"].array is True
    assert by_name["sku"].extra == {"analyzer": "flusso_code"}
    assert [c.nullable for c in by_name["orders"].children] == [False, False]


def test_a_column_source_is_resolved_without_options_when_none_are_set():
    resolved = _one(Field("n", ColumnSource(column="n", type="long", nullable=True)))
    assert resolved.extra == {}
