"""Property tests of the schema loader: mutated schemas only ever raise ConfigError, and
randomly generated valid schemas always load."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flusso.domain.config.model import (
    FIELD_SIBLINGS,
    SCALAR_TYPES,
    TYPE_KEYS,
    Aggregate,
    ColumnSource,
    Constant,
    GeoSource,
    GroupSource,
    IndexSchema,
    Join,
)
from flusso.domain.config.schema_file import parse_index_schema
from flusso.domain.errors import ConfigError

PREFIX = "users.schema.yml (index users): "

SEEDS = [
    """\
version: 1
table: users
primary_key: id
soft_delete:
  field: deletedAt
  when:
    - {column: reason, op: neq, value: keep}
filters:
  - raw: "active"
  - {column: kind, op: in, value: [a, b, 3]}
fields:
  - integer: id
    required: true
  - keyword: email
    required: true
    transforms: [trim, lowercase]
    options: {ignore_above: 256}
  - timestamp: deletedAt
    column: deleted_at
    required: false
  - enum: level
    variants: [low, medium, high]
    required: false
    default: low
  - custom: vec
    postgres: ["numeric(10,2)"]
    opensearch: double
    required: false
""",
    """\
version: 1
table: users
primary_key: id
fields:
  - object: address
    options: {enabled: true}
    fields:
      - keyword: city
        required: false
      - geo: loc
        lat: latitude
        lon: longitude
        required: true
      - geo: point
        column: loc_json
        required: false
  - map: attrs
    values: keyword
    required: false
  - constant: kind
    value: {a: [1, 2.5, null, yes]}
""",
    """\
version: 1
table: users
schema: public
primary_key: id
fields:
  - has_many: orders
    table: orders
    primary_key: id
    foreign_key: user_id
    filters:
      - {column: total, op: between, value: [1, 100]}
      - {column: deleted_at, op: is_null}
    order_by:
      - {column: created_at, direction: desc}
    limit: 10
    fields:
      - integer: id
        required: false
      - sum: total
        table: items
        column: price
        value_type: decimal
        foreign_key: order_id
  - belongs_to: company
    table: companies
    primary_key: id
    required: true
    fields:
      - text: name
        required: false
  - many_to_many: tags
    table: tags
    primary_key: id
    through: {table: user_tags, left_key: user_id, right_key: tag_id}
    fields: []
  - count: orderCount
    table: orders
    foreign_key: user_id
  - ids: tagIds
    table: tags
    element_type: long
    through:
      table: user_tags
      left_key: user_id
      right_key: tag_id
