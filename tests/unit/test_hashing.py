"""The content hash that names an index."""

from __future__ import annotations

import copy
import dataclasses
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mapping_examples import (
    WORKED_EXAMPLE_HASH,
    WORKED_EXAMPLE_YAML,
    column,
    users_with_email,
    worked_example,
    worked_example_fields,
)

from flusso.domain import hashing
from flusso.domain.config.model import (
    AGGREGATE_OPS,
    SCALAR_TYPES,
    Comparison,
    Deployment,
    IndexConfig,
    IndexSchema,
    NullCheck,
    OpenSearchSinkConfig,
    RawFilter,
    Secret,
    SoftDelete,
    SourceConfig,
)
from flusso.domain.hashing import content_hash, decimal_words, fnv1a_32
from flusso.domain.mapping import index_mapping


def test_fnv1a_matches_the_published_test_vectors():
    assert fnv1a_32(b"") == 0x811C9DC5
    assert fnv1a_32(b"a") == 0xE40C292C
    assert fnv1a_32(b"foobar") == 0xBF9CF968


def test_a_minimal_schema_hashes_to_the_golden_value():
    schema = IndexSchema(table="users", fields=(column("id", "integer", required=False),))
    assert content_hash(schema) == "1fbf5656"


def test_toggling_required_on_email_toggles_between_the_golden_values():
    assert content_hash(users_with_email(email_required=True)) == "47ad4360"
    assert content_hash(users_with_email(email_required=False)) == "9f82a713"


def test_the_worked_example_hashes_to_the_golden_value():
    assert content_hash(worked_example()) == WORKED_EXAMPLE_HASH


def test_the_hash_is_eight_lowercase_hex_digits():
    value = content_hash(worked_example())
    assert len(value) == 8
    assert value == value.lower()
    int(value, 16)


def test_an_explicit_public_schema_equals_the_default():
    explicit = dataclasses.replace(worked_example(), db_schema="public")
    assert content_hash(explicit) == WORKED_EXAMPLE_HASH


def test_another_postgres_schema_changes_the_hash():
    assert content_hash(dataclasses.replace(worked_example(), db_schema="crm")) != WORKED_EXAMPLE_HASH


def _deployment(**index_changes) -> Deployment:
    index = IndexConfig(name="users", enabled=True, schema=worked_example())
    return Deployment(source=SourceConfig(), indexes=(dataclasses.replace(index, **index_changes),))


@pytest.mark.parametrize(
    "deployment",
    [
        _deployment(enabled=False),
        _deployment(on_error="skip"),
        _deployment(name="customers"),
        dataclasses.replace(_deployment(), prefix="dev_", on_error="skip"),
        dataclasses.replace(_deployment(), sinks={"primary": OpenSearchSinkConfig(
            url=Secret(value="https://localhost:9200"), number_of_shards=3,
            number_of_replicas=0, refresh_interval="1s", text_analysis="icu",
            auto_subfields=False,
        )}),
    ],
)
def test_index_and_deployment_settings_do_not_enter_the_hash(deployment):
    (index,) = deployment.indexes
    assert index_mapping(index.name, index.schema).hash == WORKED_EXAMPLE_HASH


def test_swapping_two_fields_changes_the_hash():
    fields = worked_example_fields()
    swapped = (fields[1], fields[0], *fields[2:])
    assert content_hash(dataclasses.replace(worked_example(), fields=swapped)) != WORKED_EXAMPLE_HASH


def test_an_explicit_ascending_direction_differs_from_none():
    absent = content_hash(worked_example(direction=None))
    ascending = content_hash(worked_example(direction="asc"))
    assert len({absent, ascending, WORKED_EXAMPLE_HASH}) == 3


def test_option_order_does_not_matter_but_option_values_do():
    def with_options(options) -> str:
        return content_hash(IndexSchema(table="t", fields=(
            column("bio", "text", required=False, options=options),
        )))

    assert with_options({"analyzer": "english", "boost": 2}) == with_options(
        {"boost": 2, "analyzer": "english"}
    )
    assert with_options({"boost": 2}) != with_options({"boost": 3})


def test_transform_order_matters():
    def with_transforms(transforms) -> str:
        return content_hash(IndexSchema(table="t", fields=(
            column("email", "keyword", required=True, transforms=transforms),
        )))

    assert with_transforms(("trim", "lowercase")) != with_transforms(("lowercase", "trim"))


