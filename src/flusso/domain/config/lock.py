"""Encodes a `Deployment` as the compiled lock (`flusso.lock`) and decodes it back.

The lock is canonical JSON — sorted keys, two-space indent, a trailing newline —
so a committed lock reads as a diff. Its layout follows upstream's in spirit:
schemas inlined, enums externally tagged in snake_case, values in upstream's
tagged form, secrets as `{"env": NAME}` / `{"value": literal}`. Differences:
`indexes` is a list (file order is part of the deployment), aggregates carry
`op`, `column`, `value_type` and `element_type` as written (the model keeps
them), and server addresses are strings. `schema_path` is not stored: a decoded
deployment has `schema_path=None`. An environment value is never written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flusso.domain.config.model import (
    Aggregate,
    AwsSigV4,
    BelongsTo,
    ColumnSource,
    Comparison,
    ConnectionParts,
    Constant,
    CustomType,
    Deployment,
    FieldType,
    Filter,
    ForeignKey,
    GeoSource,
    GroupSource,
    HasMany,
    HasOne,
    IndexConfig,
    IndexSchema,
    Join,
    ManyToMany,
    MapType,
    NullCheck,
    OpenSearchSinkConfig,
    OrderBy,
    RawFilter,
    Secret,
    ServerConfig,
    SinkConfig,
    SinkSecurity,
    SoftDelete,
    Source,
    SourceConfig,
    StdoutSinkConfig,
    Through,
    Value,
)
from flusso.domain.config.model import Field as SchemaField
from flusso.domain.errors import ConfigError

FORMAT_VERSION = 1

JSON = Any  # a JSON-able value: the tree below is checked by hand while decoding

# ---------------------------------------------------------------------------
# File shape (pydantic): envelope, source, sinks, indexes, server
# ---------------------------------------------------------------------------


class _Lock(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _SecretLock(_Lock):
    env: str | None = None
    value: str | None = None
    file: str | None = None


class _PartsLock(_Lock):
    host: str
    port: int
    user: str
    password: _SecretLock | None = None
    database: str


class _ConnectionLock(_Lock):
    url: _SecretLock | None = None
    parts: _PartsLock | None = None


class _SourceLock(_Lock):
    source_type: Literal["postgres"] = "postgres"
    connection: _ConnectionLock | None = None
    manage_publication: bool = True


class _AwsSigV4Lock(_Lock):
    region: str
    service: Literal["es", "aoss"]


class _OpenSearchLock(_Lock):
    url: _SecretLock
    username: _SecretLock | None = None
    password: _SecretLock | None = None
    tls_verify: bool
    batch_size: int
    max_bytes: int
    timeout_secs: int
    max_retries: int
    pipeline: str | None = None
    number_of_shards: int
    number_of_replicas: int
    refresh_interval: str
    text_analysis: Literal["builtin", "icu"]
    auto_subfields: bool
    # Connection security: omitted when at their defaults; secrets only as references.
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_verify_hostname: bool = True
    api_key: _SecretLock | None = None
    bearer_token: _SecretLock | None = None
    aws_sigv4: _AwsSigV4Lock | None = None


class _StdoutLock(_Lock):
    pretty: bool


class _SinkLock(_Lock):
    opensearch: _OpenSearchLock | None = None
    stdout: _StdoutLock | None = None


class _IndexLock(_Lock):
    name: str
    enabled: bool
    on_error: Literal["stop", "skip"] | None = None
    schema_: dict[str, JSON] = Field(alias="schema")


class _ServerLock(_Lock):
    public_address: str | None = None
    private_address: str | None = None


class _ConfigLock(_Lock):
    source: _SourceLock
    sinks: dict[str, _SinkLock] = {}
    indexes: list[_IndexLock] = []
    on_error: Literal["stop", "skip"] = "stop"
    prefix: str = ""
    server: _ServerLock = _ServerLock()


class _LockFile(_Lock):
    format_version: int
    flusso_version: str
    config: _ConfigLock


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def encode_lock(deployment: Deployment, *, flusso_version: str) -> str:
    """The lock text for `deployment`: canonical JSON, never an environment value."""
    config = {
        "source": _encode_source(deployment.source),
        "sinks": {name: _encode_sink(sink) for name, sink in sorted(deployment.sinks.items())},
        "indexes": [_encode_index(index) for index in deployment.indexes],
        "on_error": deployment.on_error,
        "prefix": deployment.prefix,
        "server": _drop_none(
            {
                "public_address": deployment.server.public_address,
                "private_address": deployment.server.private_address,
            }
        ),
    }
    document = {
        "format_version": FORMAT_VERSION,
        "flusso_version": flusso_version,
        "config": config,
    }
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def decode_lock(text: str, *, path: str) -> Deployment:
    """The deployment stored in a lock; refuses other format versions and malformed files."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _malformed(path, f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(raw, dict):
        raise _malformed(path, "expected a JSON object at the top level")
    version = raw.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version != FORMAT_VERSION:
        raise ConfigError(
            f"compiled config format version {version} is not supported by this build "
            f"(expected {FORMAT_VERSION}); recompile with a matching flusso",
            hint=f"run `flusso build` to rewrite {path}",
        )
    try:
        lock = _LockFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise _malformed(path, f"{where}: {first['msg']}") from None
    try:
        return _decode_config(lock.config)
    except _Malformed as exc:
        raise _malformed(path, str(exc)) from None


