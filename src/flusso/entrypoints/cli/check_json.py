"""The JSON document of `flusso check --format json`, for scripts.

`{"config", "mappings", "diagnostics", "coverage"}`: the validated config laid out like
the lock but with literal secrets masked (URLs lose only their password), the typed
mapping of every enabled index, and the database findings (both None offline).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from flusso.app.services.check import CheckResult
from flusso.domain.config import model
from flusso.domain.config.secrets import redact_password
from flusso.domain.mapping import to_json
from flusso.domain.types import IndexMapping, ResolvedField

MASK = "***"


def check_document(result: CheckResult) -> dict[str, Any]:
    """The whole document; `diagnostics` and `coverage` are None offline."""
    coverage = result.coverage
    return {
        "config": config_json(result.deployment),
        "mappings": [mapping_json(mapping) for mapping in result.mappings],
        "diagnostics": None if result.diagnostics is None else [
            {
                "index": d.index, "field": d.field, "severity": d.severity,
                "message": d.message, "fix": d.fix or None,
            }
            for d in result.diagnostics
        ],
        # The verdict's own JSON, except that `will_manage` is what this check was told.
        "coverage": None if coverage is None else {
            **coverage.to_json(), "will_manage": result.manage_publication,
        },
    }


def mapping_json(mapping: IndexMapping) -> dict[str, Any]:
    return {
        "index": mapping.index,
        "hash": mapping.hash,
        "fields": [_resolved_json(f) for f in mapping.fields],
    }


def _resolved_json(item: ResolvedField) -> dict[str, Any]:
    mapping: dict[str, Any] = {"type": item.type}
    mapping.update({key: to_json(value) for key, value in sorted(item.extra.items())})
    out: dict[str, Any] = {"name": item.name, "mapping": mapping, "nullable": item.nullable}
    if item.array:
        out["array"] = True
    if item.children:
        out["children"] = [_resolved_json(child) for child in item.children]
    return out


def _secret_json(secret: model.Secret, *, url: bool) -> dict[str, str]:
    if secret.env is not None:
        return {"env": secret.env}
    return {"value": redact_password(secret.value or "") if url else MASK}


def config_json(deployment: model.Deployment) -> dict[str, Any]:
    """The validated config laid out like the lock, with plain option values and no secrets."""
    source: dict[str, Any] = {"source_type": deployment.source.type}
    connection = deployment.source.connection
    if isinstance(connection, model.ConnectionParts):
        parts: dict[str, Any] = {
            "host": connection.host, "port": connection.port, "user": connection.user,
        }
        if connection.password is not None:
            parts["password"] = _secret_json(connection.password, url=False)
        parts["database"] = connection.database
        source["connection"] = {"parts": parts}
    elif connection is not None:
        source["connection"] = {"url": _secret_json(connection, url=True)}
    source["manage_publication"] = deployment.source.manage_publication

    indexes: dict[str, Any] = {}
    for index in sorted(deployment.indexes, key=lambda i: i.name):
        entry: dict[str, Any] = {"enabled": index.enabled}
        if index.on_error is not None:
            entry["on_error"] = index.on_error
        entry["schema"] = schema_json(index.schema)
        indexes[index.name] = entry

    server = {
        key: value
        for key, value in (
            ("public_address", deployment.server.public_address),
            ("private_address", deployment.server.private_address),
        )
        if value is not None
    }
    return {
        "source": source,
        "sinks": {
            name: _SINK_JSON[type(sink)](sink) for name, sink in sorted(deployment.sinks.items())
        },
        "indexes": indexes,
        "on_error": deployment.on_error,
        "server": server,
        "prefix": deployment.prefix,
    }


def _opensearch_json(sink: model.OpenSearchSinkConfig) -> dict[str, Any]:
    body: dict[str, Any] = {"url": _secret_json(sink.url, url=True)}
    if sink.username is not None:
        body["username"] = _secret_json(sink.username, url=False)
    if sink.password is not None:
        body["password"] = _secret_json(sink.password, url=False)
    body.update(
        tls_verify=sink.tls_verify, batch_size=sink.batch_size, max_bytes=sink.max_bytes,
        timeout_secs=sink.timeout_secs, max_retries=sink.max_retries,
    )
    if sink.pipeline is not None:
        body["pipeline"] = sink.pipeline
    body.update(
        number_of_shards=sink.number_of_shards, number_of_replicas=sink.number_of_replicas,
        refresh_interval=sink.refresh_interval, text_analysis=sink.text_analysis,
        auto_subfields=sink.auto_subfields,
    )
    return {"opensearch": body}


def _stdout_json(sink: model.StdoutSinkConfig) -> dict[str, Any]:
    return {"stdout": {"pretty": sink.pretty}}


# Each sink config class and how it is shown, tagged with its kind as in the lock.
_SINK_JSON: dict[type, Callable[[Any], dict[str, Any]]] = {
    model.OpenSearchSinkConfig: _opensearch_json,
    model.StdoutSinkConfig: _stdout_json,
}


def schema_json(schema: model.IndexSchema) -> dict[str, Any]:
    """One converted schema in the lock's layout, option values as plain JSON."""
    out: dict[str, Any] = {
        "version": schema.version, "table": schema.table, "db_schema": schema.db_schema,
    }
    if schema.primary_key is not None:
        out["primary_key"] = schema.primary_key
    if schema.soft_delete is not None:
        out["soft_delete"] = _soft_delete_json(schema.soft_delete)
    if schema.filters is not None:
        out["filters"] = _filters_json(schema.filters)
    out["fields"] = _fields_json(schema.fields)
    return out