@pytest.mark.parametrize(
    "changed",
    [
        {"filters": (Comparison(column="kind", op="eq", values=("staff",)),)},
        {"filters": (Comparison(column="kind", op="in", values=("customer",)),)},
        {"filters": (NullCheck(column="kind", op="is_not_null"),)},
        {"filters": (RawFilter(raw="kind = 'customer'"),)},
        {"filters": None},
        {"soft_delete": SoftDelete(kind="field", name="deleted_at")},
        {"soft_delete": None},
        {"primary_key": None},
        {"table": "customers"},
    ],
)
def test_structural_changes_change_the_hash(changed):
    assert content_hash(dataclasses.replace(worked_example(), **changed)) != WORKED_EXAMPLE_HASH


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (Decimal("1.5"), (15, 0, 0, 1 << 16)),
        (Decimal("100.0"), (100, 0, 0, 0)),
        (Decimal("1E+2"), (100, 0, 0, 0)),
        (Decimal("-2.50"), (25, 0, 0, 1 << 16 | 0x80000000)),
        (Decimal("-0.000"), (0, 0, 0, 0)),
        (Decimal(2**70 + 5), (5, 0, 1 << 6, 0)),
        (Decimal("0.001"), (1, 0, 0, 3 << 16)),
    ],
)
def test_decimals_are_hashed_in_normalised_96_bit_form(value, words):
    assert decimal_words(value) == words


def test_equal_decimals_written_differently_hash_alike():
    def with_default(value) -> str:
        return content_hash(IndexSchema(table="t", fields=(
            column("ratio", "decimal", required=False, default=value),
        )))

    assert with_default(Decimal("1.50")) == with_default(Decimal("1.5"))
    assert with_default(Decimal("1.5")) != with_default(Decimal("-1.5"))
    assert with_default(Decimal("1")) != with_default(1)


# -- properties ----------------------------------------------------------------

_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,20}", fullmatch=True)


@st.composite
def _schemas(draw) -> IndexSchema:
    names = draw(st.lists(_names, min_size=1, max_size=6, unique=True))
    fields = tuple(
        column(name, draw(st.sampled_from(SCALAR_TYPES)), required=draw(st.booleans()),
               options=draw(st.dictionaries(_names, st.integers() | st.text(), max_size=2)))
        for name in names
    )
    return IndexSchema(table=draw(st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True)),
                       fields=fields)


@given(_schemas())
def test_the_hash_is_stable_for_equal_models(schema):
    assert content_hash(schema) == content_hash(schema)
    assert content_hash(copy.deepcopy(schema)) == content_hash(schema)


@given(_schemas(), st.data())
def test_renaming_a_field_changes_the_hash(schema, data):
    position = data.draw(st.integers(min_value=0, max_value=len(schema.fields) - 1))
    taken = {f.name for f in schema.fields}
    new_name = data.draw(_names.filter(lambda n: n not in taken))
    fields = list(schema.fields)
    fields[position] = dataclasses.replace(fields[position], name=new_name)
    assert content_hash(dataclasses.replace(schema, fields=tuple(fields))) != content_hash(schema)


# -- through the schema loader (runs once `schema_file` exists) ---------------


def _load_hash(text: str) -> str:
    schema_file = pytest.importorskip("flusso.domain.config.schema_file")
    return content_hash(schema_file.parse_index_schema(text, path="users.schema.yml", index="users"))


def test_the_loaded_worked_example_hashes_to_the_golden_value():
    assert _load_hash(WORKED_EXAMPLE_YAML) == WORKED_EXAMPLE_HASH


def test_cosmetic_yaml_changes_keep_the_hash():
    cosmetic = (
        WORKED_EXAMPLE_YAML
        .replace("table: users\n", "# the users index\ntable: \" Users \"\nschema: public\n", 1)
        .replace("  - keyword: email\n    required: true\n", "  - required: true   # must exist\n    keyword: email\n")
    )
    assert _load_hash(cosmetic) == WORKED_EXAMPLE_HASH


def test_required_false_on_a_to_one_join_equals_omitting_it():
    explicit = WORKED_EXAMPLE_YAML.replace(
        "    column: org_id\n", "    column: org_id\n    required: false\n"
    )
    assert _load_hash(explicit) == WORKED_EXAMPLE_HASH


def test_loaded_email_required_toggles_the_golden_values():
    text = "version: 1\ntable: users\nprimary_key: id\nfields:\n  - integer: id\n    required: false\n  - keyword: email\n    required: {}\n"
    assert _load_hash(text.format("true")) == "47ad4360"
    assert _load_hash(text.format("false")) == "9f82a713"


def test_a_loaded_ascending_direction_changes_the_hash():
    assert _load_hash(WORKED_EXAMPLE_YAML.replace("direction: desc", "direction: asc")) != WORKED_EXAMPLE_HASH


@pytest.mark.parametrize(
    "table",
    [
        hashing.SOURCE_TAGS, hashing.JOIN_KIND_TAGS, hashing.AGGREGATE_KEY_TAGS,
        hashing.AGGREGATE_OP_TAGS, hashing.FILTER_TAGS, hashing.OPERAND_TAGS,
        hashing.SOFT_DELETE_TAGS,
    ],
)
def test_no_two_entries_of_a_hash_tag_table_share_a_tag(table):
    tags = list(table.values())
    assert len(set(tags)) == len(tags)


def test_every_aggregate_op_has_a_hash_tag():
    assert set(hashing.AGGREGATE_OP_TAGS) == set(AGGREGATE_OPS)