""",
]

KEY_WORDS = [
    *TYPE_KEYS, *FIELD_SIBLINGS, "version", "table", "schema", "primary_key", "doc_id",
    "soft_delete", "filters", "fields", "field", "when", "raw", "op", "direction", "left_key",
    "right_key", "requierd", "colum", "", "1abc", "a b", "<<", "?", "-",
]
VALUE_WORDS = [
    "[]", "{}", "null", "~", "1", "-1", "0", "true", "'x'", "1.5", "[1, 2]", "{a: 1}",
    ".nan", ".inf", "0x1F", "010", "2024-01-01", "yes", "*x", "&a 1", "!tag v", "|", ">",
    "\"\"", "' '", "[[1]]", "{column: a}", "in", "is_null", "geo_point", "json", "keyword",
    "99999999999999999999999", "1e400", "- a", "[a, b", "{a", "'", "\"", "&", "*", "%",
    "@", "`", "\t", "a: b", "- keyword: x", "eq", "between", "[1, 2, 3]",
]
GARBAGE = list(":-[]{},'\"#&*!|>%@`?\t\n ~\\\x00\x07\ufeff\u2028é") + ["---", "...", ": ", "- "]

_KEY_LINE = re.compile(r"^(\s*(?:- )?)([A-Za-z_<?][\w<]*)(\s*:)(.*)$")


@st.composite
def mutated(draw):
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        lines = text.split("\n")
        at = draw(st.integers(0, max(len(lines) - 1, 0)))
        op = draw(st.sampled_from(
            ["delete", "duplicate", "rename", "revalue", "truncate", "garbage", "indent"]))
        line = lines[at] if lines else ""
        match = _KEY_LINE.match(line)
        if op == "delete" and lines:
            del lines[at]
        elif op == "duplicate" and lines:
            lines.insert(at, line)
        elif op == "rename" and match:
            lines[at] = match[1] + draw(st.sampled_from(KEY_WORDS)) + match[3] + match[4]
        elif op == "revalue" and match:
            lines[at] = match[1] + match[2] + match[3] + " " + draw(st.sampled_from(VALUE_WORDS))
        elif op == "indent" and lines:
            delta = draw(st.integers(-4, 4))
            lines[at] = " " * delta + line if delta >= 0 else line[min(-delta, len(line)):]
        text = "\n".join(lines)
        if op == "truncate":
            text = text[: draw(st.integers(0, len(text)))]
        elif op == "garbage":
            pos = draw(st.integers(0, len(text)))
            text = text[:pos] + draw(st.sampled_from(GARBAGE)) + text[pos:]
    return text


def assert_loads_or_config_error(text: str) -> None:
    try:
        result = parse_index_schema(text, path="users.schema.yml", index="users")
    except ConfigError as error:
        assert error.problems
        for problem in error.problems:
            assert problem.message.startswith(PREFIX)
        return
    assert isinstance(result, IndexSchema)


def test_every_seed_is_valid():
    for seed in SEEDS:
        assert isinstance(parse_index_schema(seed, path="x", index="x"), IndexSchema)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_schemas_only_ever_raise_config_error(text):
    assert_loads_or_config_error(text)


@pytest.mark.slow
@settings(max_examples=20000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_schemas_only_ever_raise_config_error_long_run(text):
    assert_loads_or_config_error(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_only_ever_raises_config_error(text):
    assert_loads_or_config_error(text)


# ---------------------------------------------------------------------------
# Random valid schemas
# ---------------------------------------------------------------------------

# Names without underscores keep enum sort names (path with `.` → `_`) distinct.
NAMES = st.from_regex(r"[a-zA-Z][a-zA-Z0-9]{0,8}", fullmatch=True)
COLUMNS = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
    st.text(alphabet="abc xyz-.:é", max_size=8),
)
FILTER = st.one_of(
    st.builds(lambda c: {"column": c, "op": "is_null"}, COLUMNS),
    st.builds(lambda c, v: {"column": c, "op": "eq", "value": v},
              COLUMNS, st.one_of(st.integers(), st.booleans(), st.text(max_size=5))),
    st.builds(lambda c, v: {"column": c, "op": "in", "value": v},
              COLUMNS, st.lists(st.integers(), min_size=1, max_size=3)),
    st.builds(lambda c, a, b: {"column": c, "op": "between", "value": [a, b]},
              COLUMNS, st.integers(), st.integers()),
    st.builds(lambda s: {"raw": f"{s} > 0"}, COLUMNS),
)


def scalar_field(tag):
    return st.fixed_dictionaries(
        {tag: NAMES, "required": st.booleans()},
        optional={
            "column": COLUMNS,
            "transforms": st.lists(st.sampled_from(["trim", "lowercase"]), max_size=3),
            "default": SCALARS,
            "options": st.dictionaries(st.sampled_from(["index", "boost", "doc_values"]),
                                       SCALARS, max_size=2),
        },
    )


LEAVES = st.one_of(
    st.sampled_from([t for t in SCALAR_TYPES if t != "enum"]).flatmap(scalar_field),
    st.fixed_dictionaries(
        {"enum": NAMES, "required": st.booleans()},
        optional={"variants": st.lists(st.from_regex(r"[a-z]{1,6}", fullmatch=True),
                                       unique=True, max_size=4)},
    ),
    st.fixed_dictionaries({"geo": NAMES, "lat": COLUMNS, "lon": COLUMNS,
                           "required": st.booleans()}),
    st.fixed_dictionaries({"geo": NAMES, "required": st.booleans()},
                          optional={"column": COLUMNS}),
    st.fixed_dictionaries({"map": NAMES, "required": st.booleans(),
                           "values": st.sampled_from(["keyword", "long", "date", "text"])}),
    st.fixed_dictionaries({"custom": NAMES, "required": st.booleans(),
                           "postgres": st.lists(st.sampled_from(["tsvector", "int4[]",
                                                                 "numeric(1, 2)"]),
                                                min_size=1, max_size=2),
                           "opensearch": st.sampled_from(["keyword", "long"])}),
    st.fixed_dictionaries({"constant": NAMES, "value": st.one_of(
        SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(COLUMNS, SCALARS, max_size=2))}),
    st.fixed_dictionaries({"count": NAMES, "table": COLUMNS, "foreign_key": COLUMNS},
                          optional={"filters": st.lists(FILTER, max_size=2)}),
    st.fixed_dictionaries({"sum": NAMES, "table": COLUMNS, "foreign_key": COLUMNS,
                           "column": COLUMNS, "value_type": st.sampled_from(["long", "decimal"])}),
    st.fixed_dictionaries({"ids": NAMES, "table": COLUMNS, "element_type": st.just("long"),
                           "through": st.fixed_dictionaries({"table": COLUMNS,
                                                             "left_key": COLUMNS,
                                                             "right_key": COLUMNS})}),
)


def name_of(field: dict) -> str:
    return next(value for key, value in field.items() if key in TYPE_KEYS)


def level(children):
    return st.lists(children, max_size=4, unique_by=name_of)


def extend(children):
    fields = level(children)
    return st.one_of(
        st.fixed_dictionaries({"object": NAMES, "fields": fields}),
        st.fixed_dictionaries(
            {"has_many": NAMES, "table": COLUMNS, "primary_key": COLUMNS,
             "foreign_key": COLUMNS, "fields": fields},
            optional={"filters": st.lists(FILTER, max_size=2),
                      "order_by": st.lists(st.fixed_dictionaries(
                          {"column": COLUMNS}, optional={"direction": st.sampled_from(
                              ["asc", "desc"])}), max_size=2),
                      "limit": st.integers(0, 100)}),
        st.fixed_dictionaries(
            {"belongs_to": NAMES, "table": COLUMNS, "primary_key": COLUMNS, "fields": fields},
            optional={"required": st.booleans(), "column": COLUMNS}),
    )


FIELDS = level(st.recursive(LEAVES, extend, max_leaves=8))


def emit(value, indent=0) -> str:
    """Block-style YAML with every string double-quoted (JSON strings are YAML scalars)."""
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        lines = []
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{json.dumps(key)}:\n{emit(item, indent + 2)}")
            else:
                lines.append(f"{pad}{json.dumps(key)}: {emit(item)}")
        return "\n".join(lines)
    if isinstance(value, list):
        if not value:
            return "[]"
        lines = []
        for item in value:
            if isinstance(item, dict | list) and item:
                body = emit(item, indent + 2)
                lines.append(f"{pad}- {body.lstrip()}")
            else:
                lines.append(f"{pad}- {emit(item)}")
        return "\n".join(lines)
    return json.dumps(value)


def count_fields(fields) -> int:
    return sum(1 + count_fields(f.get("fields", [])) for f in fields)


def count_model(fields) -> int:
    total = 0
    for field in fields:
        total += 1
        if isinstance(field.source, GroupSource | Join):
            total += count_model(field.source.fields)
    return total


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(FIELDS)
def test_random_valid_schemas_load(fields):
    document = {"version": 1, "table": "users", "primary_key": "id", "fields": fields}
    text = emit(document) + "\n"
    loaded = parse_index_schema(text, path="users.schema.yml", index="users")
    assert [f.name for f in loaded.fields] == [name_of(f) for f in fields]
    assert count_model(loaded.fields) == count_fields(fields)
    for field in loaded.fields:
        assert isinstance(field.source, ColumnSource | GeoSource | GroupSource | Join
                          | Aggregate | Constant)
