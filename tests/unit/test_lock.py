"""The compiled lock (acceptance cases 12 and 37)."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal

import pytest
from mapping_examples import WORKED_EXAMPLE_HASH, WORKED_EXAMPLE_YAML, worked_example

from flusso.domain.config.lock import decode_lock, encode_lock
from flusso.domain.config.model import (
    Aggregate,
    ColumnSource,
    Comparison,
    ConnectionParts,
    Constant,
    Deployment,
    Field,
    HasOne,
    IndexConfig,
    IndexSchema,
    Join,
    ManyToMany,
    NullCheck,
    OpenSearchSinkConfig,
    OrderBy,
    RawFilter,
    Secret,
    ServerConfig,
    SoftDelete,
    SourceConfig,
    StdoutSinkConfig,
    Through,
)
from flusso.domain.errors import ConfigError
from flusso.domain.hashing import content_hash
from flusso.domain.mapping import build_index_body, index_mapping

VERSION = "0.1.0"


def odd_schema() -> IndexSchema:
    """Shapes the worked example lacks: field soft delete, raw/null filters, values, constants."""
    return IndexSchema(
        table="posts",
        db_schema="blog",
        primary_key="id",
        version=1,
        soft_delete=SoftDelete(
            kind="field", name="isDeleted", when=(NullCheck(column="purged_at", op="is_null"),)
        ),
        filters=(
            RawFilter(raw="published"),
            Comparison(column="lang", op="in", values=("en", "de")),
            Comparison(column="score", op="between", values=("1", "10.0")),
        ),
        fields=(
            Field(
                name="title",
                source=ColumnSource(
                    column="title", type="text", nullable=False, transforms=("trim", "lowercase"),
                    default="untitled",
                ),
                options={
                    "analyzer": "english",
                    "meta": {"weights": [1, Decimal("2.50"), True, None], "note": "x"},
                },
            ),
            Field(
                name="isDeleted",
                source=ColumnSource(column="deleted", type="boolean", nullable=True),
            ),
            Field(name="price", source=ColumnSource(column="p", type="decimal", nullable=False,
                                                   default=Decimal("-0.5"))),
            Field(name="kind", source=Constant(value=["a", 1, {"k": None}])),
            Field(name="empty", source=Constant(value=None)),
            Field(
                name="author",
                source=Join(
                    table="authors", kind=HasOne(foreign_key="post_id"), primary_key="id",
                    nullable=True, fields=(), filters=(), order_by=(OrderBy(column="at"),),
                ),
            ),
            Field(
                name="tags",
                source=Join(
                    table="tags",
                    kind=ManyToMany(through=Through(table="pt", left_key="p", right_key="t")),
                    primary_key="id", nullable=False, limit=0,
                    fields=(Field("name", ColumnSource("name", "keyword", False)),),
                ),
            ),
            Field(
                name="replyCount",
                source=Aggregate(
                    table="replies", op="count", key=Through("r", "a", "b"), column="id",
                    filters=(RawFilter("true"),),
                ),
            ),
        ),
    )


def rich_deployment() -> Deployment:
    return Deployment(
        source=SourceConfig(
            connection=ConnectionParts(
                database="app", host="db", port=6543, user="svc", password=Secret(env="PGPASS")
            ),
            manage_publication=False,
        ),
        sinks={
            "audit": StdoutSinkConfig(pretty=True),
            "primary": OpenSearchSinkConfig(
                url=Secret(value="https://localhost:9200"),
                username=Secret(value="admin"),
                password=Secret(env="OS_PASSWORD"),
                tls_verify=False, batch_size=0, max_bytes=1, timeout_secs=2, max_retries=0,
                pipeline="p", number_of_shards=3, number_of_replicas=0,
                refresh_interval="-1", text_analysis="icu", auto_subfields=False,
            ),
        },
        indexes=(
            IndexConfig(name="users", enabled=True, schema=worked_example(), on_error="skip"),
            IndexConfig(name="posts", enabled=False, schema=odd_schema()),
        ),
        on_error="skip",
        prefix="dev_",
        server=ServerConfig(public_address="0.0.0.0:9464", private_address="[::1]:9465"),
    )


def roundtrip(deployment: Deployment) -> Deployment:
    return decode_lock(encode_lock(deployment, flusso_version=VERSION), path="flusso.lock")


# -- case 37 -----------------------------------------------------------------


def test_a_lock_round_trip_gives_an_equal_deployment():
    deployment = rich_deployment()
    assert roundtrip(deployment) == deployment


def test_the_round_trip_keeps_mappings_and_hashes():
    decoded = roundtrip(rich_deployment())
    for before, after in zip(rich_deployment().indexes, decoded.indexes, strict=True):
        assert content_hash(after.schema) == content_hash(before.schema)
        assert index_mapping(after.name, after.schema) == index_mapping(before.name, before.schema)
        assert build_index_body(index_mapping(after.name, after.schema)) == build_index_body(
            index_mapping(before.name, before.schema)
        )
    assert content_hash(decoded.indexes[0].schema) == WORKED_EXAMPLE_HASH


def test_a_compiled_config_round_trips_without_its_schema_paths():
    from flusso.domain.config.config_file import parse_config

    deployment = parse_config(
        '[source]\ntype = "postgres"\n[[index]]\nname = "users"\nschema = "users.schema.yml"\n'
        "enabled = true\n",
        path="conf/flusso.toml",
        read_schema={"conf/users.schema.yml": WORKED_EXAMPLE_YAML}.__getitem__,
    )
    decoded = roundtrip(deployment)
    assert decoded.indexes[0].schema_path is None
    without_paths = replace(
        deployment, indexes=tuple(replace(i, schema_path=None) for i in deployment.indexes)
    )
    assert decoded == without_paths
    assert content_hash(decoded.indexes[0].schema) == content_hash(deployment.indexes[0].schema)


def test_the_lock_is_canonical_json():
    text = encode_lock(rich_deployment(), flusso_version=VERSION)
    parsed = json.loads(text)
    assert text == json.dumps(parsed, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert parsed["format_version"] == 1
    assert parsed["flusso_version"] == VERSION
    assert encode_lock(roundtrip(rich_deployment()), flusso_version=VERSION) == text


def test_the_lock_layout_follows_upstream_in_spirit():
    config = json.loads(encode_lock(rich_deployment(), flusso_version=VERSION))["config"]
    assert config["source"] == {
        "source_type": "postgres",
        "manage_publication": False,
        "connection": {
            "parts": {
                "host": "db", "port": 6543, "user": "svc", "password": {"env": "PGPASS"},
                "database": "app",
            }
        },
    }
    assert config["sinks"]["audit"] == {"stdout": {"pretty": True}}
    primary = config["sinks"]["primary"]["opensearch"]
    assert primary["url"] == {"value": "https://localhost:9200"}
    assert primary["password"] == {"env": "OS_PASSWORD"}
    users = config["indexes"][0]
    assert (users["name"], users["enabled"], users["on_error"]) == ("users", True, "skip")
    assert users["schema"]["soft_delete"] == {"column": {"column": "deleted_at"}}
    sku = next(f for f in users["schema"]["fields"] if f["field"] == "sku")
    assert sku == {
        "field": "sku",
        "options": {"analyzer": {"String": "flusso_code"}},
        "source": {"column": {"column": "sku", "ty": "identifier", "nullable": True}},
    }
    assert config["server"] == {"public_address": "0.0.0.0:9464", "private_address": "[::1]:9465"}


def test_an_empty_server_and_no_connection_are_omitted_or_empty():
    config = json.loads(
        encode_lock(Deployment(source=SourceConfig()), flusso_version=VERSION)
    )["config"]
    assert config["server"] == {}
    assert "connection" not in config["source"]
    assert config["indexes"] == [] and config["sinks"] == {}


# -- case 12 -----------------------------------------------------------------


def test_an_env_reference_is_written_as_its_name_only(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:leaked@h/db")
    deployment = Deployment(source=SourceConfig(connection=Secret(env="DATABASE_URL")))
    text = encode_lock(deployment, flusso_version=VERSION)
    assert json.loads(text)["config"]["source"]["connection"] == {"url": {"env": "DATABASE_URL"}}
    assert "leaked" not in text


def test_another_format_version_is_refused():
    text = encode_lock(rich_deployment(), flusso_version=VERSION)
    newer = json.dumps({**json.loads(text), "format_version": 2})
    with pytest.raises(ConfigError) as caught:
        decode_lock(newer, path="flusso.lock")
    assert caught.value.message == (
        "compiled config format version 2 is not supported by this build (expected 1); "
        "recompile with a matching flusso"
    )


@pytest.mark.parametrize(
    "text",
    [
        "\x00\x01 not json",
        "[]",
        '{"format_version": 1}',
        '{"format_version": 1, "flusso_version": "x", "config": {"source": {}, "bogus": 1}}',
    ],
)
def test_an_undecodable_lock_names_its_path(text):
    with pytest.raises(ConfigError) as caught:
        decode_lock(text, path="deploy/flusso.lock")
    assert "deploy/flusso.lock" in caught.value.message


def test_a_lock_with_a_broken_schema_tree_names_its_path_and_place():
    lock = json.loads(encode_lock(rich_deployment(), flusso_version=VERSION))
    lock["config"]["indexes"][0]["schema"]["fields"][0]["source"] = {"wormhole": {}}
    with pytest.raises(ConfigError) as caught:
        decode_lock(json.dumps(lock), path="flusso.lock")
    assert "flusso.lock" in caught.value.message
    assert "indexes.users.schema.fields[0].source" in caught.value.message


def test_a_secret_with_neither_env_nor_value_is_refused():
    lock = json.loads(encode_lock(rich_deployment(), flusso_version=VERSION))
    lock["config"]["sinks"]["primary"]["opensearch"]["url"] = {}
    with pytest.raises(ConfigError, match="sinks.primary.url"):
        decode_lock(json.dumps(lock), path="flusso.lock")
