"""Document SQL shapes generated from the model."""

from __future__ import annotations

from decimal import Decimal

import pytest

from flusso.adapters.postgres.document_sql import (
    CatalogFacts,
    constant_sql,
    facts_needed,
    lookup_many_sql,
    lookup_row_sql,
    plan_document_sql,
)
from flusso.app.ports import SourceError
from flusso.domain.config.model import (
    Aggregate,
    BelongsTo,
    ColumnSource,
    Comparison,
    Constant,
    Field,
    ForeignKey,
    GeoSource,
    GroupSource,
    HasMany,
    HasOne,
    IndexSchema,
    Join,
    ManyToMany,
    NullCheck,
    OrderBy,
    RawFilter,
    SoftDelete,
    Through,
)

FACTS = CatalogFacts(
    primary_keys={"orgs": "id", "orders": "id", "items": "item_id", "tags": "id", "users": "id"},
    column_types={
        ("users", "id"): "integer",
        ("users", "status"): "text",
        ("users", "tenant"): "uuid",
        ("users", "deleted_at"): "timestamp with time zone",
        ("orders", "total"): "numeric(10,2)",
        ("orders", "status"): "text",
        ("tags", "label"): "character varying(20)",
    },
)


def col(name: str, type_: str = "keyword", **extra) -> Field:
    return Field(name, ColumnSource(column=name, type=type_, nullable=True, **extra))


def users(*fields: Field, **schema) -> IndexSchema:
    return IndexSchema(table="users", primary_key="id", fields=fields or (col("id"),), **schema)


def sql_of(schema: IndexSchema, facts: CatalogFacts = FACTS) -> str:
    plan = plan_document_sql(schema, facts)
    return plan.batched("id", "integer", 2)


def test_batched_query_selects_the_key_as_text_and_binds_keys_after_the_fixed_params() -> None:
    schema = users(col("id"), filters=(Comparison("status", "neq", ("banned",)),))
    plan = plan_document_sql(schema, FACTS)
    assert plan.params == ("banned",)
    assert plan.batched("id", "integer", 3) == (
        'SELECT "root"."id"::text AS "doc_key", json_build_object(\'id\', "root"."id")::text '
        'AS "document" FROM "public"."users" AS "root" WHERE "root"."id" IN '
        '($2::integer, $3::integer, $4::integer) AND ("root"."status" <> $1::text)'
    )


def test_single_query_has_one_equality_per_key_column() -> None:
    plan = plan_document_sql(IndexSchema(table="pairs", fields=(col("a"),)), FACTS)
    assert plan.single([("a", "integer"), ("b", "uuid")]) == (
        'SELECT json_build_object(\'a\', "root"."a")::text AS "document" FROM "public"."pairs" '
        'AS "root" WHERE "root"."a" = $1::integer AND "root"."b" = $2::uuid'
    )


def test_names_are_quoted_and_field_names_are_string_literals() -> None:
    schema = IndexSchema(
        table="users", db_schema="sales", primary_key="id",
        fields=(Field("it's", ColumnSource(column="email", type="keyword", nullable=True)),),
    )
    sql = sql_of(schema)
    assert "json_build_object('it''s', \"root\".\"email\")" in sql
    assert 'FROM "sales"."users" AS "root"' in sql


def test_transforms_wrap_in_order_and_defaults_are_untyped_literals() -> None:
    sql = sql_of(users(
        col("email", transforms=("trim", "lowercase")),
        col("bio", "text", default="it's"),
        col("score", "integer", default=5),
        col("flag", "boolean", default=False),
    ))
    assert "'email', lower(trim(\"root\".\"email\"))" in sql
    assert "'bio', coalesce(\"root\".\"bio\", 'it''s')" in sql
    assert "'score', coalesce(\"root\".\"score\", '5')" in sql
    assert "'flag', coalesce(\"root\".\"flag\", 'false')" in sql


def test_more_than_fifty_fields_concatenate_jsonb_objects() -> None:
    fields = tuple(col(f"c{i}") for i in range(120))
    plan = plan_document_sql(users(*fields), FACTS)
    assert plan.object_sql.startswith("(jsonb_build_object('c0', ")
    assert plan.object_sql.count("jsonb_build_object(") == 3
    assert plan.object_sql.count(" || ") == 2
    assert "'c49', \"root\".\"c49\"), jsonb_build_object('c50'" not in plan.object_sql
    assert "\"root\".\"c49\") || jsonb_build_object('c50', " in plan.object_sql
    assert plan_document_sql(users(*fields[:50]), FACTS).object_sql.startswith("json_build_object(")


