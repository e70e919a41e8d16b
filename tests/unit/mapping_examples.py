"""Schema models shared by the mapping, hashing and check-report tests.

Built by hand exactly as the schema loader converts the YAML shown beside each
(identifier and map injections in `options`; `nullable` = not `required`).
"""

from __future__ import annotations

from flusso.domain.config.model import (
    Aggregate,
    BelongsTo,
    ColumnSource,
    Comparison,
    CustomType,
    Field,
    ForeignKey,
    GeoSource,
    GroupSource,
    HasMany,
    IndexSchema,
    Join,
    MapType,
    OrderBy,
    SoftDelete,
    Through,
)

WORKED_EXAMPLE_YAML = """\
version: 1
table: users
primary_key: id
soft_delete:
  column: deleted_at
filters:
  - { column: kind, op: eq, value: customer }
fields:
  - integer: id
    required: false
  - keyword: email
    required: true
    transforms: [trim, lowercase]
  - text: fullName
    column: full_name
    required: false
  - identifier: sku
    required: false
  - enum: tier
    required: true
    variants: [free, pro, enterprise]
  - geo: location
    lat: latitude
    lon: longitude
    required: false
  - map: title
    values: text
    required: false
  - custom: price
    postgres: [numeric]
    opensearch: scaled_float
    required: false
    options: { scaling_factor: 100 }
  - object: audit
    fields:
      - timestamp: createdAt
        column: created_at
        required: true
  - belongs_to: organization
    table: organizations
    column: org_id
    primary_key: id
    fields:
      - keyword: name
        required: true
  - has_many: orders
    table: orders
    foreign_key: user_id
    primary_key: id
    order_by:
      - { column: placed_at, direction: desc }
    fields:
      - long: id
        required: true
      - double: total
        required: true
  - count: orderCount
    table: orders
    foreign_key: user_id
  - ids: tagIds
    table: tags
    through: { table: user_tags, left_key: user_id, right_key: tag_id }
    element_type: long
"""

WORKED_EXAMPLE_HASH = "4f961939"


def column(name: str, type_: object, *, required: bool, **kwargs: object) -> Field:
    """A column-backed field reading the column named like the field, lowercased."""
    options = kwargs.pop("options", {})
    col = kwargs.pop("column", name.lower())
    source = ColumnSource(column=col, type=type_, nullable=not required, **kwargs)  # type: ignore[arg-type]
    if type_ == "identifier":
        options = {"analyzer": "flusso_code", **options}  # type: ignore[dict-item]
    if isinstance(type_, MapType):
        options = {"dynamic": True, **options}  # type: ignore[dict-item]
    return Field(name=name, source=source, options=options)  # type: ignore[arg-type]


def worked_example_fields(*, direction: str | None = "desc") -> tuple[Field, ...]:
    return (
        column("id", "integer", required=False),
        column("email", "keyword", required=True, transforms=("trim", "lowercase")),
        column("fullName", "text", required=False, column="full_name"),
        column("sku", "identifier", required=False),
        column("tier", "enum", required=True, variants=("free", "pro", "enterprise")),
        Field("location", GeoSource(lat="latitude", lon="longitude", nullable=True)),
        column("title", MapType(values="text"), required=False),
        column(
            "price", CustomType(postgres=("numeric",), opensearch="scaled_float"),
            required=False, options={"scaling_factor": 100},
        ),
        Field("audit", GroupSource(fields=(
            column("createdAt", "timestamp", required=True, column="created_at"),
        ))),
        Field("organization", Join(
            table="organizations", kind=BelongsTo(column="org_id"), primary_key="id",
            nullable=True, fields=(column("name", "keyword", required=True),),
        )),
        Field("orders", Join(
            table="orders", kind=HasMany(foreign_key="user_id"), primary_key="id",
            nullable=False,
            order_by=(OrderBy(column="placed_at", direction=direction),),  # type: ignore[arg-type]
            fields=(
                column("id", "long", required=True),
                column("total", "double", required=True),
            ),
        )),
        Field("orderCount", Aggregate(
            table="orders", op="count", key=ForeignKey(column="user_id"),
        )),
        Field("tagIds", Aggregate(
            table="tags", op="ids",
            key=Through(table="user_tags", left_key="user_id", right_key="tag_id"),
            element_type="long",
        )),
    )


def worked_example(**kwargs: object) -> IndexSchema:
    """The worked example (one field of every kind), as the loader converts it."""
    return IndexSchema(
        table="users",
        primary_key="id",
        soft_delete=SoftDelete(kind="column", name="deleted_at"),
        filters=(Comparison(column="kind", op="eq", values=("customer",)),),
        fields=worked_example_fields(**kwargs),  # type: ignore[arg-type]
    )


def users_with_email(*, email_required: bool) -> IndexSchema:
    """`integer: id` (required false) and `keyword: email`, keyed by `id`."""
    return IndexSchema(
        table="users",
        primary_key="id",
        fields=(
            column("id", "integer", required=False),
            column("email", "keyword", required=email_required),
        ),
    )
