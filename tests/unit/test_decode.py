"""Decoding documents assembled by Postgres (engine spec §6.9, R-20/R-21/R-22)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

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
    Join,
    MapType,
    Through,
)
from flusso.domain.documents.decode import (
    coerce_timestamp,
    decode_document,
    parse_document,
    plan_object,
)


def col(name: str, type_: Any, nullable: bool = True) -> Field:
    return Field(name, ColumnSource(column=name, type=type_, nullable=nullable))


def decode_one(field: Field, wire: Any) -> Any:
    """Decode a one-field document whose field arrives as `wire` (given as JSON text)."""
    doc = decode_document(f'{{"{field.name}": {wire}}}', plan_object([field]))
    return doc[field.name]


@pytest.mark.parametrize(
    ("declared", "wire", "expected"),
    [
        ("boolean", "true", True),
        ("short", "7", 7),
        ("integer", "-12", -12),
        ("long", "9000000000", 9000000000),
        ("float", "1.1", Decimal("1.1")),
        ("double", "1.1", Decimal("1.1")),
        ("double", '"NaN"', "NaN"),
        ("decimal", "19.90", Decimal("19.90")),
        ("decimal", "5", Decimal(5)),
        ("uuid", '"095b7d61-cbbc-49d6-842c-231d06b81e7a"', "095b7d61-cbbc-49d6-842c-231d06b81e7a"),
        ("date", '"2024-01-02"', "2024-01-02"),
        ("timestamp", '"2024-01-02T02:04:05+01:00"', "2024-01-02T01:04:05+00:00"),
        ("timestamp", '"2024-01-02T01:04:05+00:00"', "2024-01-02T01:04:05+00:00"),
        ("timestamp", '"2024-01-02T03:04:05.678901"', "2024-01-02T03:04:05.678901"),
        ("timestamp", '"03:04:05.123"', "03:04:05.123"),
        ("binary", '"\\\\x0102ff"', b"\x01\x02\xff"),
        ("text", '"  padded  "', "  padded  "),
        ("keyword", '"ab  "', "ab  "),
        ("identifier", '"SKU-1"', "SKU-1"),
        ("enum", '"active"', "active"),
        ("json", '{"a": [1, 2.5]}', {"a": [1, Decimal("2.5")]}),
        (MapType("keyword"), '{"k": "v"}', {"k": "v"}),
        (CustomType(("tsvector",), "text"), '"\'a\':1"', "'a':1"),
        ("geo_point", '{"lat": 1.5, "lon": 2}', {"lat": Decimal("1.5"), "lon": 2}),
    ],
)
def test_each_declared_type_decodes_to_its_document_value(declared: Any, wire: str, expected: Any) -> None:
    value = decode_one(col("f", declared), wire)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ("2024-01-02T03:04:05.5+00:00", "2024-01-02T03:04:05.500+00:00"),
        ("2024-01-02T03:04:05.12345+00:00", "2024-01-02T03:04:05.123450+00:00"),
        ("2024-01-02T03:04:05.000+00:00", "2024-01-02T03:04:05+00:00"),
        ("2024-01-02T03:04:05Z", "2024-01-02T03:04:05+00:00"),
        ("2024-01-02T00:30:00+05:30", "2024-01-01T19:00:00+00:00"),
        ("2024-01-02T00:30:00.25-02", "2024-01-02T02:30:00.250+00:00"),
        ("1850-01-01T00:00:00+00:19:32", "1849-12-31T23:40:28+00:00"),
        ("2024-01-02 03:04:05", "2024-01-02T03:04:05"),
        ("2024-01-02T03:04:05.1", "2024-01-02T03:04:05.100"),
        ("03:04:05", "03:04:05"),
        ("03:04:05.1234", "03:04:05.123400"),
        ("infinity", "infinity"),
        ("2024-01-02", "2024-01-02"),
    ],
)
def test_timestamps_use_utc_rfc3339_with_a_fraction_only_when_non_zero(wire: str, expected: str) -> None:
    assert coerce_timestamp(wire) == expected


def test_undeclared_keys_are_dropped_and_declared_nulls_stay_null() -> None:
    plan = plan_object([col("a", "text"), col("b", "decimal"), col("c", "timestamp")])
    doc = decode_document('{"a": null, "b": null, "c": null, "extra": 1}', plan)
    assert doc == {"a": None, "b": None, "c": None}


def test_values_that_do_not_fit_their_type_keep_their_json_shape() -> None:
    assert decode_one(col("f", "binary"), '"not hex"') == "not hex"
    assert decode_one(col("f", "binary"), '"\\\\xzz"') == "\\xzz"
    assert decode_one(col("f", "timestamp"), "17") == 17
    assert decode_one(col("f", "decimal"), '"NaN"') == "NaN"
    assert decode_one(col("f", "integer"), '"x"') == "x"


def test_joins_coerce_their_objects_recursively() -> None:
    item = Join(
        table="items", kind=HasMany("order_id"), primary_key="id", nullable=False,
        fields=(col("price", "decimal"), col("at", "timestamp")),
    )
    owner = Join(
        table="users", kind=BelongsTo("user_id"), primary_key="id", nullable=True,
        fields=(col("blob", "binary"), Field("items", item)),
    )
    plan = plan_object([Field("owner", owner), Field("none", owner)])
    doc = decode_document(
        json.dumps({
            "owner": {"blob": "\\x00", "junk": 1, "items": [
                {"price": 2, "at": "2024-01-01T00:00:00+02:00"}, {"price": 1.50, "at": None},
            ]},
            "none": None,
        }),
        plan,
    )
    assert doc == {
        "owner": {"blob": b"\x00", "items": [
            {"price": Decimal(2), "at": "2023-12-31T22:00:00+00:00"},
            {"price": Decimal("1.5"), "at": None},
        ]},
        "none": None,
    }


def test_an_empty_to_many_join_stays_an_empty_array() -> None:
    many = Join(table="t", kind=HasMany("fk"), primary_key="id", nullable=False, fields=(col("x", "binary"),))
    assert decode_one(Field("rows", many), "[]") == []


def test_aggregates_decode_by_their_op_and_declared_types() -> None:
    fields = [
        Field("n", Aggregate(table="o", op="count", key=ForeignKey("u"))),
        Field("mean", Aggregate(table="o", op="avg", key=ForeignKey("u"), column="x")),
        Field("total", Aggregate(table="o", op="sum", key=ForeignKey("u"), column="x", value_type="decimal")),
        Field("last", Aggregate(table="o", op="max", key=ForeignKey("u"), column="t", value_type="timestamp")),
        Field("low", Aggregate(table="o", op="min", key=ForeignKey("u"), column="x", value_type="integer")),
        Field("keys", Aggregate(table="o", op="ids", key=Through("j", "l", "r"), element_type="binary")),
        Field("plain_ids", Aggregate(table="o", op="ids", key=ForeignKey("u"), element_type="long")),
    ]
    doc = decode_document(
        '{"n": 3, "mean": 2.5000000000000000, "total": 7, "last": "2024-05-01T10:00:00.5+00:00",'
        ' "low": 1, "keys": ["\\\\x01", null], "plain_ids": [1, 2]}',
        plan_object(fields),
    )
    assert doc == {
        "n": 3, "mean": Decimal("2.5"), "total": Decimal(7),
        "last": "2024-05-01T10:00:00.500+00:00", "low": 1, "keys": [b"\x01", None],
        "plain_ids": [1, 2],
    }
    assert type(doc["total"]) is Decimal


def test_groups_geo_points_and_constants_keep_their_shape() -> None:
    fields = [
        Field("meta", GroupSource((col("at", "timestamp"), col("name", "text")))),
        Field("where", GeoSource(lat="lat", lon="lon", nullable=True)),
        Field("const", Constant({"a": 5})),
    ]
    doc = decode_document(
        '{"meta": {"at": "2024-01-01T00:00:00", "name": "x"}, "where": {"lat": 1, "lon": 2},'
        ' "const": {"a": 5}}',
        plan_object(fields),
    )
    assert doc == {
        "meta": {"at": "2024-01-01T00:00:00", "name": "x"},
        "where": {"lat": 1, "lon": 2},
        "const": {"a": 5},
    }


def test_floats_parse_as_exact_decimals_and_integers_stay_integers() -> None:
    parsed = parse_document('{"a": 0.1, "b": 12345678901234567890, "c": 1e400}')
    assert parsed == {"a": Decimal("0.1"), "b": 12345678901234567890, "c": Decimal("1e400")}