def test_belongs_to_correlates_the_target_catalog_key_with_the_parent_column() -> None:
    org = Join("orgs", BelongsTo("org_id"), "org_key", True, (col("name"),),
               filters=(NullCheck("name", "is_not_null"),))
    sql = sql_of(users(Field("org", org)))
    assert (
        "'org', (SELECT json_build_object('name', \"rel1\".\"name\") FROM \"public\".\"orgs\" "
        "AS \"rel1\" WHERE \"rel1\".\"id\" = \"root\".\"org_id\" AND (\"rel1\".\"name\" IS NOT NULL) LIMIT 1)"
    ) in sql


def test_has_one_orders_and_limits_to_one_row() -> None:
    latest = Join("orders", HasOne("user_id"), "id", True, (col("total"),),
                  order_by=(OrderBy("placed_at", "desc"), OrderBy("id")))
    sql = sql_of(users(Field("latest", latest)))
    assert (
        "(SELECT json_build_object('total', \"rel1\".\"total\") FROM \"public\".\"orders\" AS \"rel1\" "
        "WHERE \"rel1\".\"user_id\" = \"root\".\"id\" ORDER BY \"rel1\".\"placed_at\" DESC, "
        "\"rel1\".\"id\" ASC LIMIT 1)"
    ) in sql


def test_nested_has_many_filters_orders_and_limits_inside_and_reorders_the_aggregate() -> None:
    items = Join("items", HasMany("order_id"), "item_id", False, (col("sku"),))
    orders = Join(
        "orders", HasMany("user_id"), "id", False, (col("id"), Field("items", items)),
        filters=(Comparison("total", "gt", ("10.5",)),), order_by=(OrderBy("placed_at", "desc"),),
        limit=5,
    )
    plan = plan_document_sql(users(Field("orders", orders)), FACTS)
    assert plan.object_sql == (
        "json_build_object('orders', (SELECT coalesce(json_agg(json_build_object('id', \"rel1\".\"id\", "
        "'items', (SELECT coalesce(json_agg(json_build_object('sku', \"rel2\".\"sku\")), '[]'::json) "
        "FROM (SELECT \"rel3\".* FROM \"public\".\"items\" AS \"rel3\" WHERE \"rel3\".\"order_id\" = "
        "\"rel1\".\"id\") AS \"rel2\")) ORDER BY \"rel1\".\"placed_at\" DESC), '[]'::json) FROM "
        "(SELECT \"rel4\".* FROM \"public\".\"orders\" AS \"rel4\" WHERE \"rel4\".\"user_id\" = "
        "\"root\".\"id\" AND (\"rel4\".\"total\" > $1::numeric(10,2)) ORDER BY \"rel4\".\"placed_at\" "
        "DESC LIMIT 5) AS \"rel1\"))"
    )
    assert plan.params == ("10.5",)


def test_many_to_many_joins_the_junction_on_the_far_key() -> None:
    tags = Join("tags", ManyToMany(Through("user_tags", "user_id", "tag_id")), "id", False,
                (col("label"),), filters=(Comparison("label", "like", ("r%",)),),
                order_by=(OrderBy("label"),))
    sql = sql_of(users(Field("tags", tags)))
    assert (
        "FROM (SELECT \"rel2\".* FROM \"public\".\"tags\" AS \"rel2\" JOIN \"public\".\"user_tags\" "
        "AS \"rel3\" ON \"rel3\".\"tag_id\" = \"rel2\".\"id\" WHERE \"rel3\".\"user_id\" = \"root\".\"id\" "
        "AND (\"rel2\".\"label\" LIKE $1::character varying(20)) ORDER BY \"rel2\".\"label\" ASC) AS \"rel1\""
    ) in sql


def test_aggregates_are_correlated_scalar_subqueries() -> None:
    sql = sql_of(users(
        Field("n", Aggregate("orders", "count", ForeignKey("user_id"))),
        Field("spent", Aggregate("orders", "sum", ForeignKey("user_id"), column="total", value_type="decimal",
                                 filters=(Comparison("status", "eq", ("paid",)),))),
        Field("mean", Aggregate("orders", "avg", ForeignKey("user_id"), column="total")),
        Field("ids", Aggregate("orders", "ids", ForeignKey("user_id"), element_type="long")),
        Field("tagMax", Aggregate("tags", "max", Through("user_tags", "user_id", "tag_id"), column="label",
                                  value_type="keyword")),
    ))
    assert "'n', (SELECT count(*) FROM \"public\".\"orders\" AS \"rel1\" WHERE \"rel1\".\"user_id\" = \"root\".\"id\")" in sql
    assert ("'spent', (SELECT sum(\"rel2\".\"total\") FROM \"public\".\"orders\" AS \"rel2\" WHERE "
            "\"rel2\".\"user_id\" = \"root\".\"id\" AND (\"rel2\".\"status\" = $1::text))") in sql
    assert "'mean', (SELECT avg(\"rel3\".\"total\") FROM" in sql
    assert "'ids', (SELECT coalesce(json_agg(\"rel4\".\"id\"), '[]'::json) FROM \"public\".\"orders\"" in sql
    assert ("'tagMax', (SELECT max(\"rel5\".\"label\") FROM \"public\".\"tags\" AS \"rel5\" JOIN "
            "\"public\".\"user_tags\" AS \"rel6\" ON \"rel6\".\"tag_id\" = \"rel5\".\"id\" WHERE "
            "\"rel6\".\"user_id\" = \"root\".\"id\")") in sql


