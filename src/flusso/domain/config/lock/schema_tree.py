"""The lock's encoding of one index schema: fields and their sources, joins, aggregates,
filters and soft delete, in upstream's tagged layout. Encoding and decoding of each part
sit side by side so a change to the model touches one place."""

from __future__ import annotations

from flusso.domain.config import model
from flusso.domain.config.lock.codec import (
    JSON,
    Malformed,
    decode_type,
    decode_value,
    drop_none,
    encode_type,
    encode_value,
    get,
    mapping,
    opt,
    strings,
    tagged,
)

# -- the schema ----------------------------------------------------------------------------


def encode_schema(schema: model.IndexSchema) -> JSON:
    return drop_none({
        "version": schema.version,
        "table": schema.table,
        "db_schema": schema.db_schema,
        "primary_key": schema.primary_key,
        "soft_delete": _encode_soft_delete(schema.soft_delete),
        "filters": _encode_filters(schema.filters),
        "fields": _encode_fields(schema.fields),
    })


def decode_schema(body: JSON, where: str) -> model.IndexSchema:
    body = mapping(body, where)
    soft_delete = None
    if "soft_delete" in body:
        soft_delete = _decode_soft_delete(body["soft_delete"], f"{where}.soft_delete")
    return model.IndexSchema(
        table=get(body, "table", str, where),
        fields=_decode_fields(get(body, "fields", list, where), f"{where}.fields"),
        db_schema=get(body, "db_schema", str, where),
        primary_key=opt(body, "primary_key", str, where),
        soft_delete=soft_delete,
        filters=_decode_filters(body.get("filters"), f"{where}.filters"),
        version=get(body, "version", int, where),
    )


def _encode_soft_delete(soft_delete: model.SoftDelete | None) -> JSON:
    if soft_delete is None:
        return None
    body = drop_none({soft_delete.kind: soft_delete.name,
                      "when": _encode_filters(soft_delete.when)})
    return {soft_delete.kind: body}


def _decode_soft_delete(value: JSON, where: str) -> model.SoftDelete:
    kind, inner = tagged(value, where)
    if kind not in ("column", "field"):
        raise Malformed(f"{where}: unknown kind `{kind}`")
    inner = mapping(inner, where)
    return model.SoftDelete(
        kind=kind,
        name=get(inner, kind, str, where),
        when=_decode_filters(inner.get("when"), f"{where}.when"),
    )


# -- filters -------------------------------------------------------------------------------


def _encode_filters(filters: tuple[model.Filter, ...] | None) -> JSON:
    return None if filters is None else [_encode_filter(f) for f in filters]


