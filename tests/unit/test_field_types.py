"""The field type registry: one row per type, and every reader agrees with it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from flusso.domain.config.field_types import (
    CUSTOM_TYPE,
    FIELD_TYPES,
    GEO_POINT_TYPE,
    MAP_TYPE,
    SCALAR_FIELD_TYPES,
    FieldTypeSpec,
)
from flusso.domain.config.model import SCALAR_TYPES, TYPE_NAMES
from flusso.domain.config.schema_file import parse_index_schema
from flusso.domain.documents.decode import scalar_coercer
from flusso.domain.types import accepts, opensearch_type, resolve_fields

DOCS = Path(__file__).resolve().parents[2] / "docs" / "schema-authoring.md"


def test_no_two_types_share_a_hash_tag():
    tags = Counter(row.hash_tag for row in FIELD_TYPES.values())
    assert [tag for tag, count in tags.items() if count > 1] == []


def test_the_hash_tags_of_existing_types_never_change():
    # A changed tag renames every index that uses the type (see test_pinned_hashes).
    assert {name: row.hash_tag for name, row in FIELD_TYPES.items()} == {
        "text": 0, "identifier": 1, "keyword": 2, "enum": 3, "uuid": 4, "boolean": 5,
        "short": 6, "integer": 7, "long": 8, "float": 9, "double": 10, "decimal": 11,
        "date": 12, "timestamp": 13, "binary": 14, "json": 15, "map": 16, "geo_point": 17,
        "custom": 18,
    }


def test_rows_are_keyed_by_their_own_name():
    assert all(name == row.name for name, row in FIELD_TYPES.items())
    assert SCALAR_TYPES == TYPE_NAMES == tuple(SCALAR_FIELD_TYPES)
    assert FIELD_TYPES["map"] is MAP_TYPE and FIELD_TYPES["geo_point"] is GEO_POINT_TYPE
    assert FIELD_TYPES["custom"] is CUSTOM_TYPE


@pytest.mark.parametrize("row", FIELD_TYPES.values(), ids=lambda row: row.name)
def test_each_column_template_reads_the_column_once(row: FieldTypeSpec):
    assert row.column_sql.count("{column}") == 1
    assert row.column_sql.format(column='"root"."c"').count('"root"."c"') == 1


@pytest.mark.parametrize("row", SCALAR_FIELD_TYPES.values(), ids=lambda row: row.name)
def test_each_scalar_maps_accepts_and_decodes_as_its_row_says(row: FieldTypeSpec):
    assert opensearch_type(row.name) == row.opensearch
    assert all(accepts(row.name, pg_type) for pg_type in row.postgres)
    assert (scalar_coercer(row.name) is None) == (row.wire is None)


@pytest.mark.parametrize("row", SCALAR_FIELD_TYPES.values(), ids=lambda row: row.name)
def test_the_loader_adds_each_rows_mapping_options(row: FieldTypeSpec):
    schema = parse_index_schema(
        f"version: 1\ntable: t\nfields:\n  - {row.name}: f\n    required: true\n",
        path="t.schema.yml", index="t",
    )
    assert dict(schema.fields[0].options) == dict(row.options)
    assert dict(resolve_fields(schema)[0].extra) == dict(row.options)


def test_the_docs_table_has_one_line_per_type_from_the_registry():
    text = DOCS.read_text(encoding="utf-8")
    for row in SCALAR_FIELD_TYPES.values():
        line = f"| `{row.name}` | {row.postgres_doc} | {row.opensearch_doc} |"
        assert line in text, f"docs/schema-authoring.md lacks the line:\n{line}"
    for key, row in (("custom", CUSTOM_TYPE), ("map", MAP_TYPE), ("geo", GEO_POINT_TYPE)):
        line = f"| `{key}` | {row.postgres_doc} | {row.opensearch_doc} |"
        assert line in text, f"docs/schema-authoring.md lacks the line:\n{line}"
    listed = " ".join(SCALAR_FIELD_TYPES)
    assert f"`{listed}`" in " ".join(text.split()), "the Scalars paragraph lists every type"