def test_ids_through_a_junction_reads_only_the_junction_without_filters() -> None:
    sql = sql_of(users(Field("tagIds", Aggregate("tags", "ids", Through("user_tags", "user_id", "tag_id"),
                                                 element_type="integer"))))
    assert ("'tagIds', (SELECT coalesce(json_agg(\"rel1\".\"tag_id\"), '[]'::json) FROM "
            "\"public\".\"user_tags\" AS \"rel1\" WHERE \"rel1\".\"user_id\" = \"root\".\"id\")") in sql


def test_ids_through_a_junction_with_filters_joins_the_far_table_to_apply_them() -> None:
    sql = sql_of(users(Field("tagIds", Aggregate(
        "tags", "ids", Through("user_tags", "user_id", "tag_id"), element_type="integer",
        filters=(Comparison("label", "neq", ("red",)),),
    ))))
    assert ("'tagIds', (SELECT coalesce(json_agg(\"rel2\".\"tag_id\"), '[]'::json) FROM "
            "\"public\".\"tags\" AS \"rel1\" JOIN \"public\".\"user_tags\" AS \"rel2\" ON "
            "\"rel2\".\"tag_id\" = \"rel1\".\"id\" WHERE \"rel2\".\"user_id\" = \"root\".\"id\" "
            "AND (\"rel1\".\"label\" <> $1::character varying(20)))") in sql


@pytest.mark.parametrize(
    ("filter_", "condition", "params"),
    [
        (Comparison("status", "eq", ("a",)), '"root"."status" = $1::text', ("a",)),
        (Comparison("status", "neq", ("a",)), '"root"."status" <> $1::text', ("a",)),
        (Comparison("id", "lt", ("3",)), '"root"."id" < $1::integer', ("3",)),
        (Comparison("id", "lte", ("3",)), '"root"."id" <= $1::integer', ("3",)),
        (Comparison("id", "gt", ("3",)), '"root"."id" > $1::integer', ("3",)),
        (Comparison("id", "gte", ("3",)), '"root"."id" >= $1::integer', ("3",)),
        (Comparison("status", "like", ("a%",)), '"root"."status" LIKE $1::text', ("a%",)),
        (Comparison("status", "ilike", ("a%",)), '"root"."status" ILIKE $1::text', ("a%",)),
        (Comparison("tenant", "in", ("u1", "u2")), '"root"."tenant" IN ($1::uuid, $2::uuid)', ("u1", "u2")),
        (Comparison("id", "not_in", ("1",)), '"root"."id" NOT IN ($1::integer)', ("1",)),
        (Comparison("id", "between", ("1", "9")), '"root"."id" BETWEEN $1::integer AND $2::integer', ("1", "9")),
        (NullCheck("status", "is_null"), '"root"."status" IS NULL', ()),
        (NullCheck("status", "is_not_null"), '"root"."status" IS NOT NULL', ()),
        (RawFilter("lower(status) = 'x' AND id % 2 = 0"), "lower(status) = 'x' AND id % 2 = 0", ()),
    ],
)
def test_root_filters_render_each_operator_with_cast_operands(filter_, condition, params) -> None:
    plan = plan_document_sql(users(filters=(filter_,)), FACTS)
    assert plan.conditions == (f"({condition})",)
    assert plan.params == params


def test_several_filters_are_anded_in_declaration_order() -> None:
    plan = plan_document_sql(users(filters=(NullCheck("status", "is_not_null"), Comparison("id", "gt", ("1",)))), FACTS)
    assert plan.batched("id", "integer", 1).endswith(
        'WHERE "root"."id" IN ($2::integer) AND ("root"."status" IS NOT NULL) AND ("root"."id" > $1::integer)'
    )


