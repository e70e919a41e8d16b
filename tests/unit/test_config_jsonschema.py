"""The `flusso schema config` JSON Schema stays in step with the loader (acceptance case 40)."""

from __future__ import annotations

import json
import tomllib
import typing
from dataclasses import fields as dataclass_fields

import jsonschema
import pytest

from flusso.domain.config import config_shape
from flusso.domain.config.config_schema import config_json_schema
from flusso.domain.config.model import ON_ERROR_POLICIES, TEXT_ANALYSIS, OpenSearchSinkConfig


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads(config_json_schema())


def properties(node: dict) -> set[str]:
    return set(node["properties"])


def connection_parts(schema: dict) -> dict:
    shapes = schema["properties"]["source"]["properties"]["connection_url"]["oneOf"]
    (parts,) = [s for s in shapes if "database" in s.get("properties", {})]
    return parts


def literal_values(model: type, key: str) -> set[str]:
    annotation = model.model_fields[key].annotation
    if typing.get_origin(annotation) is typing.Literal:
        return set(typing.get_args(annotation))
    values: set[str] = set()  # Optional[Literal[...]]
    for arg in typing.get_args(annotation):
        if typing.get_origin(arg) is typing.Literal:
            values.update(typing.get_args(arg))
    return values


def test_the_schema_is_a_valid_draft_07_schema(schema):
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)


def test_top_level_keys_match_the_loader(schema):
    assert properties(schema) == set(config_shape.TOP_LEVEL_KEYS)
    assert schema["required"] == ["source"]


def test_source_keys_type_and_connection_parts_match_the_loader(schema):
    source = schema["properties"]["source"]
    assert properties(source) == set(config_shape.SOURCE_KEYS)
    assert {source["properties"]["type"]["const"]} == set(config_shape.SOURCE_TYPES)
    assert properties(connection_parts(schema)) == set(config_shape.CONNECTION_PART_KEYS)


def test_sink_keys_and_type_constants_match_the_loader(schema):
    definitions = schema["definitions"]
    assert properties(definitions["opensearch_sink"]) == set(config_shape.OPENSEARCH_SINK_KEYS)
    assert properties(definitions["stdout_sink"]) == set(config_shape.STDOUT_SINK_KEYS)
    variants = schema["properties"]["sinks"]["additionalProperties"]["oneOf"]
    constants = {
        definitions[v["$ref"].rsplit("/", 1)[1]]["properties"]["type"]["const"] for v in variants
    }
    assert constants == set(config_shape.SINK_TYPES)


def test_index_and_server_keys_match_the_loader(schema):
    index = schema["properties"]["index"]["items"]
    assert properties(index) == set(config_shape.INDEX_KEYS)
    assert set(index["required"]) == {"name", "schema", "enabled"}
    assert properties(schema["properties"]["server"]) == set(config_shape.SERVER_KEYS)


def test_on_error_and_text_analysis_values_match_the_loader_and_the_model(schema):
    on_error = set(ON_ERROR_POLICIES)
    assert set(schema["properties"]["on_error"]["enum"]) == on_error
    assert set(schema["properties"]["index"]["items"]["properties"]["on_error"]["enum"]) == on_error
    assert literal_values(config_shape.ConfigFile, "on_error") == on_error
    assert literal_values(config_shape.IndexFile, "on_error") == on_error
    text_analysis = schema["definitions"]["opensearch_sink"]["properties"]["text_analysis"]["enum"]
    assert set(text_analysis) == set(TEXT_ANALYSIS)
    assert literal_values(config_shape.OpenSearchFile, "text_analysis") == set(TEXT_ANALYSIS)


def test_documented_sink_defaults_are_the_model_defaults(schema):
    documented = schema["definitions"]["opensearch_sink"]["properties"]
    for item in dataclass_fields(OpenSearchSinkConfig):
        if "default" in documented.get(item.name, {}):
            assert documented[item.name]["default"] == item.default, item.name


GOOD = [
    '[source]\ntype = "postgres"\n',
    'prefix = "dev_"\non_error = "skip"\n[source]\ntype = "postgres"\n'
    'connection_url = { host = "db", port = 5433, password = { env = "PW" }, database = "app" }\n'
    '[server]\npublic_address = "0.0.0.0:9464"\nprivate_address = "[::1]:9465"\n'
    '[sinks.Primary]\ntype = "opensearch"\nurl = { env = "OS" }\nbatch_size = 10\n'
    'text_analysis = "icu"\n[sinks.audit]\ntype = "stdout"\npretty = true\n'
    '[[index]]\nname = "users"\nschema = "users.schema.yml"\nenabled = true\non_error = "stop"\n',
]
BAD = [
    'on_error = "stop"\n',
    '[source]\ntype = "mysql"\n',
    '[source]\ntype = "postgres"\nextra_field = 1\n',
    '[source]\ntype = "postgres"\n[sinks.es]\ntype = "opensearch"\n',
    '[source]\ntype = "postgres"\n[sinks.es]\ntype = "opensearch"\nurl = 9200\n',
    '[source]\ntype = "postgres"\n[sinks.es]\ntype = "opensearch"\nurl = "x"\ntext_analysis = "fancy"\n',
    '[source]\ntype = "postgres"\n[[index]]\nname = "users"\nschema = "u.yml"\n',
    '[source]\ntype = "postgres"\n[server]\npublic_address = "localhost:9464"\n',
    '[source]\ntype = "postgres"\nconnection_url = { env = "DB", oops = "x" }\n',
]


@pytest.mark.parametrize("text", GOOD)
def test_configs_the_loader_accepts_validate(schema, text):
    jsonschema.validate(tomllib.loads(text), schema, cls=jsonschema.Draft7Validator)


@pytest.mark.parametrize("text", BAD)
def test_configs_the_loader_rejects_for_shape_do_not_validate(schema, text):
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(tomllib.loads(text), schema, cls=jsonschema.Draft7Validator)