def _fields_json(fields: Sequence[model.Field]) -> list[dict[str, Any]]:
    return [_field_json(f) for f in fields]


def _field_json(field: model.Field) -> dict[str, Any]:
    out: dict[str, Any] = {"field": field.name}
    if field.options:
        out["options"] = {key: to_json(field.options[key]) for key in sorted(field.options)}
    out["source"] = _source_json(field)
    return out


def _source_json(field: model.Field) -> dict[str, Any]:
    source = field.source
    if isinstance(source, model.ColumnSource):
        column: dict[str, Any] = {
            "column": source.column, "ty": _type_json(source.type), "nullable": source.nullable,
        }
        if source.transforms:
            column["transforms"] = list(source.transforms)
        if source.default is not None:
            column["default"] = to_json(source.default)
        if source.variants:
            column["enum_order"] = list(source.variants)
        return {"column": column}
    if isinstance(source, model.GroupSource):
        return {"group": _fields_json(source.fields)}
    if isinstance(source, model.GeoSource):
        return {"geo": {"lat": source.lat, "lon": source.lon, "nullable": source.nullable}}
    if isinstance(source, model.Join):
        return {"relation": {"join": _join_json(source)}}
    if isinstance(source, model.Aggregate):
        return {"relation": {"aggregate": _aggregate_json(source)}}
    constant: model.Constant = source
    return {"constant": to_json(constant.value)}


def _type_json(declared: model.FieldType) -> Any:
    if isinstance(declared, model.MapType):
        return {"map": {"values": _type_json(declared.values)}}
    if isinstance(declared, model.CustomType):
        return {"custom": {"postgres": list(declared.postgres), "opensearch": declared.opensearch}}
    return declared


def _through_json(through: model.Through) -> dict[str, str]:
    return {"table": through.table, "left_key": through.left_key, "right_key": through.right_key}


def _join_json(join: model.Join) -> dict[str, Any]:
    kind = join.kind
    if isinstance(kind, model.BelongsTo):
        kind_json: dict[str, Any] = {"belongs_to": {"column": kind.column}}
    elif isinstance(kind, model.HasOne):
        kind_json = {"has_one": {"foreign_key": kind.foreign_key}}
    elif isinstance(kind, model.HasMany):
        kind_json = {"has_many": {"foreign_key": kind.foreign_key}}
    else:
        kind_json = {"many_to_many": {"through": _through_json(kind.through)}}
    out: dict[str, Any] = {
        "table": join.table, "kind": kind_json, "primary_key": join.primary_key,
        "nullable": join.nullable,
    }
    if join.filters is not None:
        out["filters"] = _filters_json(join.filters)
    if join.order_by is not None:
        out["order_by"] = [
            {"column": o.column, **({"direction": o.direction} if o.direction else {})}
            for o in join.order_by
        ]
    if join.limit is not None:
        out["limit"] = join.limit
    out["fields"] = _fields_json(join.fields)
    return out


def _aggregate_json(aggregate: model.Aggregate) -> dict[str, Any]:
    op: Any
    if aggregate.op == "count":
        op = "count"
    elif aggregate.op == "ids":
        op = {"ids": {"element_type": aggregate.element_type}}
    else:
        op = {aggregate.op: aggregate.column}
    key = aggregate.key
    out: dict[str, Any] = {
        "table": aggregate.table,
        "op": op,
        "key": {"direct": key.column} if isinstance(key, model.ForeignKey)
        else {"through": _through_json(key)},
    }
    if aggregate.value_type is not None:
        out["value_type"] = aggregate.value_type
    if aggregate.filters is not None:
        out["filters"] = _filters_json(aggregate.filters)
    return out


def _filters_json(filters: Sequence[model.Filter]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in filters:
        if isinstance(item, model.RawFilter):
            out.append({"raw": {"raw": item.raw}})
        elif isinstance(item, model.NullCheck):
            out.append({"null_check": {"column": item.column, "op": item.op}})
        elif isinstance(item, model.Comparison):
            value: dict[str, Any]
            if item.op in ("in", "not_in"):
                value = {"list": list(item.values)}
            elif item.op == "between":
                value = {"range": list(item.values)}
            else:
                value = {"single": item.values[0]}
            out.append({"value_op": {"column": item.column, "op": item.op, "value": value}})
    return out


def _soft_delete_json(soft_delete: model.SoftDelete) -> dict[str, Any]:
    body: dict[str, Any] = {soft_delete.kind: soft_delete.name}
    if soft_delete.when is not None:
        body["when"] = _filters_json(soft_delete.when)
    return {soft_delete.kind: body}