def test_soft_delete_predicate_handles_any_marker_type_and_when_filters() -> None:
    soft = SoftDelete("column", "deleted_at", when=(Comparison("status", "eq", ("gone",)),))
    plan = plan_document_sql(users(soft_delete=soft, filters=(Comparison("id", "gt", ("0",)),)), FACTS)
    assert plan.conditions == (
        'NOT ((CASE WHEN "root"."deleted_at" IS NULL THEN false WHEN pg_typeof("root"."deleted_at") = '
        '\'boolean\'::regtype THEN "root"."deleted_at"::text::boolean ELSE true END) AND '
        '("root"."status" = $1::text))',
        '("root"."id" > $2::integer)',
    )
    assert plan.params == ("gone", "0")


def test_soft_delete_by_field_uses_the_column_behind_a_root_row_field() -> None:
    fields = (col("id"), Field("meta", GroupSource((
        Field("isGone", ColumnSource(column="deleted", type="boolean", nullable=False)),
    ))))
    plan = plan_document_sql(users(*fields, soft_delete=SoftDelete("field", "isGone")), FACTS)
    assert plan.conditions[0].startswith('NOT ((CASE WHEN "root"."deleted" IS NULL')
    with pytest.raises(SourceError, match="soft_delete.field 'nope'"):
        plan_document_sql(users(*fields, soft_delete=SoftDelete("field", "nope")), FACTS)


def test_geo_points_groups_and_maps_render_from_the_same_row() -> None:
    sql = sql_of(users(
        Field("where", GeoSource(lat="lat", lon="lng", nullable=True)),
        Field("spot", ColumnSource(column="spot", type="geo_point", nullable=True)),
        Field("meta", GroupSource((col("a"), col("b")))),
    ))
    assert ("'where', CASE WHEN \"root\".\"lat\" IS NULL OR \"root\".\"lng\" IS NULL THEN NULL ELSE "
            "json_build_object('lat', \"root\".\"lat\", 'lon', \"root\".\"lng\") END") in sql
    assert "'spot', \"root\".\"spot\"" in sql
    assert "'meta', json_build_object('a', \"root\".\"a\", 'b', \"root\".\"b\")" in sql


@pytest.mark.parametrize(
    ("value", "sql"),
    [
        (5, "'5'::json"),
        (True, "'true'::json"),
        (Decimal("1.50"), "'1.50'::json"),
        ("it's", "'\"it''s\"'::json"),
        ([1, "a", None], "'[1,\"a\",null]'::json"),
        ({"k": {"n": False}}, "'{\"k\":{\"n\":false}}'::json"),
        (None, "NULL"),
    ],
)
def test_constants_keep_their_json_type(value, sql) -> None:
    assert constant_sql(value) == sql
    assert f"'c', {sql}" in sql_of(users(Field("c", Constant(value))))


def test_a_relation_target_without_a_primary_key_is_an_error() -> None:
    join = Join("nokey", BelongsTo("nokey_id"), "id", True, (col("x"),))
    with pytest.raises(SourceError, match="table public.nokey has no primary key"):
        plan_document_sql(users(Field("n", join)), FACTS)


def test_relations_under_a_root_without_a_declared_key_are_unsupported() -> None:
    schema = IndexSchema(table="users", fields=(Field("n", Aggregate("orders", "count", ForeignKey("user_id"))),))
    with pytest.raises(SourceError, match="require the parent table to declare a primary key"):
        plan_document_sql(schema, FACTS)


def test_facts_needed_lists_relation_tables_and_compared_columns() -> None:
    schema = users(
        Field("org", Join("orgs", BelongsTo("org_id"), "id", True, (
            Field("tags", Join("tags", ManyToMany(Through("org_tags", "org_id", "tag_id")), "id", False,
                               (col("label"),), filters=(Comparison("label", "eq", ("x",)),))),
        ))),
        soft_delete=SoftDelete("column", "deleted_at", when=(Comparison("status", "eq", ("a",)),)),
        filters=(Comparison("tenant", "eq", ("t",)), NullCheck("status", "is_null")),
    )
    needed = facts_needed(schema)
    assert needed.tables == ("orgs", "tags")
    assert needed.columns == (("users", "id"), ("tags", "label"), ("users", "status"), ("users", "tenant"))


def test_reverse_lookups_bind_keys_as_typed_arrays_and_select_text() -> None:
    assert lookup_many_sql("public", "orders", "id", "bigint", "user_id") == (
        'SELECT "id"::text, "user_id"::text FROM "public"."orders" WHERE "id" = ANY($1::bigint[])'
    )
    assert lookup_row_sql("public", "user_tags", [("a", "integer"), ("b", "uuid")], "user_id") == (
        'SELECT "user_id"::text FROM "public"."user_tags" WHERE "a" = $1::integer AND "b" = $2::uuid'
    )
