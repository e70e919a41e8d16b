"""Vocabulary and identifier rules of the `*.schema.yml` language: which keys each field
kind takes, what a Postgres identifier and a field name may be."""

from __future__ import annotations

import re

from flusso.domain.config.model import AGGREGATE_OPS, JOIN_VERBS, SCALAR_TYPES

TOP_KEYS: tuple[str, ...] = (
    "version", "table", "schema", "primary_key", "doc_id", "soft_delete", "filters", "fields",
)
REQUIRED_TOP_KEYS: tuple[str, ...] = ("version", "table", "fields")
SUPPORTED_VERSIONS: tuple[int, ...] = (1,)

_SCALAR_SIBLINGS = ("column", "required", "options", "transforms", "default")

KIND_SIBLINGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # kind: (allowed siblings in canonical order, required siblings)
    "scalar": (_SCALAR_SIBLINGS, ("required",)),
    "enum": (("variants", *_SCALAR_SIBLINGS), ("required",)),
    "custom": (
        ("postgres", "opensearch", "column", "required", "options", "default"),
        ("postgres", "opensearch", "required"),
    ),
    "geo": (("lat", "lon", "column", "required", "options"), ("required",)),
    "map": (("values", "column", "required", "options"), ("values", "required")),
    "object": (("options", "fields"), ("fields",)),
    "join": (
        ("table", "primary_key", "required", "column", "foreign_key", "through", "filters",
         "order_by", "limit", "fields", "options"),
        ("table", "primary_key", "fields"),
    ),
    "aggregate": (
        ("table", "column", "value_type", "element_type", "foreign_key", "through", "filters",
         "options"),
        ("table",),
    ),
    "constant": (("value",), ("value",)),
}

FILTER_KEYS: tuple[str, ...] = ("raw", "column", "op", "value")
ORDER_BY_KEYS: tuple[str, ...] = ("column", "direction")
THROUGH_KEYS: tuple[str, ...] = ("table", "left_key", "right_key")
SOFT_DELETE_KEYS: tuple[str, ...] = ("column", "field", "when")

PARSED_TYPE_NAMES: tuple[str, ...] = (*SCALAR_TYPES, "geo_point")
"""Type names the parser accepts; `geo_point` only to reject it with a precise message."""

FILTER_FORMS = (
    "a filter is one of `{raw: <sql>}`, `{column: <c>, op: is_null | is_not_null}` "
    "or `{column: <c>, op: <eq|neq|lt|lte|gt|gte|in|not_in|like|ilike|between>, value: <v>}`"
)

JOIN_KEY_HINTS: dict[str, str] = {
    "belongs_to": "`column` — this table's column pointing at the related row "
                  "(defaults to the field name)",
    "has_one": "`foreign_key` — the related table's column pointing back at this row",
    "has_many": "`foreign_key` — the related table's column pointing back at this row",
    "many_to_many": "`through` — the junction table and its two keys "
                    "(`table`, `left_key`, `right_key`)",
}
JOIN_KEY_SIBLING: dict[str, str] = {
    "belongs_to": "column", "has_one": "foreign_key", "has_many": "foreign_key",
    "many_to_many": "through",
}

_PG_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")
_FIELD_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_MAX_IDENTIFIER = 63


def kind_of(tag: str) -> str:
    """The sibling-table kind a type key belongs to."""
    if tag == "enum":
        return "enum"
    if tag in SCALAR_TYPES:
        return "scalar"
    if tag in JOIN_VERBS:
        return "join"
    if tag in AGGREGATE_OPS:
        return "aggregate"
    return tag  # custom, geo, object, map, constant


def pg_identifier_problem(raw: str) -> tuple[str, str | None]:
    """(normalised value, problem or None) for a Postgres identifier: trimmed and lowercased."""
    value = raw.strip().lower()
    if len(value) > _MAX_IDENTIFIER:
        return value, f"is longer than {_MAX_IDENTIFIER} characters"
    if not _PG_IDENTIFIER.fullmatch(value):
        return value, "must match `^[a-z_][a-z0-9_]*$` after trimming and lowercasing"
    return value, None


def field_name_problem(raw: str) -> tuple[str, str | None]:
    """(normalised value, problem or None) for a field name: trimmed, case kept."""
    value = raw.strip()
    if len(value) > _MAX_IDENTIFIER:
        return value, f"is longer than {_MAX_IDENTIFIER} characters"
    if not _FIELD_NAME.fullmatch(value):
        return value, "must match `^[a-zA-Z_][a-zA-Z0-9_]*$` after trimming"
    return value, None


def backticked(names: tuple[str, ...] | list[str]) -> str:
    return ", ".join(f"`{name}`" for name in names)
