"""Online check rules: which columns are looked up and what the live facts make of them.

Keys, filters and soft-delete columns are checked too, a missing table is a diagnostic,
and `enum` accepts Postgres enum types.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from flusso.app.services.check import validate_deployment
from flusso.domain.config.model import (
    Aggregate,
    BelongsTo,
    ColumnSource,
    Comparison,
    Constant,
    Deployment,
    Field,
    ForeignKey,
    GeoSource,
    GroupSource,
    HasMany,
    IndexConfig,
    IndexSchema,
    Join,
    ManyToMany,
    NullCheck,
    OrderBy,
    RawFilter,
    SoftDelete,
    SourceConfig,
    Through,
)
from flusso.domain.documents.change import TableRef
from flusso.domain.validation import (
    ColumnFacts,
    Diagnostic,
    TableFacts,
    diagnose,
    has_errors,
    plan_column_checks,
    tables_to_inspect,
)

NOT_NULL = False
NULLABLE = True


def col(name: str, type_: str = "integer", *, required: bool = True, column: str | None = None,
        default=None) -> Field:
    return Field(name, ColumnSource(column or name, type_, nullable=not required, default=default))


def table(**columns: tuple[str, bool] | tuple[str, bool, bool]) -> dict[str, ColumnFacts]:
    return {name: ColumnFacts(*facts) for name, facts in columns.items()}


USERS = TableRef("public", "users")
ORDERS = TableRef("public", "orders")
TAGS = TableRef("public", "tags")
USER_TAGS = TableRef("public", "user_tags")
ORGS = TableRef("public", "orgs")

LIVE: dict[TableRef, TableFacts | None] = {
    USERS: table(
        id=("integer", NOT_NULL), email=("text", NOT_NULL), bio=("text", NULLABLE),
        org_id=("integer", NULLABLE), deleted=("boolean", NOT_NULL),
        status=("text", NOT_NULL), mood=("mood", NULLABLE, True),
        lat=("double precision", NULLABLE), lon=("numeric(9,6)", NULLABLE),
        spot=("text", NULLABLE), tags=("character varying(20)[]", NULLABLE),
    ),
    ORDERS: table(
        id=("bigint", NOT_NULL), user_id=("integer", NOT_NULL), total=("numeric(10,2)", NOT_NULL),
        status=("text", NOT_NULL), placed_at=("timestamp with time zone", NOT_NULL),
        note=("text", NULLABLE),
    ),
    ORGS: table(id=("integer", NOT_NULL), name=("text", NULLABLE)),
    TAGS: table(id=("integer", NOT_NULL), label=("text", NOT_NULL)),
    USER_TAGS: table(user_id=("integer", NOT_NULL), tag_id=("integer", NOT_NULL)),
}


def users(*fields: Field, **changes) -> IndexSchema:
    return IndexSchema(table="users", primary_key="id", fields=(col("id"), *fields), **changes)


def check(schema: IndexSchema, live: dict[TableRef, TableFacts | None] = LIVE) -> list[Diagnostic]:
    checks = plan_column_checks(schema)
    return diagnose("users", checks, {t: live.get(t) for t in tables_to_inspect(checks)})


def messages(diagnostics: Sequence[Diagnostic]) -> list[tuple[str, str, str]]:
    return [(d.field, d.severity, d.message) for d in diagnostics]


def orders_join(*fields: Field, **changes) -> Field:
    join = Join(
        table="orders", kind=HasMany("user_id"), primary_key="id", nullable=False,
        fields=(col("id", "long"), *fields),
    )
    return Field("orders", Join(**{**join.__dict__, **changes}))


# -- column-backed fields ------------------------------------------------------


def test_a_schema_that_matches_the_database_has_no_diagnostics():
    schema = users(
        col("email", "keyword"), col("bio", "text", required=False),
        col("tags", "keyword", required=False),
        Field("org", Join(table="orgs", kind=BelongsTo("org_id"), primary_key="id",
                          nullable=True, fields=(col("name", "text", required=False),))),
        orders_join(col("total", "decimal"), col("placedAt", "timestamp", column="placed_at")),
        Field("tags", Join(table="tags", kind=ManyToMany(Through("user_tags", "user_id", "tag_id")),
                           primary_key="id", nullable=False, fields=(col("label", "keyword"),))),
        Field("source", Constant("store")),
    )
    assert check(schema) == []


def test_an_unknown_column_is_an_error_naming_schema_table_and_column():
    assert messages(check(users(col("emial", "keyword")))) == [
        ("emial", "error", "references unknown column `public.users.emial`"),
    ]


@pytest.mark.parametrize(
    ("declared", "column", "live_type"),
    [
        ("integer", "status", "text"),
        ("keyword", "id", "bigint"),
        ("integer", "id", "bigint"),
        ("decimal", "placed_at", "timestamp with time zone"),
        ("enum", "total", "numeric(10,2)"),
    ],
)
def test_a_type_the_declaration_does_not_accept_is_an_error_naming_the_database_type(
    declared, column, live_type
):
    schema = IndexSchema(table="orders", primary_key="id",
                         fields=(col("value", declared, column=column),))
    checks = plan_column_checks(schema)
    found = diagnose("orders", checks, LIVE)
    assert messages(found) == [
        ("value", "error", f"declared type does not accept the column's database type `{live_type}`"),
    ]


def test_required_over_a_nullable_column_is_a_warning_that_does_not_fail():
    found = check(users(col("bio", "text")))
    assert messages(found) == [
        ("bio", "warning", "declared non-null (`required`) but the database column allows null"),
    ]
    assert not has_errors(found)


def test_a_default_or_the_current_key_forces_non_null_so_no_warning():
    live = {**LIVE, USERS: table(id=("integer", NULLABLE), bio=("text", NULLABLE))}
    assert check(users(col("bio", "text", default="(none)")), live) == []
    # Inside a join the current key is the join's primary_key, not the root's.
    live = {**LIVE, ORDERS: {**LIVE[ORDERS], "id": ColumnFacts("bigint", True)}}
    assert check(users(orders_join()), live) == []


def test_enum_accepts_a_postgres_enum_type_and_keyword_does_not():
    assert check(users(col("mood", "enum", required=False))) == []
    assert messages(check(users(col("mood", "keyword", required=False)))) == [
        ("mood", "error", "declared type does not accept the column's database type `mood`"),
    ]


def test_fields_inside_objects_and_joins_are_named_by_dotted_path():
    schema = users(
        Field("audit", GroupSource((col("createdAt", "timestamp", column="created_at"),))),
        orders_join(col("amount", "decimal")),
    )
    assert [d.field for d in check(schema)] == ["audit.createdAt", "orders.amount"]


# -- geo and aggregates ----------------------------------------------------------


def test_two_column_geo_needs_numeric_coordinates():
    assert check(users(Field("at", GeoSource("lat", "lon", nullable=True)))) == []
    assert messages(check(users(Field("at", GeoSource("lat", "spot", nullable=True))))) == [
        ("at", "error", "geo_point coordinate column `spot` must be numeric, found `text`"),
    ]
    assert messages(check(users(Field("at", GeoSource("lat", "lng", nullable=True))))) == [
        ("at", "error", "`lon` references unknown column `public.users.lng`"),
    ]


def test_one_column_geo_accepts_text_but_not_numbers():
    assert check(users(col("spot", "geo_point", required=False))) == []
    assert [d.severity for d in check(users(col("lat", "geo_point", required=False)))] == ["error"]


def aggregate(op: str, column: str | None = None, value_type: str | None = None, **kw) -> Field:
    return Field("figure", Aggregate(table="orders", op=op, key=ForeignKey("user_id"),
                                      column=column, value_type=value_type, **kw))


def test_sum_min_max_check_the_column_against_value_type():
    assert check(users(aggregate("sum", "total", "decimal"))) == []
    assert check(users(aggregate("max", "placed_at", "timestamp"))) == []
    assert messages(check(users(aggregate("min", "total", "timestamp")))) == [
        ("figure", "error",
         "declared aggregate type does not accept the column's database type `numeric(10,2)`"),
    ]


def test_count_avg_and_ids_check_no_types():
    assert check(users(aggregate("count"))) == []
    assert check(users(aggregate("avg", "status"))) == []
    assert check(users(Field("ids", Aggregate(table="orders", op="ids", key=ForeignKey("user_id"),
                                              element_type="long")))) == []


def test_an_avg_over_a_missing_column_is_reported():
    assert messages(check(users(aggregate("avg", "amount")))) == [
        ("figure", "error", "`column` references unknown column `public.orders.amount`"),
    ]


# -- keys, filters, soft delete: they must exist -------------------------------------


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        (IndexSchema(table="users", primary_key="uid", fields=()),
         ("primary_key", "`primary_key` references unknown column `public.users.uid`")),
        (users(soft_delete=SoftDelete("column", "removed")),
         ("soft_delete", "`soft_delete.column` references unknown column `public.users.removed`")),
        (users(soft_delete=SoftDelete("column", "deleted", when=(NullCheck("gone", "is_null"),))),
         ("soft_delete", "`soft_delete.when` references unknown column `public.users.gone`")),
        (users(filters=(RawFilter("anything goes"), Comparison("kind", "neq", ("system",)))),
         ("filters", "`filters` references unknown column `public.users.kind`")),
        (users(orders_join(kind=HasMany("buyer_id"))),
         ("orders", "`foreign_key` references unknown column `public.orders.buyer_id`")),
        (users(orders_join(primary_key="order_id")),
         ("orders", "`primary_key` references unknown column `public.orders.order_id`")),
        (users(orders_join(filters=(Comparison("state", "eq", ("paid",)),))),
         ("orders", "`filters` references unknown column `public.orders.state`")),
        (users(orders_join(order_by=(OrderBy("placed", "desc"),))),
         ("orders", "`order_by` references unknown column `public.orders.placed`")),
        (users(Field("org", Join(table="orgs", kind=BelongsTo("organisation_id"),
                                 primary_key="id", nullable=True, fields=()))),
         ("org", "`column` references unknown column `public.users.organisation_id`")),
        (users(Field("tags", Join(table="tags", kind=ManyToMany(Through("user_tags", "uid", "tag_id")),
                                  primary_key="id", nullable=False, fields=()))),
         ("tags", "`through.left_key` references unknown column `public.user_tags.uid`")),
        (users(aggregate("count", filters=(Comparison("state", "eq", ("paid",)),))),
         ("figure", "`filters` references unknown column `public.orders.state`")),
        (users(Field("n", Aggregate(table="tags", op="count",
                                    key=Through("user_tags", "user_id", "tagid")))),
         ("n", "`through.right_key` references unknown column `public.user_tags.tagid`")),
    ],
)
def test_key_filter_and_soft_delete_columns_must_exist(schema, expected):
    assert messages(check(schema)) == [(expected[0], "error", expected[1])]


def test_a_missing_column_referenced_twice_is_reported_once():
    schema = IndexSchema(table="users", primary_key="uid", fields=(col("uid"),),
                         filters=(NullCheck("uid", "is_not_null"),))
    assert messages(check(schema)) == [
        ("uid", "error", "references unknown column `public.users.uid`"),
    ]


# -- missing tables ------------------------------------------------------------------


def test_a_missing_root_table_is_one_error_and_the_rest_is_skipped():
    found = check(users(col("email", "keyword")), {**LIVE, USERS: None})
    assert messages(found) == [
        ("table", "error", "references unknown table `public.users` (no such table in the database)"),
    ]


def test_a_missing_related_table_is_reported_at_its_field_and_the_walk_goes_on():
    schema = users(orders_join(col("total", "decimal")), col("emial", "keyword"))
    found = check(schema, {**LIVE, ORDERS: None})
    assert [(d.field, d.message.split(" (")[0]) for d in found] == [
        ("orders", "references unknown table `public.orders`"),
        ("emial", "references unknown column `public.users.emial`"),
    ]


def test_the_plan_reads_junction_and_related_tables_in_the_root_schema():
    schema = IndexSchema(
        table="users", db_schema="shop", primary_key="id",
        fields=(Field("tags", Join(table="tags", kind=ManyToMany(Through("user_tags", "user_id", "tag_id")),
                                   primary_key="id", nullable=False, fields=())),),
    )
    assert tables_to_inspect(plan_column_checks(schema)) == [
        TableRef("shop", "tags"), TableRef("shop", "user_tags"), TableRef("shop", "users"),
    ]


# -- the use case over a catalog -------------------------------------------------------


class DictCatalog:
    """A catalog answering from a dict, counting lookups per table."""

    def __init__(self, live: dict[TableRef, TableFacts | None]) -> None:
        self.live = live
        self.reads: list[TableRef] = []

    async def table_columns(self, table: TableRef) -> TableFacts | None:
        self.reads.append(table)
        return self.live.get(table)

    async def inspect_coverage(self, publication, tables, manage):  # pragma: no cover - unused
        raise NotImplementedError


async def test_validation_reads_each_table_once_and_reports_indexes_in_name_order():
    deployment = Deployment(
        source=SourceConfig(),
        indexes=(
            IndexConfig("zeta", True, users(col("emial", "keyword"))),
            IndexConfig("alpha", True, users(orders_join(col("amount", "decimal")))),
            IndexConfig("off", False, IndexSchema(table="nowhere", fields=())),
        ),
    )
    catalog = DictCatalog(LIVE)
    found = await validate_deployment(deployment, catalog)
    assert [(d.index, d.field) for d in found] == [("alpha", "orders.amount"), ("zeta", "emial")]
    assert sorted(catalog.reads) == [ORDERS, USERS]


def test_a_server_without_logical_wal_or_a_role_without_replication_is_an_error():
    from flusso.domain.validation import ServerFacts, diagnose_server

    assert diagnose_server(ServerFacts("logical", "flusso", True)) == []
    problems = diagnose_server(ServerFacts("replica", "app", False))
    assert [(p.index, p.field, p.severity) for p in problems] == [
        ("source", "wal_level", "error"), ("source", "role", "error"),
    ]
    assert "wal_level = logical" in problems[0].message
    assert 'ALTER ROLE "app" REPLICATION;' in problems[1].message


def test_a_server_older_than_postgres_13_is_an_error_naming_its_version():
    from flusso.domain.validation import ServerFacts, diagnose_server

    assert diagnose_server(ServerFacts("logical", "flusso", True, version_num=130000)) == []
    problems = diagnose_server(ServerFacts("logical", "flusso", True, version_num=120017))
    assert [(p.index, p.field, p.severity) for p in problems] == [
        ("source", "server_version", "error"),
    ]
    assert "PostgreSQL 12" in problems[0].message and "13 or newer" in problems[0].message
