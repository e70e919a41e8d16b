"""Reverse-resolution paths (engine spec §7.1–§7.2, R-23)."""

from __future__ import annotations

from flusso.domain.config.model import (
    Aggregate,
    BelongsTo,
    ColumnSource,
    Field,
    ForeignKey,
    GroupSource,
    HasMany,
    HasOne,
    IndexSchema,
    Join,
    ManyToMany,
    Through,
)
from flusso.domain.documents.resolution import Hop, plan_resolution_paths


def col(name: str) -> Field:
    return Field(name, ColumnSource(column=name, type="keyword", nullable=True))


TAGS = Through(table="user_tags", left_key="user_id", right_key="tag_id")

USERS = IndexSchema(
    table="users",
    primary_key="id",
    fields=(
        col("id"),
        Field("org", Join("orgs", BelongsTo("org_id"), "id", True, (col("name"),))),
        Field("orders", Join("orders", HasMany("user_id"), "id", False, (
            col("id"),
            Field("items", Join("order_items", HasMany("order_id"), "id", False, (
                Field("product", Join("products", BelongsTo("product_id"), "code", True, (col("title"),))),
            ))),
        ))),
        Field("tags", Join("tags", ManyToMany(TAGS), "id", False, (col("label"),))),
        Field("meta", GroupSource((
            Field("orderCount", Aggregate(table="orders", op="count", key=ForeignKey("user_id"))),
            Field("tagIds", Aggregate(table="tags", op="ids", key=TAGS, element_type="integer")),
        ))),
        Field("manager", Join("users", BelongsTo("manager_id"), "id", True, (col("email"),))),
        Field("profile", Join("profiles", HasOne("user_id"), "id", True, (col("bio"),))),
    ),
)


def hops(table: str) -> list[tuple[Hop, ...]]:
    return [path.hops for path in plan_resolution_paths(USERS, table)]


def test_an_unread_table_has_no_path() -> None:
    assert hops("audit_log") == []


def test_a_has_many_child_resolves_through_its_foreign_key_and_aggregates_add_paths() -> None:
    assert hops("orders") == [
        (Hop("foreign_key", "orders", "users", "id", column="user_id"),),
        (Hop("foreign_key", "orders", "users", "id", column="user_id"),),
    ]


def test_a_grandchild_walks_two_hops_with_the_middle_table_keyed_by_catalog() -> None:
    assert hops("order_items") == [(
        Hop("foreign_key", "order_items", "orders", None, column="order_id"),
        Hop("foreign_key", "orders", "users", "id", column="user_id"),
    )]


def test_a_belongs_to_deep_in_the_tree_reads_referrers_then_continues_upwards() -> None:
    assert hops("products") == [(
        Hop("belongs_to", "products", "order_items", None, column="product_id", target_key="code"),
        Hop("foreign_key", "order_items", "orders", None, column="order_id"),
        Hop("foreign_key", "orders", "users", "id", column="user_id"),
    )]


def test_a_belongs_to_target_change_reads_the_parent_rows_pointing_at_it() -> None:
    (path,) = hops("orgs")
    assert path == (Hop("belongs_to", "orgs", "users", "id", column="org_id", target_key="id"),)
    assert path[0].lookup_table == "users"
    assert path[0].tuple_column is None


def test_many_to_many_resolves_from_the_junction_and_from_the_far_table() -> None:
    assert hops("user_tags") == [
        (Hop("junction", "user_tags", "users", "id", through=TAGS),),
        (Hop("junction", "user_tags", "users", "id", through=TAGS),),
    ]
    far = hops("tags")
    assert far == [
        (Hop("far", "tags", "users", "id", through=TAGS),),
        (Hop("far", "tags", "users", "id", through=TAGS),),
    ]
    assert far[0][0].lookup_table == "user_tags"


def test_junction_hops_offer_the_left_key_of_wal_tuples_as_parent_candidates() -> None:
    (junction,), _ = hops("user_tags")
    assert junction.tuple_column == "user_id"
    (fk,), _ = hops("orders")
    assert fk.tuple_column == "user_id"
    assert fk.lookup_table == "orders"


def test_a_self_referencing_join_yields_a_path_from_the_root_table_itself() -> None:
    assert hops("users") == [
        (Hop("belongs_to", "users", "users", "id", column="manager_id", target_key="id"),),
    ]


def test_has_one_resolves_like_a_foreign_key() -> None:
    assert hops("profiles") == [(Hop("foreign_key", "profiles", "users", "id", column="user_id"),)]


def test_an_index_without_a_primary_key_still_gets_paths_with_no_root_key() -> None:
    keyless = IndexSchema(table="users", fields=USERS.fields)
    (path,) = [p.hops for p in plan_resolution_paths(keyless, "orgs")]
    assert path[0].parent_key is None
