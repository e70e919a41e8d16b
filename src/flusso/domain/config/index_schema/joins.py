"""Joins: `order_by` and `limit`, which key each verb takes, and the converted `Join`."""

from __future__ import annotations

from flusso.domain.config._yaml12 import YNode, YScalar, describe
from flusso.domain.config.index_schema.filters import all_converted, convert_filters
from flusso.domain.config.index_schema.relations import Scope, relation_ok
from flusso.domain.config.index_schema.report import BAD, CONVERT, PARSE, Report, Site, is_null
from flusso.domain.config.index_schema.rules import (
    JOIN_KEY_HINTS,
    JOIN_KEY_SIBLING,
    ORDER_BY_KEYS,
    backticked,
)
from flusso.domain.config.index_schema.shapes import items, keyed, pg_ident
from flusso.domain.config.model import (
    BelongsTo,
    HasMany,
    HasOne,
    Join,
    JoinKind,
    ManyToMany,
    OrderBy,
)

TO_MANY = ("has_many", "many_to_many")
_DIRECTIONS = ("asc", "desc")


def order_by(report: Report, node: YNode, site: Site, key: str) -> object:
    if is_null(node):
        return None
    listed = items(report, node, site, key, "`{column, direction}`")
    if listed is BAD:
        return BAD
    ordered = [
        _order_item(report, item, site.child(f"{key}[{position}]", item))
        for position, item in enumerate(listed)
    ]
    return BAD if BAD in ordered else tuple(ordered)


def _order_item(report: Report, item: YNode, here: Site) -> object:
    found = keyed(report, item, here, "a mapping like `{column: created_at, direction: desc}`",
                  ORDER_BY_KEYS, f"expected {backticked(ORDER_BY_KEYS)}")
    if found is None:
        return BAD
    keys, bad = found
    if "column" not in keys:
        report.add(PARSE, here, "missing key `column`")
        return BAD
    column = pg_ident(report, keys["column"], here, "column", required=True)
    direction = keys.get("direction")
    direction_value = None
    if direction is not None and not is_null(direction):
        direction_value = direction.value if isinstance(direction, YScalar) else None
        if direction_value not in _DIRECTIONS:
            report.add(PARSE, here, f"`direction` must be `asc` or `desc`, found "
                       f"{describe(direction)}")
            bad = True
    if bad or column is BAD:
        return BAD
    return OrderBy(column=column, direction=direction_value)


def limit(report: Report, node: YNode, site: Site, key: str) -> object:
    if is_null(node):
        return None
    value = node.value if isinstance(node, YScalar) else None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63:
        return value
    report.add(PARSE, site, f"`{key}` must be a whole number ≥ 0, found {describe(node)}")
    return BAD


def join_kind(
    report: Report, verb: str, name: str, body: dict[str, object], site: Site, scope: Scope,
) -> JoinKind | None:
    """The verb's key (after the siblings it refuses), or None once reported."""
    problem = _shape_problem(verb, body)
    if problem is not None:
        detail, hint = problem
        report.add(CONVERT, site, detail, hint=hint)
        return None
    if not relation_ok(report, verb, site, scope):
        return None
    if verb == "belongs_to":
        return BelongsTo(column=body.get("column") or name.lower())
    if verb == "has_one":
        return HasOne(foreign_key=body["foreign_key"])
    if verb == "has_many":
        return HasMany(foreign_key=body["foreign_key"])
    return ManyToMany(through=body["through"])


def _shape_problem(verb: str, body: dict[str, object]) -> tuple[str, str] | None:
    """The first sibling a verb does not take, or its missing key: (message, hint)."""
    expected = JOIN_KEY_HINTS[verb]
    allowed_key = JOIN_KEY_SIBLING[verb]
    for sibling in ("column", "foreign_key", "through"):
        if sibling in body and sibling != allowed_key:
            return (f"`{verb}` join does not take `{sibling}`; it takes {expected}",
                    f"replace `{sibling}` with `{allowed_key}`")
    if verb != "belongs_to" and allowed_key not in body:
        return f"`{verb}` join is missing its key: it takes {expected}", f"add `{allowed_key}:`"
    if verb == "belongs_to" and "order_by" in body:
        return ("`belongs_to` join does not take `order_by` (it follows the key to exactly "
                "one row)", "remove `order_by`")
    if verb in ("belongs_to", "has_one") and "limit" in body:
        return (f"`{verb}` join does not take `limit` (a to-one join selects one row)",
                "remove `limit`")
    if verb in TO_MANY and "required" in body:
        return (f"`{verb}` join does not take `required`: a to-many join is always a "
                "non-null array (`[]` when no rows match)", "remove `required`")
    return None


def build_join(
    report: Report, verb: str, kind: JoinKind | None, body: dict[str, object], fields: object,
) -> Join | None:
    """The converted join; its filters are checked even when the join itself is wrong."""
    pending = body.get("filters")
    filters = convert_filters(report, pending)
    if kind is None or fields is BAD or not all_converted(pending, filters):
        return None
    return Join(
        table=body["table"],
        kind=kind,
        primary_key=body["primary_key"],
        nullable=False if verb in TO_MANY else not body.get("required", False),
        fields=fields,
        filters=filters,
        order_by=body.get("order_by"),
        limit=body.get("limit"),
    )
