"""Built documents kept as Postgres's JSON text (`WireDocument`) and rendered in one pass.

The one-pass rendering must give the sink exactly what rendering the exactly
decoded document gives (engine spec §6.9, sinks spec §1.6), whatever the text
holds; the orjson codec may only spell floats differently (§1.6 leaves that open).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flusso.adapters.opensearch.codec import ORJSON_CODEC
from flusso.domain.config.model import (
    Aggregate,
    BelongsTo,
    ColumnSource,
    Constant,
    Field,
    ForeignKey,
    GeoSource,
    GroupSource,
    HasMany,
    Join,
    Through,
)
from flusso.domain.documents.decode import (
    WireDocument,
    coerce_timestamp,
    decode_document,
    plan_wire,
)
from flusso.domain.documents.render import (
    STDLIB_CODEC,
    JsonCodec,
    render_document,
    render_json,
    to_json_value,
)


def col(name: str, type_: Any) -> Field:
    return Field(name, ColumnSource(column=name, type=type_, nullable=True))


ITEMS = Join(
    table="items", kind=HasMany("order_id"), primary_key="id", nullable=False,
    fields=(col("qty", "integer"), col("price", "decimal")),
)
ORDERS = Join(
    table="orders", kind=HasMany("user_id"), primary_key="id", nullable=False,
    fields=(col("total", "decimal"), col("placed", "timestamp"), Field("items", ITEMS)),
)
OWNER = Join(
    table="owners", kind=BelongsTo("owner_id"), primary_key="id", nullable=True,
    fields=(col("blob", "binary"), col("at", "timestamp")),
)
FIELDS = (
    col("id", "long"),
    col("name", "text"),
    col("price", "decimal"),
    col("ratio", "double"),
    col("at", "timestamp"),
    col("blob", "binary"),
    col("doc", "json"),
    Field("orders", ORDERS),
    Field("owner", OWNER),
    Field("meta", GroupSource((col("at", "timestamp"), col("n", "integer")))),
    Field("where", GeoSource(lat="lat", lon="lon", nullable=True)),
    Field("const", Constant({"a": 5})),
    Field("spent", Aggregate("orders", "sum", ForeignKey("user_id"), column="total",
                             value_type="decimal")),
    Field("keys", Aggregate("tags", "ids", Through("j", "l", "r"), element_type="binary")),
    Field("mean", Aggregate("orders", "avg", ForeignKey("user_id"), column="total")),
)
PLAN = plan_wire(FIELDS)


def exact(text: str) -> str:
    """What the sink got before: decode exactly, then render the Python values."""
    return render_json(to_json_value(decode_document(text, PLAN.exact)))


def strictly(text: str) -> Any:
    """A rendered document with numbers kept apart by kind (`5` is not `5.0`)."""

    def tag(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: tag(v) for k, v in value.items()}
        if isinstance(value, list):
            return [tag(v) for v in value]
        return (type(value).__name__, value)

    return tag(json.loads(text, parse_float=Decimal))


WIRE = json.dumps({
    "id": 7, "name": "Zoë\t\u2028", "price": 19.90, "ratio": "NaN",
    "at": "2024-01-02T02:04:05.5+01:00", "blob": "\\x0102ff", "doc": {"n": 1.10, "k": [1, 2.5]},
    "orders": [
        {"total": 5, "placed": "2024-01-01T00:00:00+00:00", "items": [{"qty": 2, "price": 0.53}]},
        {"total": 0.1, "placed": "2024-01-01 00:00:00.25", "items": []},
    ],
    "owner": {"blob": "\\x00", "at": "03:04:05.12"}, "meta": {"at": "2024-05-01T10:00:00Z", "n": 3},
    "where": {"lat": 1.5, "lon": 2}, "const": {"a": 5}, "spent": 7, "keys": ["\\x01", None],
    "mean": 2.5,
})


def test_a_wire_document_reads_as_its_exact_decoding():
    doc = WireDocument(WIRE, PLAN)
    decoded = decode_document(WIRE, PLAN.exact)

    assert doc == decoded
    assert dict(doc) == decoded
    assert len(doc) == len(decoded)
    assert doc["price"] == Decimal("19.90")
    assert doc["blob"] == b"\x01\x02\xff"
    assert "owner" in doc and "nope" not in doc
    assert repr(doc) == repr(decoded)


@pytest.mark.parametrize("codec", [STDLIB_CODEC, ORJSON_CODEC], ids=["stdlib", "orjson"])
def test_one_pass_rendering_gives_the_sink_what_the_exact_decoding_gives(codec: JsonCodec):
    rendered = render_document(WireDocument(WIRE, PLAN), codec)

    assert rendered == exact(WIRE)
    assert json.loads(rendered)["price"] == 19.9
    assert json.loads(rendered)["orders"][0]["total"] == 5.0
    assert '"total":5.0' in rendered
    assert json.loads(rendered)["blob"] == "AQL/"
    assert json.loads(rendered)["at"] == "2024-01-02T01:04:05.500+00:00"


@pytest.mark.parametrize("codec", [STDLIB_CODEC, ORJSON_CODEC], ids=["stdlib", "orjson"])
@pytest.mark.parametrize(
    "wire",
    [
        '{"price": 1e400}',  # overflows a float: the exact path keeps the decimal digits
        '{"doc": {"x": NaN, "y": Infinity}}',  # literals Postgres never sends; still equal
        '{"doc": 123456789012345678901234567890}',  # beyond 64 bits: kept exact
        '{"doc": -9223372036854775809, "id": 18446744073709551615}',
        '{"price": 123456789012345678901234567890}',  # an integral numeric → float
        '{"price": ' + "9" * 400 + "}",  # an integral numeric too large for a float → digits
        '{"id": 1, "junk": 2, "orders": [{"total": 1, "extra": true, "items": [{"x": 1}]}]}',
        '{"orders": [null, 5, "x", {"total": 2}], "owner": [1], "meta": "flat"}',
        '{"orders": {"total": 3}, "keys": "\\\\x01"}',
        '{"blob": "\\\\xzz", "at": 17, "price": "NaN", "owner": null}',
        '[1, 2]',
        '"just text"',
    ],
)
def test_texts_the_one_pass_cannot_spell_fall_back_to_the_exact_path(codec: JsonCodec, wire: str):
    assert strictly(render_document(WireDocument(wire, PLAN), codec)) == strictly(exact(wire))


def test_the_orjson_codec_keeps_integers_beyond_64_bits_exact():
    wire = '{"doc": {"big": 18446744073709551616, "small": -18446744073709551616}}'
    rendered = render_document(WireDocument(wire, PLAN), ORJSON_CODEC)

    assert rendered == '{"doc":{"big":18446744073709551616,"small":-18446744073709551616}}'


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ("2024-01-02T03:04:05+00:00", "2024-01-02T03:04:05+00:00"),  # the shortcut
        ("2024-01-02 03:04:05+00:00", "2024-01-02T03:04:05+00:00"),  # same length, needs its T
        ("2024-01-02T03:04:05-00:00", "2024-01-02T03:04:05+00:00"),
        ("abcdefghijTklmnopqr+00:00", "abcdefghijTklmnopqr+00:00"),  # not a timestamp
    ],
)
def test_whole_second_utc_timestamps_pass_through_and_others_are_still_normalised(wire, expected):
    assert coerce_timestamp(wire) == expected


# -- property: any text shaped (or misshaped) like the schema ---------------------------

NUMBER_LITERALS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str),
    st.sampled_from(["19.90", "0.10", "-0.0", "1e400", "1E2", "5", "0"]),
)
TEXT_LITERALS = st.one_of(
    st.text(max_size=12),
    st.sampled_from([
        "2024-01-02T02:04:05+01:00", "2024-01-02T03:04:05.678901", "2024-01-02 03:04:05",
        "2024-01-02T00:30:00.25-02", "03:04:05.120", "2024-01-02T03:04:05+00:00",
        "\\x0102ff", "\\x", "\\xzz", "infinity",
    ]),
).map(lambda s: json.dumps(s, ensure_ascii=False))
ATOMS = st.one_of(NUMBER_LITERALS, TEXT_LITERALS, st.sampled_from(["null", "true", "false"]))


def obj(fields: dict[str, Any]) -> st.SearchStrategy[str]:
    """A JSON object text with some declared keys (values from their strategy) and maybe junk."""
    declared = st.fixed_dictionaries({}, optional=fields)
    junk = st.dictionaries(st.sampled_from(["junk", "x"]), ATOMS, max_size=1)

    def spell(parts: tuple[dict[str, str], dict[str, str]]) -> str:
        items = {**parts[1], **parts[0]}
        return "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in items.items()) + "}"

    return st.tuples(declared, junk).map(spell)


def array(element: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(st.one_of(element, ATOMS), max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]")


ITEM = obj({"qty": ATOMS, "price": ATOMS})
ORDER = obj({"total": ATOMS, "placed": ATOMS, "items": st.one_of(array(ITEM), ATOMS)})
DOCUMENTS = obj({
    "id": ATOMS, "name": ATOMS, "price": ATOMS, "ratio": ATOMS, "at": ATOMS, "blob": ATOMS,
    "doc": st.one_of(ATOMS, array(ATOMS), obj({"n": ATOMS})),
    "orders": st.one_of(array(ORDER), ORDER, ATOMS),
    "owner": st.one_of(obj({"blob": ATOMS, "at": ATOMS}), ATOMS),
    "meta": st.one_of(obj({"at": ATOMS, "n": ATOMS}), ATOMS),
    "spent": ATOMS, "keys": st.one_of(array(ATOMS), ATOMS), "mean": ATOMS,
})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCUMENTS)
def test_any_document_text_renders_the_same_through_both_paths(wire: str):
    expected = exact(wire)

    assert render_document(WireDocument(wire, PLAN)) == expected
    assert strictly(render_document(WireDocument(wire, PLAN), ORJSON_CODEC)) == strictly(expected)