# ---------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------


def _drop_none(mapping: dict[str, JSON]) -> dict[str, JSON]:
    return {k: v for k, v in mapping.items() if v is not None}


def _encode_secret(secret: Secret | None) -> JSON:
    if secret is None:
        return None
    if secret.env is not None:
        return {"env": secret.env}
    if secret.file is not None:
        return {"file": secret.file}
    return {"value": secret.value or ""}


def _encode_security(security: SinkSecurity) -> dict[str, JSON]:
    """The security keys that differ from their defaults (none for a plain sink)."""
    aws = security.aws_sigv4
    return _drop_none(
        {
            "tls_ca_file": security.tls_ca_file,
            "tls_cert_file": security.tls_cert_file,
            "tls_key_file": security.tls_key_file,
            "tls_verify_hostname": None if security.tls_verify_hostname else False,
            "api_key": _encode_secret(security.api_key),
            "bearer_token": _encode_secret(security.bearer_token),
            "aws_sigv4": None if aws is None else {"region": aws.region, "service": aws.service},
        }
    )


def _encode_source(source: SourceConfig) -> JSON:
    connection = source.connection
    encoded: JSON = None
    if isinstance(connection, Secret):
        encoded = {"url": _encode_secret(connection)}
    elif isinstance(connection, ConnectionParts):
        encoded = {
            "parts": _drop_none(
                {
                    "host": connection.host,
                    "port": connection.port,
                    "user": connection.user,
                    "password": _encode_secret(connection.password),
                    "database": connection.database,
                }
            )
        }
    return _drop_none(
        {
            "source_type": source.type,
            "connection": encoded,
            "manage_publication": source.manage_publication,
        }
    )


def _encode_sink(sink: SinkConfig) -> JSON:
    if isinstance(sink, StdoutSinkConfig):
        return {"stdout": {"pretty": sink.pretty}}
    return {
        "opensearch": _drop_none(
            {
                "url": _encode_secret(sink.url),
                "username": _encode_secret(sink.username),
                "password": _encode_secret(sink.password),
                "tls_verify": sink.tls_verify,
                "batch_size": sink.batch_size,
                "max_bytes": sink.max_bytes,
                "timeout_secs": sink.timeout_secs,
                "max_retries": sink.max_retries,
                "pipeline": sink.pipeline,
                "number_of_shards": sink.number_of_shards,
                "number_of_replicas": sink.number_of_replicas,
                "refresh_interval": sink.refresh_interval,
                "text_analysis": sink.text_analysis,
                "auto_subfields": sink.auto_subfields,
                **_encode_security(sink.security),
            }
        )
    }


def _encode_index(index: IndexConfig) -> JSON:
    return _drop_none(
        {
            "name": index.name,
            "enabled": index.enabled,
            "on_error": index.on_error,
            "schema": _encode_schema(index.schema),
        }
    )


def _encode_schema(schema: IndexSchema) -> JSON:
    return _drop_none(
        {
            "version": schema.version,
            "table": schema.table,
            "db_schema": schema.db_schema,
            "primary_key": schema.primary_key,
            "soft_delete": _encode_soft_delete(schema.soft_delete),
            "filters": _encode_filters(schema.filters),
            "fields": [_encode_field(f) for f in schema.fields],
        }
    )


