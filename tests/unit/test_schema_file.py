"""The `*.schema.yml` loader: YAML 1.2 dialect, validation order, messages and conversion."""

from __future__ import annotations

import textwrap
from decimal import Decimal

import pytest

from flusso.domain.config.model import (
    FIELD_SIBLINGS,
    Aggregate,
    BelongsTo,
    ColumnSource,
    Comparison,
    Constant,
    CustomType,
    ForeignKey,
    GeoSource,
    GroupSource,
    HasMany,
    IndexSchema,
    Join,
    ManyToMany,
    MapType,
    NullCheck,
    OrderBy,
    RawFilter,
    SoftDelete,
    Through,
)
from flusso.domain.config.schema_file import parse_index_schema
from flusso.domain.config.suggest import did_you_mean, edit_distance
from flusso.domain.errors import ConfigError
from flusso.domain.types import resolve_fields

PREFIX = "users.schema.yml (index users): "


def load(text: str) -> IndexSchema:
    return parse_index_schema(textwrap.dedent(text), path="users.schema.yml", index="users")


def fail(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(text)
    error = info.value
    assert all(p.message.startswith(PREFIX) for p in error.problems)
    return error


def everything(error: ConfigError) -> str:
    return "\n".join(f"{p.message}\n{p.hint or ''}" for p in error.problems)


def schema(fields: str, *, head: str = "version: 1\ntable: users\nprimary_key: id\n") -> str:
    return head + "fields:\n" + textwrap.indent(textwrap.dedent(fields), "  ")


def only_field(fields: str, **kwargs: str):
    return load(schema(fields, **kwargs)).fields[0]


def constant(value_yaml: str):
    field = only_field(f"- constant: c\n  value: {value_yaml}\n")
    assert isinstance(field.source, Constant)
    return field.source.value


# ---------------------------------------------------------------------------
# The YAML dialect: YAML 1.2 core schema, as upstream reads it
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "y", "n", "Yes", "OFF"])
def test_yaml_1_1_boolean_words_are_strings(word):
    assert constant(word) == word


@pytest.mark.parametrize(("text", "expected"), [
    ("true", True), ("True", True), ("TRUE", True), ("false", False), ("FALSE", False),
])
def test_only_true_and_false_spellings_are_booleans(text, expected):
    assert constant(text) is expected


@pytest.mark.parametrize("text", ["~", "null", "Null", "NULL", ""])
def test_null_spellings_are_null(text):
    assert constant(text) is None


def test_digits_with_a_leading_zero_are_a_string():
    assert constant("010") == "010"
    assert constant("-007") == "-007"


@pytest.mark.parametrize(("text", "expected"), [
    ("0x1F", 31), ("0o17", 15), ("0b101", 5), ("-0x10", -16), ("+7", 7), ("0", 0),
])
def test_prefixed_and_plain_integers_are_integers(text, expected):
    assert constant(text) == expected


def test_timestamps_are_not_resolved():
    assert constant("2024-01-01") == "2024-01-01"
    assert constant("2024-01-01T10:00:00Z") == "2024-01-01T10:00:00Z"


def test_tags_are_ignored():
    assert constant("!custom 5") == 5
    assert constant("!thing [1, 2]") == [1, 2]


def test_quoted_scalars_stay_strings():
    assert constant("'true'") == "true"
    assert constant('"12"') == "12"


def test_duplicate_keys_are_errors_with_their_position():
    error = fail("version: 1\ntable: users\nfields: []\ntable: again\n")
    assert "duplicate key `table`" in error.message
    assert "--> line 4, column 1" in error.message
    assert "4 | table: again" in error.message


def test_duplicate_keys_inside_a_field_are_errors():
    error = fail(schema("- keyword: email\n  required: true\n  required: false\n"))
    assert "duplicate key `required`" in error.message
    assert "line 7" in error.message


