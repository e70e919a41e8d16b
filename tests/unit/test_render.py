"""Document JSON rendering (sinks spec §1.6)."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flusso.domain.documents.render import render_document, to_json_value


def test_keys_are_sorted_at_every_level_in_compact_form_with_raw_utf8():
    doc = {"b": 1, "a": {"z": [{"y": 1, "x": 2}], "c": "café"}}
    assert render_document(doc) == '{"a":{"c":"café","z":[{"x":2,"y":1}]},"b":1}'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (True, True),
        (-7, -7),
        (2**63, 2**63),
        (1.5, 1.5),
        (float("nan"), None),
        (float("inf"), None),
        (float("-inf"), None),
        (Decimal("1.25"), 1.25),
        (Decimal("NaN"), "NaN"),
        (Decimal("Infinity"), "Infinity"),
        (Decimal("1e400"), "1E+400"),
        ("text", "text"),
        (uuid.UUID("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        (date(2026, 6, 3), "2026-06-03"),
        (time(10, 20, 30), "10:20:30"),
        (time(10, 20, 30, 123000), "10:20:30.123"),
        (time(10, 20, 30, 123456), "10:20:30.123456"),
        (time(10, 20, 30, 100), "10:20:30.000100"),
        (datetime(2026, 6, 3, 10, 20, 30), "2026-06-03T10:20:30"),
        (datetime(2026, 6, 3, 10, 20, 30, 5000), "2026-06-03T10:20:30.005"),
        (datetime(2026, 6, 3, 10, 20, 30, 5, tzinfo=UTC), "2026-06-03T10:20:30.000005+00:00"),
        (
            datetime(2026, 6, 3, 12, 20, 30, tzinfo=timezone(timedelta(hours=2))),
            "2026-06-03T10:20:30+00:00",
        ),
        (b"\x00\xffab", "AP9hYg=="),
        (bytearray(b"a"), "YQ=="),
        (memoryview(b"ab"), "YWI="),
        ((1, "x"), [1, "x"]),
        ([Decimal("2"), None], [2.0, None]),
    ],
)
def test_values_render_per_the_table(value, expected):
    assert to_json_value(value) == expected


def test_map_keys_become_strings():
    assert render_document({"m": {1: "a", "b": 2}}) == '{"m":{"1":"a","b":2}}'


def test_an_unrenderable_value_raises_type_error_naming_its_type():
    with pytest.raises(TypeError, match="set"):
        render_document({"tags": {"a", "b"}})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), json_values, max_size=6))
def test_rendered_documents_parse_back_to_the_same_values_with_non_finite_floats_as_null(doc):
    def expected(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, list):
            return [expected(v) for v in value]
        if isinstance(value, dict):
            return {k: expected(v) for k, v in value.items()}
        return value

    assert json.loads(render_document(doc)) == expected(doc)