def _encode_soft_delete(soft_delete: SoftDelete | None) -> JSON:
    if soft_delete is None:
        return None
    body = _drop_none({soft_delete.kind: soft_delete.name, "when": _encode_filters(soft_delete.when)})
    return {soft_delete.kind: body}


def _encode_filters(filters: tuple[Filter, ...] | None) -> JSON:
    return None if filters is None else [_encode_filter(f) for f in filters]


def _encode_filter(item: Filter) -> JSON:
    if isinstance(item, RawFilter):
        return {"raw": {"raw": item.raw}}
    if isinstance(item, NullCheck):
        return {"null_check": {"column": item.column, "op": item.op}}
    value: JSON
    if item.op in ("in", "not_in"):
        value = {"list": list(item.values)}
    elif item.op == "between":
        value = {"range": list(item.values)}
    else:
        value = {"single": item.values[0] if item.values else ""}
    return {"value_op": {"column": item.column, "op": item.op, "value": value}}


def _encode_field(item: SchemaField) -> JSON:
    return _drop_none(
        {
            "field": item.name,
            "options": {k: _encode_value(v) for k, v in item.options.items()} or None,
            "source": _encode_source_of(item.source),
        }
    )


def _encode_source_of(source: Source) -> JSON:
    if isinstance(source, ColumnSource):
        return {
            "column": _drop_none(
                {
                    "column": source.column,
                    "ty": _encode_type(source.type),
                    "nullable": source.nullable,
                    "transforms": list(source.transforms) or None,
                    "default": None if source.default is None else _encode_value(source.default),
                    "variants": list(source.variants) or None,
                }
            )
        }
    if isinstance(source, GroupSource):
        return {"group": [_encode_field(f) for f in source.fields]}
    if isinstance(source, GeoSource):
        return {"geo": {"lat": source.lat, "lon": source.lon, "nullable": source.nullable}}
    if isinstance(source, Join):
        return {"relation": {"join": _encode_join(source)}}
    if isinstance(source, Aggregate):
        return {"relation": {"aggregate": _encode_aggregate(source)}}
    return {"constant": _encode_value(source.value)}


def _encode_join(join: Join) -> JSON:
    kind = join.kind
    encoded_kind: JSON
    if isinstance(kind, BelongsTo):
        encoded_kind = {"belongs_to": kind.column}
    elif isinstance(kind, HasOne):
        encoded_kind = {"has_one": kind.foreign_key}
    elif isinstance(kind, HasMany):
        encoded_kind = {"has_many": kind.foreign_key}
    else:
        encoded_kind = {"many_to_many": _encode_through(kind.through)}
    return _drop_none(
        {
            "table": join.table,
            "kind": encoded_kind,
            "primary_key": join.primary_key,
            "nullable": join.nullable,
            "filters": _encode_filters(join.filters),
            "order_by": None
            if join.order_by is None
            else [_drop_none({"column": o.column, "direction": o.direction}) for o in join.order_by],
            "limit": join.limit,
            "fields": [_encode_field(f) for f in join.fields],
        }
    )


def _encode_through(through: Through) -> JSON:
    return {"table": through.table, "left_key": through.left_key, "right_key": through.right_key}


def _encode_aggregate(aggregate: Aggregate) -> JSON:
    key = aggregate.key
    encoded_key = (
        {"direct": key.column} if isinstance(key, ForeignKey) else {"through": _encode_through(key)}
    )
    return _drop_none(
        {
            "table": aggregate.table,
            "op": aggregate.op,
            "key": encoded_key,
            "column": aggregate.column,
            "value_type": aggregate.value_type,
            "element_type": aggregate.element_type,
            "filters": _encode_filters(aggregate.filters),
        }
    )


def _encode_type(ty: FieldType) -> JSON:
    if isinstance(ty, MapType):
        return {"map": {"values": ty.values}}
    if isinstance(ty, CustomType):
        return {"custom": {"postgres": list(ty.postgres), "opensearch": ty.opensearch}}
    return ty


def _encode_value(value: Value) -> JSON:
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return {"Bool": value}
    if isinstance(value, int):
        return {"BigInt": value}
    if isinstance(value, Decimal):
        return {"Decimal": str(value)}
    if isinstance(value, str):
        return {"String": value}
    if isinstance(value, list):
        return {"Array": [_encode_value(v) for v in value]}
    return {"Map": {k: _encode_value(v) for k, v in value.items()}}


# ---------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------