@pytest.mark.parametrize(("text", "expected"), [
    ("1.5", Decimal("1.5")),
    ("10.0", Decimal("10.0")),
    ("2.50", Decimal("2.5")),
    ("1e5", Decimal("100000.0")),
    ("0.00001", Decimal("0.00001")),
    ("9223372036854775807", 9223372036854775807),
    ("9223372036854775808", Decimal("9223372036854775808")),
    ("-9223372036854775808", -9223372036854775808),
    ("1e300", "1e300"),
    ("0.000001", "1e-6"),
    (".nan", ".nan"),
    (".inf", ".inf"),
    ("-.inf", "-.inf"),
    ("1_000", "1_000"),
])
def test_numbers_follow_the_value_model(text, expected):
    value = constant(text)
    assert value == expected
    assert type(value) is type(expected)


def test_mappings_drop_non_string_keys_and_lists_stay_lists():
    assert constant("{a: 1, 2: b, true: c, nested: [x, {y: 1.25}]}") == {
        "a": 1, "nested": ["x", {"y": Decimal("1.25")}],
    }


def test_anchors_and_aliases_resolve():
    field = only_field("- constant: c\n  value: &v [1, 2]\n- constant: d\n  value: *v\n")
    assert field.source == Constant([1, 2])


def test_a_recursive_alias_is_a_config_error():
    error = fail(schema("- constant: c\n  value: &v [1, *v]\n"))
    assert "alias" in error.message


def test_an_exponential_alias_bomb_is_a_config_error():
    bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, "
        f"*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]\n"
        for i in range(1, 9)
    )
    error = fail(bomb)
    assert "too many nodes" in error.message


def test_a_yaml_syntax_error_shows_line_column_and_caret():
    error = fail("version: 1\ntable: [users\nfields: []\n")
    assert error.message.startswith(PREFIX + "invalid YAML")
    assert " --> line 3, column 7" in error.message
    assert "3 | fields: []" in error.message
    assert error.message.splitlines()[-1] == "  |       ^"


def test_an_empty_file_is_a_config_error():
    assert "empty" in fail("").message
    assert "empty" in fail("# nothing here\n").message


def test_a_top_level_list_is_a_config_error():
    assert "expected a mapping" in fail("- a\n- b\n").message


def test_more_than_one_document_is_a_config_error():
    assert "single document" in fail("version: 1\n---\nversion: 1\n").message


