"""The OpenSearch index body built from a resolved mapping."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from mapping_examples import WORKED_EXAMPLE_HASH, WORKED_EXAMPLE_YAML, column, worked_example

from flusso.domain.config.model import (
    Constant,
    Field,
    GroupSource,
    HasMany,
    IndexSchema,
    Join,
)
from flusso.domain.mapping import build_index_body, enum_sort_rules, index_mapping

LOWERCASE = {"type": "keyword", "normalizer": "flusso_lowercase", "ignore_above": 256}
TEXT_SUBFIELDS = {"keyword": {"type": "keyword", "ignore_above": 256}, "keyword_lowercase": LOWERCASE}
KEYWORD_SUBFIELDS = {"text": {"type": "text", "analyzer": "flusso_code"}, "keyword_lowercase": LOWERCASE}

WORKED_EXAMPLE_BODY = json.loads("""
{
  "settings": {
    "index": { "refresh_interval": "-1", "number_of_shards": 1, "number_of_replicas": 1 },
    "analysis": {
      "filter": { "flusso_word_delimiter": { "type": "word_delimiter_graph", "catenate_all": true, "preserve_original": true } },
      "char_filter": { "flusso_enumsort__tier": { "type": "mapping", "mappings": ["free => 0", "pro => 1", "enterprise => 2"] } },
      "analyzer": {
        "flusso_code": { "type": "custom", "tokenizer": "whitespace", "filter": ["flusso_word_delimiter", "flatten_graph", "lowercase", "asciifolding"] },
        "flusso_text": { "type": "custom", "tokenizer": "standard", "filter": ["lowercase", "asciifolding"] } },
      "normalizer": {
        "flusso_lowercase": { "type": "custom", "filter": ["lowercase", "asciifolding"] },
        "flusso_enumsort__tier": { "type": "custom", "char_filter": ["flusso_enumsort__tier"], "filter": [] } } } },
  "mappings": {
    "dynamic": "strict",
    "properties": {
      "id": { "type": "integer" },
      "email": { "type": "keyword", "fields": {
        "text": { "type": "text", "analyzer": "flusso_code" },
        "keyword_lowercase": { "type": "keyword", "normalizer": "flusso_lowercase", "ignore_above": 256 } } },
      "fullName": { "type": "text", "analyzer": "flusso_text", "fields": {
        "keyword": { "type": "keyword", "ignore_above": 256 },
        "keyword_lowercase": { "type": "keyword", "normalizer": "flusso_lowercase", "ignore_above": 256 } } },
      "sku": { "type": "text", "analyzer": "flusso_code", "fields": {
        "keyword": { "type": "keyword", "ignore_above": 256 },
        "keyword_lowercase": { "type": "keyword", "normalizer": "flusso_lowercase", "ignore_above": 256 } } },
      "tier": { "type": "keyword", "fields": {
        "text": { "type": "text", "analyzer": "flusso_code" },
        "keyword_lowercase": { "type": "keyword", "normalizer": "flusso_lowercase", "ignore_above": 256 },
        "sort": { "type": "keyword", "normalizer": "flusso_enumsort__tier", "ignore_above": 256 } } },
      "location": { "type": "geo_point" },
      "title": { "type": "object", "dynamic": true },
      "price": { "type": "scaled_float", "scaling_factor": 100 },
      "audit": { "type": "object", "properties": { "createdAt": { "type": "date" } } },
      "organization": { "type": "object", "properties": {
        "name": { "type": "keyword", "fields": {
          "text": { "type": "text", "analyzer": "flusso_code" },
          "keyword_lowercase": { "type": "keyword", "normalizer": "flusso_lowercase", "ignore_above": 256 } } } } },
      "orders": { "type": "nested", "properties": { "id": { "type": "long" }, "total": { "type": "double" } } },
      "orderCount": { "type": "long" },
      "tagIds": { "type": "long" }
    }
  }
}
""")


def _body(schema: IndexSchema, **options) -> dict:
    # A JSON round trip proves the body is plain JSON data and compares as parsed JSON.
    return json.loads(json.dumps(build_index_body(index_mapping("users", schema), **options)))


def _props(*fields: Field, **options) -> dict:
    return _body(IndexSchema(table="t", fields=fields), **options)["mappings"]["properties"]


def test_the_worked_example_builds_exactly_the_documented_body():
    assert _body(worked_example()) == WORKED_EXAMPLE_BODY


def test_the_worked_example_mapping_carries_its_name_and_hash():
    mapping = index_mapping("users", worked_example())
    assert (mapping.index, mapping.hash) == ("users", WORKED_EXAMPLE_HASH)


def test_without_auto_subfields_only_the_listed_properties_change():
    expected = json.loads(json.dumps(WORKED_EXAMPLE_BODY))
    props = expected["mappings"]["properties"]
    props["email"] = {"type": "keyword"}
    props["fullName"] = {"type": "text"}
    props["organization"]["properties"]["name"] = {"type": "keyword"}
    props["sku"] = {"type": "text", "analyzer": "flusso_code"}
    props["tier"] = {"type": "keyword", "fields": {
        "sort": {"type": "keyword", "normalizer": "flusso_enumsort__tier", "ignore_above": 256},
    }}
    assert _body(worked_example(), auto_subfields=False) == expected


def test_icu_analysis_swaps_the_folding_components():
    analysis = _body(worked_example(), text_analysis="icu")["settings"]["analysis"]
    assert analysis["analyzer"]["flusso_code"] == {
        "type": "custom", "tokenizer": "whitespace",
        "filter": ["flusso_word_delimiter", "flatten_graph", "lowercase", "icu_folding"],
    }
    assert analysis["analyzer"]["flusso_text"] == {
        "type": "custom", "tokenizer": "icu_tokenizer", "filter": ["icu_normalizer", "icu_folding"],
    }
    assert analysis["normalizer"]["flusso_lowercase"] == {"type": "custom", "filter": ["icu_normalizer"]}
    assert analysis["filter"] == WORKED_EXAMPLE_BODY["settings"]["analysis"]["filter"]


def test_icu_analysis_leaves_the_properties_alone():
    icu = _body(worked_example(), text_analysis="icu")
    assert icu["mappings"] == WORKED_EXAMPLE_BODY["mappings"]


@pytest.mark.parametrize(("shards", "expected"), [(0, 1), (1, 1), (5, 5)])
def test_shards_are_clamped_to_at_least_one(shards, expected):
    index = _body(worked_example(), shards=shards, replicas=0)["settings"]["index"]
    assert index == {"refresh_interval": "-1", "number_of_shards": expected, "number_of_replicas": 0}


def test_a_text_analyzer_option_keeps_the_subfields():
    props = _props(column("bio", "text", required=False, options={"analyzer": "english"}))
    assert props["bio"] == {"type": "text", "analyzer": "english", "fields": TEXT_SUBFIELDS}


def test_a_fields_option_replaces_every_subfield():
    raw = {"raw": {"type": "keyword"}}
    props = _props(
        column("bio", "text", required=False, options={"fields": raw}),
        column("tier", "enum", required=True, variants=("a", "b"), options={"fields": raw}),
    )
    assert props["bio"] == {"type": "text", "analyzer": "flusso_text", "fields": raw}
    assert props["tier"] == {"type": "keyword", "fields": raw}


def test_a_type_option_replaces_the_type_but_keeps_the_subfields_of_the_original():
    props = _props(column("code", "keyword", required=True, options={"type": "wildcard"}))
    assert props["code"] == {"type": "wildcard", "fields": KEYWORD_SUBFIELDS}


def test_unknown_options_pass_through_as_plain_json():
    props = _props(column(
        "price", "double", required=False,
        options={"scaling_factor": 100, "boost": Decimal("1.5"), "meta": {"unit": ["eur"]}},
    ))
    assert props["price"] == {
        "type": "double", "scaling_factor": 100, "boost": 1.5, "meta": {"unit": ["eur"]},
    }


@pytest.mark.parametrize("declared", ["uuid", "enum"])
def test_keyword_typed_scalars_get_keyword_subfields(declared):
    assert _props(column("v", declared, required=True))["v"] == {
        "type": "keyword", "fields": KEYWORD_SUBFIELDS,
    }


def test_string_constants_get_keyword_subfields():
    assert _props(Field("kind", Constant(value="user")))["kind"] == {
        "type": "keyword", "fields": KEYWORD_SUBFIELDS,
    }


def test_an_enum_with_twelve_variants_zero_pads_its_ranks():
    variants = tuple(f"v{i}" for i in range(12))
    body = _body(IndexSchema(table="t", fields=(column("level", "enum", required=True, variants=variants),)))
    rules = body["settings"]["analysis"]["char_filter"]["flusso_enumsort__level"]["mappings"]
    assert rules[0] == "v0 => 00"
    assert rules[11] == "v11 => 11"
    assert len(rules) == 12


@pytest.mark.parametrize(
    ("count", "first", "last"), [(1, "v0 => 0", "v0 => 0"), (10, "v0 => 0", "v9 => 9"), (101, "v0 => 000", "v100 => 100")]
)
def test_rank_width_is_the_digit_count_of_the_last_rank(count, first, last):
    rules = enum_sort_rules([f"v{i}" for i in range(count)])
    assert (rules[0], rules[-1]) == (first, last)


def test_a_nested_enum_is_named_by_its_dotted_path():
    orders = Join(
        table="orders", kind=HasMany(foreign_key="user_id"), primary_key="id", nullable=False,
        fields=(column("status", "enum", required=True, variants=("new", "paid")),),
    )
    body = _body(IndexSchema(table="users", fields=(Field("orders", orders),)))
    analysis = body["settings"]["analysis"]
    assert analysis["normalizer"]["flusso_enumsort__orders_status"] == {
        "type": "custom", "char_filter": ["flusso_enumsort__orders_status"], "filter": [],
    }
    assert analysis["char_filter"]["flusso_enumsort__orders_status"]["mappings"] == [
        "new => 0", "paid => 1",
    ]
    status = body["mappings"]["properties"]["orders"]["properties"]["status"]
    assert status["fields"]["sort"]["normalizer"] == "flusso_enumsort__orders_status"


def test_a_bare_enum_gets_no_sort_and_no_char_filter():
    body = _body(IndexSchema(table="t", fields=(column("tier", "enum", required=True),)))
    assert "char_filter" not in body["settings"]["analysis"]
    assert set(body["settings"]["analysis"]["normalizer"]) == {"flusso_lowercase"}
    assert "sort" not in body["mappings"]["properties"]["tier"]["fields"]


def test_a_childless_object_has_no_properties():
    props = _props(Field("empty", GroupSource(fields=())))
    assert props["empty"] == {"type": "object"}


def test_only_the_root_is_strict():
    body = _body(worked_example())
    assert body["mappings"]["dynamic"] == "strict"
    assert "dynamic" not in body["mappings"]["properties"]["audit"]


# -- through the schema loader (runs once `schema_file` exists) ---------------


def _load(text: str) -> IndexSchema:
    schema_file = pytest.importorskip("flusso.domain.config.schema_file")
    return schema_file.parse_index_schema(text, path="users.schema.yml", index="users")


def test_the_loaded_worked_example_builds_the_documented_body_and_hash():
    schema = _load(WORKED_EXAMPLE_YAML)
    assert schema == worked_example()
    mapping = index_mapping("users", schema)
    assert mapping.hash == WORKED_EXAMPLE_HASH
    assert json.loads(json.dumps(build_index_body(mapping))) == WORKED_EXAMPLE_BODY


def test_a_loaded_minimal_schema_maps_one_integer():
    schema = _load("version: 1\ntable: users\nfields:\n  - integer: id\n    required: false\n")
    mapping = index_mapping("users", schema)
    assert build_index_body(mapping)["mappings"]["properties"] == {"id": {"type": "integer"}}
    assert mapping.fields[0].nullable is True
    assert mapping.hash == "1fbf5656"