class _Malformed(ValueError):
    """A lock that parsed as JSON but does not hold a deployment."""


def _malformed(path: str, reason: str) -> ConfigError:
    return ConfigError(
        f"cannot read compiled lock {path}: {reason}",
        hint="rebuild it with `flusso build` (or run without --locked to recompile)",
    )


def _decode_config(config: _ConfigLock) -> Deployment:
    return Deployment(
        source=_decode_source(config.source),
        sinks={name: _decode_sink(name, sink) for name, sink in sorted(config.sinks.items())},
        indexes=tuple(_decode_index(index) for index in config.indexes),
        on_error=config.on_error,
        prefix=config.prefix,
        server=ServerConfig(
            public_address=config.server.public_address,
            private_address=config.server.private_address,
        ),
    )


def _decode_secret(secret: _SecretLock, where: str) -> Secret:
    if sum(part is not None for part in (secret.env, secret.value, secret.file)) != 1:
        raise _Malformed(f"{where}: expected exactly one of `env`, `value` or `file`")
    return Secret(env=secret.env, value=secret.value, file=secret.file)


def _decode_security(body: _OpenSearchLock, where: str) -> SinkSecurity:
    aws = body.aws_sigv4
    for key in ("api_key", "bearer_token"):
        secret = getattr(body, key)
        if secret is not None and secret.value is not None:
            raise _Malformed(f"{where}.{key}: a secret is kept only as an `env` or `file` reference")
    return SinkSecurity(
        tls_ca_file=body.tls_ca_file,
        tls_cert_file=body.tls_cert_file,
        tls_key_file=body.tls_key_file,
        tls_verify_hostname=body.tls_verify_hostname,
        api_key=None if body.api_key is None else _decode_secret(body.api_key, where),
        bearer_token=None
        if body.bearer_token is None
        else _decode_secret(body.bearer_token, where),
        aws_sigv4=None if aws is None else AwsSigV4(region=aws.region, service=aws.service),
    )


def _decode_source(source: _SourceLock) -> SourceConfig:
    connection: Secret | ConnectionParts | None = None
    if source.connection is not None:
        url, parts = source.connection.url, source.connection.parts
        if (url is None) == (parts is None):
            raise _Malformed("source.connection: expected exactly one of `url` or `parts`")
        if url is not None:
            connection = _decode_secret(url, "source.connection.url")
        elif parts is not None:
            connection = ConnectionParts(
                database=parts.database,
                host=parts.host,
                port=parts.port,
                user=parts.user,
                password=None
                if parts.password is None
                else _decode_secret(parts.password, "source.connection.parts.password"),
            )
    return SourceConfig(connection=connection, manage_publication=source.manage_publication)


def _decode_sink(name: str, sink: _SinkLock) -> SinkConfig:
    where = f"sinks.{name}"
    body = sink.opensearch
    if sink.stdout is not None and body is None:
        return StdoutSinkConfig(pretty=sink.stdout.pretty)
    if body is None or sink.stdout is not None:
        raise _Malformed(f"{where}: expected exactly one of `opensearch` or `stdout`")
    return OpenSearchSinkConfig(
        url=_decode_secret(body.url, f"{where}.url"),
        username=None if body.username is None else _decode_secret(body.username, where),
        password=None if body.password is None else _decode_secret(body.password, where),
        tls_verify=body.tls_verify,
        batch_size=body.batch_size,
        max_bytes=body.max_bytes,
        timeout_secs=body.timeout_secs,
        max_retries=body.max_retries,
        pipeline=body.pipeline,
        number_of_shards=body.number_of_shards,
        number_of_replicas=body.number_of_replicas,
        refresh_interval=body.refresh_interval,
        text_analysis=body.text_analysis,
        auto_subfields=body.auto_subfields,
        security=_decode_security(body, where),
    )


def _decode_index(index: _IndexLock) -> IndexConfig:
    where = f"indexes.{index.name}.schema"
    try:
        schema = _decode_schema(index.schema_, where)
    except (KeyError, TypeError, AttributeError, IndexError, InvalidOperation) as exc:
        raise _Malformed(f"{where}: unexpected shape ({type(exc).__name__}: {exc})") from None
    return IndexConfig(
        name=index.name, enabled=index.enabled, schema=schema, on_error=index.on_error
    )


# The schema tree is checked by `_get` (typed reads) and `_tagged` (one-key
# objects); a shape they do not expect surfaces as _Malformed via _decode_index.