def test_deep_nesting_is_a_config_error_not_a_crash():
    error = fail("fields: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "invalid YAML" in error.message


# ---------------------------------------------------------------------------
# Acceptance cases 14–31 (docs/acceptance.md)
# ---------------------------------------------------------------------------


def test_case14_minimal_schema_gives_one_nullable_integer_field():
    loaded = load("version: 1\ntable: users\nfields:\n  - integer: id\n    required: false\n")
    assert loaded == IndexSchema(
        table="users",
        fields=(loaded.fields[0],),
        db_schema="public",
        primary_key=None,
        soft_delete=None,
        filters=None,
        version=1,
    )
    field = loaded.fields[0]
    assert field.name == "id"
    assert field.options == {}
    assert field.source == ColumnSource(column="id", type="integer", nullable=True)


def test_case14_the_primary_key_column_is_forced_non_null():
    loaded = load(schema("- integer: id\n  required: false\n"))
    # The model keeps the declared `not required` (it is what the hash covers);
    # type resolution forces the primary key non-null.
    assert loaded.fields[0].source.nullable is True
    assert resolve_fields(loaded)[0].nullable is False


def test_case15_doc_id_is_rejected_with_a_hint():
    error = fail("version: 1\ntable: users\ndoc_id: slug\nfields: []\n")
    assert "`doc_id` is not supported yet" in error.message
    assert "primary_key" in error.hint
    assert "--> line 3" in error.message


def test_case15_version_2_is_unsupported():
    error = fail("version: 2\ntable: users\nfields: []\n")
    assert "unsupported schema version 2; supported versions: 1" in error.message


def test_case16_a_scalar_without_required_names_the_missing_key():
    error = fail(schema("- keyword: email\n"))
    assert "`keyword` field `email`: missing key `required`" in error.message
    assert "line 5" in error.message


def test_case17_a_misspelt_key_gets_a_did_you_mean_and_never_mentions_field():
    error = fail(schema("- keyword: email\n  requierd: true\n"))
    text = everything(error)
    assert "unknown key `requierd`" in error.message
    assert "did you mean `required`?" in error.message
    assert error.hint == "did you mean `required`?"
    assert "`field`" not in text
    assert "missing field" not in text


def test_case18_an_unknown_top_level_key_shows_the_line_and_a_caret():
    error = fail("version: 1\ntable: users\nbogus: 9\nfields: []\n")
    assert error.message == PREFIX + (
        "unknown key `bogus`, expected one of `version`, `table`, `schema`, `primary_key`, "
        "`doc_id`, `soft_delete`, `filters`, `fields`\n"
        " --> line 3, column 1\n"
        "  |\n"
        "3 | bogus: 9\n"
        "  | ^"
    )


def test_case19_an_item_without_a_type_key_lists_its_keys():
    error = fail(schema("- required: true\n"))
    assert "missing a type tag" in error.message
    assert "`required`" in error.message
    assert "fields[0]" in error.message


def test_case19_an_item_with_two_type_keys_is_rejected():
    error = fail(schema("- keyword: a\n  text: b\n  required: true\n"))
    assert "more than one type tag: `keyword` and `text`" in error.message


def test_case20_enum_variants_repeated_invalid_and_kept_in_order():
    repeated = fail(schema("- enum: level\n  variants: [low, low]\n  required: true\n"))
    assert "lists the variant `low` more than once" in repeated.message
    invalid = fail(schema('- enum: level\n  variants: ["a => b"]\n  required: true\n'))
    assert "'a => b'" in invalid.message
    assert "not allowed" in invalid.message
    blank = fail(schema('- enum: level\n  variants: ["  "]\n  required: true\n'))
    assert "not allowed" in blank.message
    field = only_field("- enum: level\n  variants: [low, medium, high]\n  required: true\n")
    assert field.source.variants == ("low", "medium", "high")
    assert field.source.type == "enum"


def test_case21_non_scalar_defaults_name_their_kind_and_a_scalar_default_is_kept():
    array = fail(schema("- json: data\n  required: false\n  default: [1, 2]\n"))
    assert "`array`" in array.message
    mapping = fail(schema("- json: data\n  required: false\n  default: {a: 1}\n"))
    assert "`object`" in mapping.message
    loaded = load(schema("- integer: visits\n  required: false\n  default: 0\n"))
    assert loaded.fields[0].source.default == 0
    assert resolve_fields(loaded)[0].nullable is False


def test_default_null_means_no_default():
    field = only_field("- integer: visits\n  required: false\n  default: null\n")
    assert field.source.default is None
    assert field.source.nullable is True


JOIN_TAIL = "  table: orders\n  primary_key: id\n  fields: []\n"


def test_case22_join_keys():
    missing = fail(schema("- has_many: orders\n" + JOIN_TAIL))
    assert "`has_many` join is missing its key: it takes `foreign_key`" in missing.message
    wrong = fail(schema("- belongs_to: owner\n  foreign_key: user_id\n" + JOIN_TAIL))
    assert "`belongs_to` join does not take `foreign_key`; it takes `column`" in wrong.message
    field = only_field("- belongs_to: Owner\n" + JOIN_TAIL)
    assert field.source.kind == BelongsTo(column="owner")


def test_case23_to_one_and_to_many_sibling_rules():
    order = fail(schema("- belongs_to: owner\n  order_by: [{column: id}]\n" + JOIN_TAIL))
    assert "`belongs_to` join does not take `order_by`" in order.message
    limit = fail(schema("- has_one: last\n  foreign_key: user_id\n  limit: 3\n" + JOIN_TAIL))
    assert "`has_one` join does not take `limit`" in limit.message
    required = fail(schema("- has_many: orders\n  foreign_key: user_id\n  required: true\n"
                           + JOIN_TAIL))
    assert "`has_many` join does not take `required`" in required.message
    assert "non-null array" in required.message


def test_case24_belongs_to_nullability_follows_required():
    loose = only_field("- belongs_to: owner\n" + JOIN_TAIL)
    assert loose.source.nullable is True
    strict = only_field("- belongs_to: owner\n  required: true\n" + JOIN_TAIL)
    assert strict.source.nullable is False
    many = only_field("- has_many: orders\n  foreign_key: user_id\n" + JOIN_TAIL)
    assert many.source.nullable is False
    assert many.source.to_many


AGG_TAIL = "  table: orders\n  foreign_key: user_id\n"


def test_case25_sum_needs_column_and_value_type_and_rejects_geo_point():
    no_type = fail(schema("- sum: total\n  column: amount\n" + AGG_TAIL))
    assert "aggregate op 'sum' requires a `value_type`" in no_type.message
    no_column = fail(schema("- sum: total\n  value_type: decimal\n" + AGG_TAIL))
    assert "aggregate op 'sum' requires a `column`" in no_column.message
    geo = fail(schema("- max: far\n  column: loc\n  value_type: geo_point\n" + AGG_TAIL))
    assert "geo_point" in geo.message
    assert "'max'" in geo.message


def test_case26_ids_rules():
    no_type = fail(schema("- ids: orderIds\n" + AGG_TAIL))
    assert "requires an `element_type`" in no_type.message
    column = fail(schema("- ids: orderIds\n  column: id\n  element_type: long\n" + AGG_TAIL))
    assert "does not take `column`" in column.message
    count = fail(schema("- count: n\n  element_type: long\n" + AGG_TAIL))
    assert "only `ids`" in count.message
    field = only_field("- ids: orderIds\n  element_type: keyword\n" + AGG_TAIL)
    assert field.source == Aggregate(table="orders", op="ids", key=ForeignKey("user_id"),
                                     element_type="keyword")


def test_case27_aggregate_needs_exactly_one_of_foreign_key_and_through():
    through = "  through: {table: j, left_key: a, right_key: b}\n"
    both = fail(schema("- count: n\n" + AGG_TAIL + through))
    neither = fail(schema("- count: n\n  table: orders\n"))
    for error in (both, neither):
        assert "either `foreign_key` or `through`, not both or neither" in error.message


def test_case28_geo_forms():
    mixed = fail(schema("- geo: loc\n  lat: la\n  required: false\n"))
    assert "both `lat` and `lon`" in mixed.message
    with_column = fail(schema("- geo: loc\n  lat: la\n  lon: lo\n  column: c\n"
                              "  required: false\n"))
    assert "not a mix" in with_column.message
    one = only_field("- geo: loc\n  column: loc_json\n  required: false\n")
    assert one.source == ColumnSource(column="loc_json", type="geo_point", nullable=True)
    two = only_field("- geo: loc\n  lat: la\n  lon: lo\n  required: true\n")
    assert two.source == GeoSource(lat="la", lon="lo", nullable=False)
    loose = only_field("- geo: loc\n  lat: la\n  lon: lo\n  required: false\n")
    assert loose.source.nullable is True


def test_case29_map_values():
    error = fail(schema("- map: attrs\n  values: json\n  required: false\n"))
    assert "`json`" in error.message
    geo = fail(schema("- map: attrs\n  values: geo_point\n  required: false\n"))
    assert "`geo`" in geo.message
    field = only_field("- map: attrs\n  values: keyword\n  required: false\n")
    assert field.source == ColumnSource(column="attrs", type=MapType("keyword"), nullable=True)
    assert field.options == {"dynamic": True}
    kept = only_field("- map: attrs\n  values: long\n  required: false\n"
                      "  options: {dynamic: false}\n")
    assert kept.options == {"dynamic": False}


def root_filters(filters: str) -> str:
    return "version: 1\ntable: users\nfilters:\n" + textwrap.indent(filters, "  ") + "fields: []\n"


def test_case30_filter_values_and_shapes():
    loaded = load(root_filters("- {column: n, op: between, value: [1, 100]}\n"))
    assert loaded.filters == (Comparison(column="n", op="between", values=("1", "100")),)
    three = fail(root_filters("- {column: n, op: between, value: [1, 2, 3]}\n"))
    assert "requires exactly 2 values, got 3" in three.message
    scalar_in = fail(root_filters("- {column: n, op: in, value: 3}\n"))
    assert "filter op 'in' requires a sequence value" in scalar_in.message
    no_value = fail(root_filters("- {column: n, op: eq}\n"))
    assert "filter op 'eq' requires a value" in no_value.message
    null_value = fail(root_filters("- {column: n, op: eq, value: null}\n"))
    assert "filter op 'eq' requires a value" in null_value.message
    shape = fail(root_filters("- {column: n, op: is_null, value: 1}\n"))
    assert "`{raw: <sql>}`" in shape.message
    assert "is_null | is_not_null" in shape.message


def test_case31_identifiers_are_normalised_and_field_names_keep_case():
    loaded = load("version: 1\ntable: ' Users '\nfields:\n"
                  "  - text: fullName\n    column: FullName\n    required: false\n"
                  "  - integer: orderCount\n    required: false\n")
    assert loaded.table == "users"
    assert loaded.fields[0].source.column == "fullname"
    assert loaded.fields[1].name == "orderCount"
    assert loaded.fields[1].source.column == "ordercount"
    error = fail(schema("- integer: 1abc\n  required: true\n"))
    assert "1abc" in error.message
    assert "invalid field name" in error.message


@pytest.mark.parametrize(("key", "value"), [
    ("table", "'1users'"), ("schema", "'my-schema'"), ("primary_key", "'a' "),
    ("table", "'" + "x" * 64 + "'"),
])
def test_invalid_postgres_identifiers_are_rejected(key, value):
    head = {"table": "users", "schema": "public", "primary_key": "id"}
    head[key] = value
    text = "version: 1\n" + "".join(f"{k}: {v}\n" for k, v in head.items()) + "fields: []\n"
    if key == "primary_key":
        assert load(text).primary_key == "a"
        return
    error = fail(text)
    assert f"`{key}`" in error.message
    assert "--> line" in error.message


def test_identifiers_must_be_strings():
    error = fail("version: 1\ntable: 12\nfields: []\n")
    assert "`table` must be a string" in error.message


# ---------------------------------------------------------------------------
# Conversion details
# ---------------------------------------------------------------------------


def test_identifier_gets_the_code_analyzer_unless_options_set_one():
    injected = only_field("- identifier: sku\n  required: true\n")
    assert injected.options == {"analyzer": "flusso_code"}
    kept = only_field("- identifier: sku\n  required: true\n  options: {analyzer: simple}\n")
    assert kept.options == {"analyzer": "simple"}


def test_options_are_converted_by_the_value_model():
    field = only_field("- double: price\n  required: true\n"
                       "  options: {scaling_factor: 100, index: false, boost: 1.5}\n")
    assert field.options == {"scaling_factor": 100, "index": False, "boost": Decimal("1.5")}


def test_custom_type_names_are_normalised():
    field = only_field("- custom: vec\n  postgres: [' NUMERIC(10,2)[] ', 'tsvector[][]']\n"
                       "  opensearch: knn_vector\n  required: false\n")
    assert field.source.type == CustomType(postgres=("numeric", "tsvector"),
                                           opensearch="knn_vector")


def test_custom_with_empty_postgres_or_opensearch_is_rejected():
    empty = fail(schema("- custom: vec\n  postgres: []\n  opensearch: x\n  required: false\n"))
    assert "`postgres`" in empty.message
    blank = fail(schema("- custom: vec\n  postgres: [a]\n  opensearch: ' '\n"
                        "  required: false\n"))
    assert "`opensearch`" in blank.message


def test_custom_takes_no_transforms():
    error = fail(schema("- custom: vec\n  postgres: [a]\n  opensearch: x\n  required: false\n"
                        "  transforms: [trim]\n"))
    assert "unknown key `transforms`" in error.message


def test_transforms_keep_order_and_duplicates_and_null_means_none():
    field = only_field("- keyword: email\n  required: true\n"
                       "  transforms: [trim, lowercase, trim]\n")
    assert field.source.transforms == ("trim", "lowercase", "trim")
    none = only_field("- keyword: email\n  required: true\n  transforms: null\n")
    assert none.source.transforms == ()
    error = fail(schema("- keyword: email\n  required: true\n  transforms: [lowercse]\n"))
    assert "unknown transform `lowercse`" in error.message
    assert error.hint == "did you mean `lowercase`?"


def test_required_must_be_a_boolean_not_a_string():
    error = fail(schema("- keyword: email\n  required: 'true'\n"))
    assert "`required` must be `true` or `false`" in error.message


def test_has_many_join_converts_fully():
    field = only_field("""\
        - has_many: orders
          table: Orders
          primary_key: id
          foreign_key: user_id
          filters:
            - {raw: "  status <> 'void'  "}
            - {column: deleted_at, op: is_null}
            - {column: total, op: gte, value: 10.0}
          order_by:
            - {column: created_at, direction: desc}
            - {column: id}
          limit: 0
          fields:
            - integer: id
              required: false
            - integer: user_id
              required: false
        """)
    join = field.source
    assert isinstance(join, Join)
    assert join.table == "orders"
    assert join.kind == HasMany(foreign_key="user_id")
    assert join.filters == (
        RawFilter("status <> 'void'"),
        NullCheck(column="deleted_at", op="is_null"),
        Comparison(column="total", op="gte", values=("10.0",)),
    )
    assert join.order_by == (OrderBy("created_at", "desc"), OrderBy("id", None))
    assert join.limit == 0
    assert [f.source.nullable for f in join.fields] == [True, True]
    # Inside a join the current primary key is the join's, not the root's.
    resolved = resolve_fields(IndexSchema(table="users", primary_key="user_id", fields=(field,)))
    assert [child.nullable for child in resolved[0].children] == [False, True]


def test_many_to_many_needs_a_complete_through():
    field = only_field("- many_to_many: tags\n  through: {table: user_tags, left_key: user_id, "
                       "right_key: tag_id}\n" + "  table: tags\n  primary_key: id\n  fields: []\n")
    assert field.source.kind == ManyToMany(Through("user_tags", "user_id", "tag_id"))
    error = fail(schema("- many_to_many: tags\n  through: {table: j, left_key: a}\n"
                        "  table: tags\n  primary_key: id\n  fields: []\n"))
    assert "missing key `right_key`" in error.message
    extra = fail(schema("- many_to_many: tags\n  through: {table: j, left_key: a, right_key: b, "
                        "x: 1}\n  table: tags\n  primary_key: id\n  fields: []\n"))
    assert "unknown key `x`" in extra.message


def test_filters_on_ids_through_a_junction_are_kept():
    field = only_field("- ids: tagIds\n  table: tags\n  element_type: long\n"
                       "  through: {table: user_tags, left_key: user_id, right_key: tag_id}\n"
                       "  filters: [{column: visible, op: eq, value: true}]\n")
    assert field.source.filters == (Comparison("visible", "eq", ("true",)),)


def test_count_and_avg_keep_ignored_siblings():
    count = only_field("- count: n\n  column: x\n  value_type: long\n" + AGG_TAIL)
    assert count.source.column == "x"
    assert count.source.value_type == "long"
    avg = only_field("- avg: mean\n  column: amount\n  value_type: double\n" + AGG_TAIL)
    assert avg.source.value_type == "double"


def test_filter_value_strings_follow_the_spec():
    loaded = load(root_filters(
        "- {column: a, op: in, value: [1, true, null, 10.0, x, 0x10, '010']}\n"
        "- {column: b, op: eq, value: false}\n"
    ))
    assert loaded.filters[0].values == ("1", "true", "null", "10.0", "x", "16", "010")
    assert loaded.filters[1].values == ("false",)


def test_an_empty_in_list_is_rejected():
    error = fail(root_filters("- {column: a, op: not_in, value: []}\n"))
    assert "at least one value" in error.message


def test_a_list_in_a_scalar_filter_slot_is_rejected():
    error = fail(root_filters("- {column: a, op: eq, value: [1]}\n"))
    assert "single scalar value" in error.message
    nested = fail(root_filters("- {column: a, op: in, value: [[1]]}\n"))
    assert "must be scalars" in nested.message


def test_an_unknown_filter_op_gets_a_suggestion():
    error = fail(root_filters("- {column: a, op: eqq, value: 1}\n"))
    assert "unknown filter op `eqq`" in error.message
    assert error.hint == "did you mean `eq`?"


def test_a_filter_matching_no_form_names_the_three_forms():
    error = fail(root_filters("- {raw: 'a = 1', column: a}\n"))
    assert "`{raw: <sql>}`" in error.message
    assert "value: <v>" in error.message
    empty_raw = fail(root_filters("- {raw: '   '}\n"))
    assert "non-empty" in empty_raw.message


def test_soft_delete_column_and_field_forms():
    by_column = load("version: 1\ntable: users\nsoft_delete:\n  column: Deleted_At\n"
                     "  when: [{column: reason, op: neq, value: keep}]\nfields: []\n")
    assert by_column.soft_delete == SoftDelete(
        kind="column", name="deleted_at", when=(Comparison("reason", "neq", ("keep",)),))
    assert by_column.soft_delete_column == "deleted_at"
    by_field = load("version: 1\ntable: users\nsoft_delete: {field: removed}\nfields:\n"
                    "  - object: meta\n    fields:\n"
                    "      - timestamp: removed\n        column: removed_at\n"
                    "        required: false\n")
    assert by_field.soft_delete == SoftDelete(kind="field", name="removed")
    assert by_field.soft_delete_column == "removed_at"


def test_soft_delete_needs_exactly_one_marker():
    both = fail("version: 1\ntable: users\nsoft_delete: {column: a, field: b}\nfields: []\n")
    assert "exactly one of `column`" in both.message
    neither = fail("version: 1\ntable: users\nsoft_delete: {when: []}\nfields: []\n")
    assert "exactly one of `column`" in neither.message


def test_soft_delete_field_must_be_a_root_row_column_field():
    inside_join = fail("""\
        version: 1
        table: users
        primary_key: id
        soft_delete: {field: gone}
        fields:
          - has_one: profile
            table: profiles
            primary_key: id
            foreign_key: user_id
            fields:
              - boolean: gone
                required: false
        """)
    assert "`gone`" in inside_join.message
    assert "root row" in inside_join.message
    missing = fail("version: 1\ntable: users\nsoft_delete: {field: nope}\nfields: []\n")
    assert "`nope`" in missing.message


# ---------------------------------------------------------------------------
# Rules flusso adds to upstream's (duplicate names, relations without a root key, …)
# ---------------------------------------------------------------------------


def test_duplicate_field_names_at_one_level_are_rejected():
    error = fail(schema("- keyword: a\n  required: true\n- text: a\n  required: true\n"))
    assert "duplicate field name `a`" in error.message
    fine = load(schema("- keyword: a\n  required: true\n- object: o\n  fields:\n"
                       "    - keyword: a\n      required: true\n"))
    assert isinstance(fine.fields[1].source, GroupSource)


def test_relations_at_the_root_row_need_a_root_primary_key():
    head = "version: 1\ntable: users\n"
    root = fail(schema("- count: n\n" + AGG_TAIL, head=head))
    assert "needs the root `primary_key`" in root.message
    in_object = fail(schema("- object: o\n  fields:\n    - has_many: orders\n"
                            "      foreign_key: user_id\n      table: orders\n"
                            "      primary_key: id\n      fields: []\n", head=head))
    assert "o.orders" in in_object.message
    assert "needs the root `primary_key`" in in_object.message


def test_enum_sort_names_that_collide_are_rejected():
    error = fail(schema("""\
        - enum: a_b
          variants: [x]
          required: true
        - object: a
          fields:
            - enum: b
              variants: [x]
              required: true
        """))
    assert "flusso_enumsort__a_b" in error.message
    bare = load(schema("- enum: a_b\n  required: true\n- object: a\n  fields:\n"
                       "    - enum: b\n      required: true\n"))
    assert bare.fields[0].source.variants == ()


# ---------------------------------------------------------------------------
# Messages, positions and ordering
# ---------------------------------------------------------------------------


def test_nested_field_errors_carry_the_dotted_path_and_line():
    error = fail(schema("""\
        - has_many: orders
          table: orders
          primary_key: id
          foreign_key: user_id
          fields:
            - has_many: items
              table: items
              primary_key: id
              foreign_key: order_id
              fields:
                - sum: total
                  table: prices
                  value_type: decimal
                  foreign_key: item_id
        """))
    assert error.message.startswith(PREFIX + "orders.items.total: `sum` field `total`: ")
    assert "requires a `column`" in error.message
    assert error.message.endswith("(line 15)")


def test_errors_before_the_name_is_known_use_the_list_index():
    error = fail(schema("- keyword: ok\n  required: true\n- 5\n"))
    assert error.message.startswith(PREFIX + "fields[1]: ")


def test_top_level_problems_come_before_field_problems_and_the_version_after_parse():
    error = fail("version: 2\ntable: users\nfields:\n  - keyword: email\nbogus: 1\n")
    messages = [p.message for p in error.problems]
    assert "unknown key `bogus`" in messages[0]
    assert "missing key `required`" in messages[1]
    assert "unsupported schema version 2" in messages[2]


def test_parse_problems_come_before_conversion_problems():
    error = fail(schema("- sum: total\n  table: t\n  foreign_key: f\n"
                        "- keyword: b\n  bogus: true\n  required: true\n"))
    assert "unknown key `bogus`" in error.problems[0].message
    assert "requires a `column`" in error.problems[1].message


def test_several_problems_are_reported_together_in_document_order():
    error = fail(schema("- keyword: a\n- keyword: b\n- keyword: c\n  required: 1\n"))
    assert [p.message.split(":")[1].strip() for p in error.problems] == ["a", "b", "c"]
    assert error.message == error.problems[0].message


def test_missing_top_level_keys_are_named():
    error = fail("version: 1\n")
    text = everything(error)
    assert "missing key `table`" in text
    assert "missing key `fields`" in text


def test_an_unknown_top_level_key_gets_a_suggestion():
    error = fail("version: 1\ntabel: users\nfields: []\n")
    assert "did you mean `table`?" in error.message
    assert error.hint == "did you mean `table`?"


def test_a_key_named_field_is_always_unknown():
    error = fail(schema("- keyword: email\n  field: email\n  required: true\n"))
    assert "unknown key `field`" in error.message


def test_fields_may_be_empty():
    assert load("version: 1\ntable: users\nfields: []\n").fields == ()


def test_schema_key_sets_the_postgres_schema():
    assert load("version: 1\ntable: users\nschema: Sales\nfields: []\n").db_schema == "sales"


def test_sibling_tables_cover_exactly_the_22_siblings():
    from flusso.domain.config.index_schema.rules import KIND_SIBLINGS

    union = {key for allowed, _ in KIND_SIBLINGS.values() for key in allowed}
    assert union == set(FIELD_SIBLINGS)


# ---------------------------------------------------------------------------
# did-you-mean
# ---------------------------------------------------------------------------


def test_edit_distance_is_levenshtein():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3
    assert edit_distance("same", "same") == 0


def test_did_you_mean_picks_the_closest_within_two_and_ties_go_first():
    assert did_you_mean("requierd", ["column", "required"]) == "did you mean `required`?"
    assert did_you_mean("colum", ["column", "columns"]) == "did you mean `column`?"
    assert did_you_mean("ab", ["ax", "ay"]) == "did you mean `ax`?"
    assert did_you_mean("zzzzzz", ["column"]) is None
    assert did_you_mean("column", ["column"]) is None


def test_a_tab_in_indentation_gets_a_specific_hint():
    error = fail("version: 1\ntable: users\nfields:\n\t- keyword: email\n")
    assert "--> line 4, column 1" in error.message
    assert "tabs" in error.hint


def test_a_json_field_is_dynamic_unless_its_options_say_otherwise():
    assert only_field("- json: settings\n  required: false\n").options == {"dynamic": True}
    field = only_field("- json: settings\n  required: false\n  options: {enabled: false, dynamic: false}\n")
    assert field.options == {"enabled": False, "dynamic": False}
