"""The `flusso schema index` JSON Schema: valid draft-07, accepts valid schema files, and
never drifts from the loader's vocabulary."""

from __future__ import annotations

import jsonschema
import pytest
from ruamel.yaml import YAML

from flusso.domain.config.field_types import SCALAR_FIELD_TYPES
from flusso.domain.config.jsonschemas import index_json_schema_yaml
from flusso.domain.config.model import (
    DIRECTIONS,
    FIELD_SIBLINGS,
    NULL_OPS,
    TRANSFORMS,
    TYPE_KEYS,
    TYPE_NAMES,
    VALUE_OPS,
)
from flusso.domain.config.schema_file import parse_index_schema

EXAMPLES = [
    """\
version: 1
table: users
primary_key: id
soft_delete:
  column: deleted_at
  when:
    - {column: reason, op: neq, value: keep}
filters:
  - raw: "active"
fields:
  - integer: id
    required: true
  - keyword: email
    required: true
    transforms: [trim, lowercase]
  - enum: level
    variants: [low, high]
    required: false
    default: low
  - geo: loc
    lat: latitude
    lon: longitude
    required: false
  - map: attrs
    values: keyword
    required: false
  - custom: vec
    postgres: [tsvector]
    opensearch: keyword
    required: false
  - constant: kind
    value: {a: 1}
""",
    """\
version: 1
table: users
schema: public
primary_key: id
fields:
  - object: address
    fields:
      - keyword: city
        required: false
  - has_many: orders
    table: orders
    primary_key: id
    foreign_key: user_id
    filters:
      - {column: total, op: between, value: [1, 100]}
      - {column: deleted_at, op: is_null}
    order_by:
      - {column: created_at, direction: desc}
    limit: 0
    fields:
      - sum: total
        table: items
        column: price
        value_type: decimal
        foreign_key: order_id
  - belongs_to: company
    table: companies
    primary_key: id
    required: true
    fields: []
  - ids: tagIds
    table: tags
    element_type: long
    through: {table: user_tags, left_key: user_id, right_key: tag_id}
""",
]


def load_yaml(text: str):
    return YAML(typ="safe", pure=True).load(text)


@pytest.fixture(scope="module")
def schema():
    return load_yaml(index_json_schema_yaml())


def test_the_schema_is_valid_draft_07(schema):
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"


def test_the_text_ends_with_one_newline_and_no_trailing_whitespace():
    text = index_json_schema_yaml()
    assert text.endswith("\n") and not text.endswith("\n\n")
    assert text == text.rstrip() + "\n"


@pytest.mark.parametrize("example", EXAMPLES)
def test_valid_schema_files_pass_the_json_schema(schema, example):
    parse_index_schema(example, path="x.schema.yml", index="x")  # the loader agrees
    jsonschema.Draft7Validator(schema).validate(load_yaml(example))


def test_an_unknown_top_level_key_fails_the_json_schema(schema):
    document = load_yaml(EXAMPLES[0])
    document["bogus"] = 9
    assert list(jsonschema.Draft7Validator(schema).iter_errors(document))


def test_field_keys_match_the_loader(schema):
    properties = schema["definitions"]["field"]["properties"]
    type_keys = {
        key for key, value in properties.items()
        if value.get("$ref") == "#/definitions/field_name"
    }
    assert type_keys == set(TYPE_KEYS)
    assert len(type_keys) == 31
    siblings = set(properties) - type_keys
    assert siblings == set(FIELD_SIBLINGS)
    assert len(siblings) == 22


def test_type_names_match_the_loader(schema):
    assert schema["definitions"]["type_name"]["enum"] == list(TYPE_NAMES)
    assert len(TYPE_NAMES) == 16


def test_ops_transforms_and_directions_match_the_loader(schema):
    forms = schema["definitions"]["filter"]["oneOf"]
    ops = [form["properties"]["op"]["enum"] for form in forms if "op" in form["properties"]]
    assert ops == [list(NULL_OPS), list(VALUE_OPS)]
    field = schema["definitions"]["field"]["properties"]
    assert field["transforms"]["items"]["enum"] == list(TRANSFORMS)
    order_by = schema["definitions"]["order_by"]["items"]["properties"]
    assert order_by["direction"]["enum"] == list(DIRECTIONS)


def test_each_scalar_type_key_carries_its_registry_description(schema):
    properties = schema["definitions"]["field"]["properties"]
    for name, row in SCALAR_FIELD_TYPES.items():
        assert properties[name] == {
            "$ref": "#/definitions/field_name", "description": row.description,
        }