def _get(body: Mapping[str, JSON], key: str, kind: type | tuple[type, ...], where: str) -> JSON:
    value = body[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise _Malformed(f"{where}.{key}: unexpected value {value!r}")
    return value


def _opt(body: Mapping[str, JSON], key: str, kind: type, where: str) -> JSON:
    return _get(body, key, kind, where) if key in body else None


def _tagged(value: JSON, where: str) -> tuple[str, JSON]:
    if not isinstance(value, dict) or len(value) != 1:
        raise _Malformed(f"{where}: expected an object with exactly one key")
    return next(iter(value.items()))


def _strings(value: JSON, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Malformed(f"{where}: expected a list of strings")
    return tuple(value)


def _decode_schema(body: dict[str, JSON], where: str) -> IndexSchema:
    soft_delete = None
    if "soft_delete" in body:
        kind, inner = _tagged(body["soft_delete"], f"{where}.soft_delete")
        if kind not in ("column", "field"):
            raise _Malformed(f"{where}.soft_delete: unknown kind `{kind}`")
        soft_delete = SoftDelete(
            kind=kind,
            name=_get(inner, kind, str, f"{where}.soft_delete"),
            when=_decode_filters(inner.get("when"), f"{where}.soft_delete.when"),
        )
    return IndexSchema(
        table=_get(body, "table", str, where),
        fields=_decode_fields(body["fields"], f"{where}.fields"),
        db_schema=_get(body, "db_schema", str, where),
        primary_key=_opt(body, "primary_key", str, where),
        soft_delete=soft_delete,
        filters=_decode_filters(body.get("filters"), f"{where}.filters"),
        version=_get(body, "version", int, where),
    )


def _decode_filters(value: JSON, where: str) -> tuple[Filter, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise _Malformed(f"{where}: expected a list of filters")
    return tuple(_decode_filter(item, f"{where}[{i}]") for i, item in enumerate(value))


def _decode_filter(value: JSON, where: str) -> Filter:
    kind, body = _tagged(value, where)
    if kind == "raw":
        return RawFilter(raw=_get(body, "raw", str, where))
    if kind == "null_check":
        op = _get(body, "op", str, where)
        if op not in ("is_null", "is_not_null"):
            raise _Malformed(f"{where}.op: unknown null-check op `{op}`")
        return NullCheck(column=_get(body, "column", str, where), op=op)
    if kind == "value_op":
        shape, operand = _tagged(body["value"], f"{where}.value")
        if shape == "single" and isinstance(operand, str):
            values: tuple[str, ...] = (operand,)
        elif shape in ("list", "range"):
            values = _strings(operand, f"{where}.value.{shape}")
        else:
            raise _Malformed(f"{where}.value: unknown value shape `{shape}`")
        return Comparison(
            column=_get(body, "column", str, where), op=_get(body, "op", str, where), values=values
        )
    raise _Malformed(f"{where}: unknown filter kind `{kind}`")


def _decode_fields(value: JSON, where: str) -> tuple[SchemaField, ...]:
    if not isinstance(value, list):
        raise _Malformed(f"{where}: expected a list of fields")
    return tuple(_decode_field(item, f"{where}[{i}]") for i, item in enumerate(value))


def _decode_field(body: JSON, where: str) -> SchemaField:
    options = _opt(body, "options", dict, where) or {}
    return SchemaField(
        name=_get(body, "field", str, where),
        source=_decode_source_of(body["source"], f"{where}.source"),
        options={k: _decode_value(v, f"{where}.options.{k}") for k, v in options.items()},
    )


def _decode_source_of(value: JSON, where: str) -> Source:
    kind, body = _tagged(value, where)
    if kind == "column":
        return ColumnSource(
            column=_get(body, "column", str, where),
            type=_decode_type(body["ty"], f"{where}.ty"),
            nullable=_get(body, "nullable", bool, where),
            transforms=_strings(body.get("transforms", []), f"{where}.transforms"),  # type: ignore[arg-type]
            default=_decode_value(body["default"], f"{where}.default") if "default" in body else None,
            variants=_strings(body.get("variants", []), f"{where}.variants"),
        )
    if kind == "group":
        return GroupSource(fields=_decode_fields(body, f"{where}.group"))
    if kind == "geo":
        return GeoSource(
            lat=_get(body, "lat", str, where),
            lon=_get(body, "lon", str, where),
            nullable=_get(body, "nullable", bool, where),
        )
    if kind == "constant":
        return Constant(value=_decode_value(body, f"{where}.constant"))
    if kind == "relation":
        relation, inner = _tagged(body, f"{where}.relation")
        if relation == "join":
            return _decode_join(inner, f"{where}.relation.join")
        if relation == "aggregate":
            return _decode_aggregate(inner, f"{where}.relation.aggregate")
    raise _Malformed(f"{where}: unknown source kind `{kind}`")


def _decode_through(body: JSON, where: str) -> Through:
    return Through(
        table=_get(body, "table", str, where),
        left_key=_get(body, "left_key", str, where),
        right_key=_get(body, "right_key", str, where),
    )


def _decode_kind(value: JSON, where: str) -> BelongsTo | HasOne | HasMany | ManyToMany:
    verb, key = _tagged(value, where)
    if verb == "many_to_many":
        return ManyToMany(through=_decode_through(key, f"{where}.many_to_many"))
    if verb == "belongs_to" and isinstance(key, str):
        return BelongsTo(column=key)
    if verb == "has_one" and isinstance(key, str):
        return HasOne(foreign_key=key)
    if verb == "has_many" and isinstance(key, str):
        return HasMany(foreign_key=key)
    raise _Malformed(f"{where}: unexpected join kind `{verb}`")


def _decode_join(body: JSON, where: str) -> Join:
    kind = _decode_kind(body["kind"], f"{where}.kind")
    order_by = None
    if "order_by" in body:
        order_by = tuple(
            OrderBy(column=_get(o, "column", str, where), direction=_opt(o, "direction", str, where))
            for o in _get(body, "order_by", list, where)
        )
    return Join(
        table=_get(body, "table", str, where),
        kind=kind,
        primary_key=_get(body, "primary_key", str, where),
        nullable=_get(body, "nullable", bool, where),
        fields=_decode_fields(body["fields"], f"{where}.fields"),
        filters=_decode_filters(body.get("filters"), f"{where}.filters"),
        order_by=order_by,
        limit=_opt(body, "limit", int, where),
    )


def _decode_aggregate(body: JSON, where: str) -> Aggregate:
    shape, key_body = _tagged(body["key"], f"{where}.key")
    if shape == "direct" and isinstance(key_body, str):
        key: ForeignKey | Through = ForeignKey(column=key_body)
    elif shape == "through":
        key = _decode_through(key_body, f"{where}.key.through")
    else:
        raise _Malformed(f"{where}.key: unexpected key shape `{shape}`")
    op = _get(body, "op", str, where)
    if op not in ("count", "sum", "avg", "min", "max", "ids"):
        raise _Malformed(f"{where}.op: unknown aggregate op `{op}`")
    return Aggregate(
        table=_get(body, "table", str, where),
        op=op,
        key=key,
        column=_opt(body, "column", str, where),
        value_type=_opt(body, "value_type", str, where),
        element_type=_opt(body, "element_type", str, where),
        filters=_decode_filters(body.get("filters"), f"{where}.filters"),
    )


def _decode_type(value: JSON, where: str) -> FieldType:
    if isinstance(value, str):
        return value
    kind, body = _tagged(value, where)
    if kind == "map":
        return MapType(values=_get(body, "values", str, where))
    if kind == "custom":
        return CustomType(
            postgres=_strings(body["postgres"], f"{where}.postgres"),
            opensearch=_get(body, "opensearch", str, where),
        )
    raise _Malformed(f"{where}: unknown type `{kind}`")


def _decode_value(value: JSON, where: str) -> Value:
    if value == "Null":
        return None
    tag, body = _tagged(value, where)
    if tag == "Bool" and isinstance(body, bool):
        return body
    if tag == "BigInt" and isinstance(body, int) and not isinstance(body, bool):
        return body
    if tag == "Decimal" and isinstance(body, str):
        return Decimal(body)
    if tag == "String" and isinstance(body, str):
        return body
    if tag == "Array" and isinstance(body, list):
        return [_decode_value(v, f"{where}[{i}]") for i, v in enumerate(body)]
    if tag == "Map" and isinstance(body, dict):
        return {k: _decode_value(v, f"{where}.{k}") for k, v in body.items()}
    raise _Malformed(f"{where}: unexpected value {value!r}")