def _decode_filters(value: JSON, where: str) -> tuple[model.Filter, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise Malformed(f"{where}: expected a list of filters")
    return tuple(_decode_filter(item, f"{where}[{i}]") for i, item in enumerate(value))


def _encode_filter(item: model.Filter) -> JSON:
    if isinstance(item, model.RawFilter):
        return {"raw": {"raw": item.raw}}
    if isinstance(item, model.NullCheck):
        return {"null_check": {"column": item.column, "op": item.op}}
    value: JSON
    if item.op in ("in", "not_in"):
        value = {"list": list(item.values)}
    elif item.op == "between":
        value = {"range": list(item.values)}
    else:
        value = {"single": item.values[0] if item.values else ""}
    return {"value_op": {"column": item.column, "op": item.op, "value": value}}


def _decode_filter(value: JSON, where: str) -> model.Filter:
    kind, body = tagged(value, where)
    body = mapping(body, f"{where}.{kind}")
    if kind == "raw":
        return model.RawFilter(raw=get(body, "raw", str, where))
    if kind == "null_check":
        op = get(body, "op", str, where)
        if op not in model.NULL_OPS:
            raise Malformed(f"{where}.op: unknown null-check op `{op}`")
        return model.NullCheck(column=get(body, "column", str, where), op=op)
    if kind == "value_op":
        shape, operand = tagged(get(body, "value", dict, where), f"{where}.value")
        if shape == "single" and isinstance(operand, str):
            values: tuple[str, ...] = (operand,)
        elif shape in ("list", "range"):
            values = strings(operand, f"{where}.value.{shape}")
        else:
            raise Malformed(f"{where}.value: unknown value shape `{shape}`")
        return model.Comparison(
            column=get(body, "column", str, where), op=get(body, "op", str, where), values=values
        )
    raise Malformed(f"{where}: unknown filter kind `{kind}`")


# -- fields and their sources ----------------------------------------------------------------


def _encode_fields(fields: tuple[model.Field, ...]) -> JSON:
    return [
        drop_none({
            "field": item.name,
            "options": {k: encode_value(v) for k, v in item.options.items()} or None,
            "source": _encode_source(item.source),
        })
        for item in fields
    ]


def _decode_fields(value: JSON, where: str) -> tuple[model.Field, ...]:
    if not isinstance(value, list):
        raise Malformed(f"{where}: expected a list of fields")
    return tuple(_decode_field(item, f"{where}[{i}]") for i, item in enumerate(value))


def _decode_field(body: JSON, where: str) -> model.Field:
    body = mapping(body, where)
    options = opt(body, "options", dict, where) or {}
    return model.Field(
        name=get(body, "field", str, where),
        source=_decode_source(get(body, "source", dict, where), f"{where}.source"),
        options={k: decode_value(v, f"{where}.options.{k}") for k, v in options.items()},
    )


def _encode_source(source: model.Source) -> JSON:
    if isinstance(source, model.ColumnSource):
        return {"column": drop_none({
            "column": source.column,
            "ty": encode_type(source.type),
            "nullable": source.nullable,
            "transforms": list(source.transforms) or None,
            "default": None if source.default is None else encode_value(source.default),
            "variants": list(source.variants) or None,
        })}
    if isinstance(source, model.GroupSource):
        return {"group": _encode_fields(source.fields)}
    if isinstance(source, model.GeoSource):
        return {"geo": {"lat": source.lat, "lon": source.lon, "nullable": source.nullable}}
    if isinstance(source, model.Join):
        return {"relation": {"join": _encode_join(source)}}
    if isinstance(source, model.Aggregate):
        return {"relation": {"aggregate": _encode_aggregate(source)}}
    return {"constant": encode_value(source.value)}


def _decode_source(value: JSON, where: str) -> model.Source:
    kind, body = tagged(value, where)
    if kind == "column":
        return _decode_column(body, where)
    if kind == "group":
        return model.GroupSource(fields=_decode_fields(body, f"{where}.group"))
    if kind == "geo":
        return model.GeoSource(
            lat=get(body, "lat", str, where),
            lon=get(body, "lon", str, where),
            nullable=get(body, "nullable", bool, where),
        )
    if kind == "constant":
        return model.Constant(value=decode_value(body, f"{where}.constant"))
    if kind == "relation":
        relation, inner = tagged(body, f"{where}.relation")
        if relation == "join":
            return _decode_join(inner, f"{where}.relation.join")
        if relation == "aggregate":
            return _decode_aggregate(inner, f"{where}.relation.aggregate")
    raise Malformed(f"{where}: unknown source kind `{kind}`")


def _decode_column(body: JSON, where: str) -> model.ColumnSource:
    body = mapping(body, f"{where}.column")
    return model.ColumnSource(
        column=get(body, "column", str, where),
        type=decode_type(get(body, "ty", (str, dict), where), f"{where}.ty"),
        nullable=get(body, "nullable", bool, where),
        transforms=strings(body.get("transforms", []), f"{where}.transforms"),
        default=decode_value(body["default"], f"{where}.default") if "default" in body else None,
        variants=strings(body.get("variants", []), f"{where}.variants"),
    )


# -- relations -------------------------------------------------------------------------------


def _items(values: list[JSON], where: str) -> list[tuple[JSON, str]]:
    return [(value, f"{where}[{i}]") for i, value in enumerate(values)]


def _encode_through(through: model.Through) -> JSON:
    return {"table": through.table, "left_key": through.left_key, "right_key": through.right_key}


def _decode_through(body: JSON, where: str) -> model.Through:
    body = mapping(body, where)
    return model.Through(
        table=get(body, "table", str, where),
        left_key=get(body, "left_key", str, where),
        right_key=get(body, "right_key", str, where),
    )


def _encode_kind(kind: model.JoinKind) -> JSON:
    if isinstance(kind, model.BelongsTo):
        return {"belongs_to": kind.column}
    if isinstance(kind, model.HasOne):
        return {"has_one": kind.foreign_key}
    if isinstance(kind, model.HasMany):
        return {"has_many": kind.foreign_key}
    return {"many_to_many": _encode_through(kind.through)}


def _decode_kind(value: JSON, where: str) -> model.JoinKind:
    verb, key = tagged(value, where)
    if verb == "many_to_many":
        return model.ManyToMany(through=_decode_through(key, f"{where}.many_to_many"))
    if verb == "belongs_to" and isinstance(key, str):
        return model.BelongsTo(column=key)
    if verb == "has_one" and isinstance(key, str):
        return model.HasOne(foreign_key=key)
    if verb == "has_many" and isinstance(key, str):
        return model.HasMany(foreign_key=key)
    raise Malformed(f"{where}: unexpected join kind `{verb}`")


def _encode_join(join: model.Join) -> JSON:
    order_by = None if join.order_by is None else [
        drop_none({"column": o.column, "direction": o.direction}) for o in join.order_by
    ]
    return drop_none({
        "table": join.table,
        "kind": _encode_kind(join.kind),
        "primary_key": join.primary_key,
        "nullable": join.nullable,
        "filters": _encode_filters(join.filters),
        "order_by": order_by,
        "limit": join.limit,
        "fields": _encode_fields(join.fields),
    })


def _decode_join(body: JSON, where: str) -> model.Join:
    body = mapping(body, where)
    kind = _decode_kind(get(body, "kind", dict, where), f"{where}.kind")
    order_by = None
    if "order_by" in body:
        order_by = tuple(
            model.OrderBy(
                column=get(o, "column", str, here), direction=opt(o, "direction", str, here)
            )
            for o, here in _items(get(body, "order_by", list, where), f"{where}.order_by")
        )
    return model.Join(
        table=get(body, "table", str, where),
        kind=kind,
        primary_key=get(body, "primary_key", str, where),
        nullable=get(body, "nullable", bool, where),
        fields=_decode_fields(get(body, "fields", list, where), f"{where}.fields"),
        filters=_decode_filters(body.get("filters"), f"{where}.filters"),
        order_by=order_by,
        limit=opt(body, "limit", int, where),
    )


def _encode_aggregate(aggregate: model.Aggregate) -> JSON:
    key = aggregate.key
    if isinstance(key, model.ForeignKey):
        encoded_key = {"direct": key.column}
    else:
        encoded_key = {"through": _encode_through(key)}
    return drop_none({
        "table": aggregate.table,
        "op": aggregate.op,
        "key": encoded_key,
        "column": aggregate.column,
        "value_type": aggregate.value_type,
        "element_type": aggregate.element_type,
        "filters": _encode_filters(aggregate.filters),
    })


def _decode_aggregate(body: JSON, where: str) -> model.Aggregate:
    body = mapping(body, where)
    shape, key_body = tagged(get(body, "key", dict, where), f"{where}.key")
    if shape == "direct" and isinstance(key_body, str):
        key: model.ForeignKey | model.Through = model.ForeignKey(column=key_body)
    elif shape == "through":
        key = _decode_through(key_body, f"{where}.key.through")
    else:
        raise Malformed(f"{where}.key: unexpected key shape `{shape}`")
    op = get(body, "op", str, where)
    if op not in model.AGGREGATE_OPS:
        raise Malformed(f"{where}.op: unknown aggregate op `{op}`")
    return model.Aggregate(
        table=get(body, "table", str, where),
        op=op,
        key=key,
        column=opt(body, "column", str, where),
        value_type=opt(body, "value_type", str, where),
        element_type=opt(body, "element_type", str, where),
        filters=_decode_filters(body.get("filters"), f"{where}.filters"),
    )
