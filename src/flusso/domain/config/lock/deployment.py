"""The lock's envelope and deployment level: the file's shape (pydantic), and the source,
sinks, server and index entries around each schema. `schema_path` is not stored: a
decoded deployment has `schema_path=None`. An environment value is never written."""

from __future__ import annotations

from dataclasses import fields
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from flusso.domain.config import model
from flusso.domain.config.config_shape import ServerFile
from flusso.domain.config.lock.codec import JSON, Malformed, drop_none, encode_secret
from flusso.domain.config.lock.schema_tree import decode_schema, encode_schema

_SECRET_KEYS = ("url", "username", "password")
_OPENSEARCH_KEYS = tuple(
    f.name for f in fields(model.OpenSearchSinkConfig) if f.name != "security"
)

# -- the file's shape ------------------------------------------------------------------------


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
    on_error: model.OnError | None = None
    schema_: dict[str, JSON] = Field(alias="schema")


class _ConfigLock(_Lock):
    source: _SourceLock
    sinks: dict[str, _SinkLock] = {}
    indexes: list[_IndexLock] = []
    on_error: model.OnError = "stop"
    prefix: str = ""
    server: ServerFile = ServerFile()


class LockFile(_Lock):
    format_version: int
    flusso_version: str
    config: _ConfigLock


# -- the deployment --------------------------------------------------------------------------


def encode_config(deployment: model.Deployment) -> JSON:
    return {
        "source": _encode_source(deployment.source),
        "sinks": {name: _encode_sink(sink) for name, sink in sorted(deployment.sinks.items())},
        "indexes": [_encode_index(index) for index in deployment.indexes],
        "on_error": deployment.on_error,
        "prefix": deployment.prefix,
        "server": drop_none({
            "public_address": deployment.server.public_address,
            "private_address": deployment.server.private_address,
        }),
    }


def decode_config(config: _ConfigLock) -> model.Deployment:
    return model.Deployment(
        source=_decode_source(config.source),
        sinks={name: _decode_sink(name, sink) for name, sink in sorted(config.sinks.items())},
        indexes=tuple(_decode_index(index) for index in config.indexes),
        on_error=config.on_error,
        prefix=config.prefix,
        server=model.ServerConfig(
            public_address=config.server.public_address,
            private_address=config.server.private_address,
        ),
    )


def _decode_secret(secret: _SecretLock, where: str) -> model.Secret:
    if sum(part is not None for part in (secret.env, secret.value, secret.file)) != 1:
        raise Malformed(f"{where}: expected exactly one of `env`, `value` or `file`")
    return model.Secret(env=secret.env, value=secret.value, file=secret.file)


def _encode_source(source: model.SourceConfig) -> JSON:
    connection = source.connection
    encoded: JSON = None
    if isinstance(connection, model.Secret):
        encoded = {"url": encode_secret(connection)}
    elif isinstance(connection, model.ConnectionParts):
        encoded = {"parts": drop_none({
            "host": connection.host,
            "port": connection.port,
            "user": connection.user,
            "password": encode_secret(connection.password),
            "database": connection.database,
        })}
    return drop_none({
        "source_type": source.type,
        "connection": encoded,
        "manage_publication": source.manage_publication,
    })


def _decode_source(source: _SourceLock) -> model.SourceConfig:
    connection: model.Secret | model.ConnectionParts | None = None
    if source.connection is not None:
        url, parts = source.connection.url, source.connection.parts
        if (url is None) == (parts is None):
            raise Malformed("source.connection: expected exactly one of `url` or `parts`")
        if url is not None:
            connection = _decode_secret(url, "source.connection.url")
        elif parts is not None:
            password = parts.password
            connection = model.ConnectionParts(
                database=parts.database, host=parts.host, port=parts.port, user=parts.user,
                password=None if password is None
                else _decode_secret(password, "source.connection.parts.password"),
            )
    return model.SourceConfig(connection=connection, manage_publication=source.manage_publication)


def _encode_sink(sink: model.SinkConfig) -> JSON:
    if isinstance(sink, model.StdoutSinkConfig):
        return {"stdout": {"pretty": sink.pretty}}
    body = {key: getattr(sink, key) for key in _OPENSEARCH_KEYS}
    body.update({key: encode_secret(body[key]) for key in _SECRET_KEYS})
    return {"opensearch": drop_none({**body, **_encode_security(sink.security)})}


def _encode_security(security: model.SinkSecurity) -> dict[str, JSON]:
    """The security keys that differ from their defaults (none for a plain sink)."""
    aws = security.aws_sigv4
    return drop_none({
        "tls_ca_file": security.tls_ca_file,
        "tls_cert_file": security.tls_cert_file,
        "tls_key_file": security.tls_key_file,
        "tls_verify_hostname": None if security.tls_verify_hostname else False,
        "api_key": encode_secret(security.api_key),
        "bearer_token": encode_secret(security.bearer_token),
        "aws_sigv4": None if aws is None else {"region": aws.region, "service": aws.service},
    })


def _decode_sink(name: str, sink: _SinkLock) -> model.SinkConfig:
    where = f"sinks.{name}"
    body = sink.opensearch
    if sink.stdout is not None and body is None:
        return model.StdoutSinkConfig(pretty=sink.stdout.pretty)
    if body is None or sink.stdout is not None:
        raise Malformed(f"{where}: expected exactly one of `opensearch` or `stdout`")
    values = {key: getattr(body, key) for key in _OPENSEARCH_KEYS}
    for key in _SECRET_KEYS:
        secret = values[key]
        values[key] = None if secret is None else _decode_secret(secret, f"{where}.{key}")
    return model.OpenSearchSinkConfig(**values, security=_decode_security(body, where))


def _decode_security(body: _OpenSearchLock, where: str) -> model.SinkSecurity:
    references: dict[str, model.Secret | None] = {}
    for key in ("api_key", "bearer_token"):
        secret = getattr(body, key)
        if secret is not None and secret.value is not None:
            raise Malformed(f"{where}.{key}: a secret is kept only as an `env` or `file` reference")
        references[key] = None if secret is None else _decode_secret(secret, f"{where}.{key}")
    aws = body.aws_sigv4
    return model.SinkSecurity(
        tls_ca_file=body.tls_ca_file,
        tls_cert_file=body.tls_cert_file,
        tls_key_file=body.tls_key_file,
        tls_verify_hostname=body.tls_verify_hostname,
        aws_sigv4=None if aws is None else model.AwsSigV4(region=aws.region, service=aws.service),
        **references,
    )


def _encode_index(index: model.IndexConfig) -> JSON:
    return drop_none({
        "name": index.name,
        "enabled": index.enabled,
        "on_error": index.on_error,
        "schema": encode_schema(index.schema),
    })


def _decode_index(index: _IndexLock) -> model.IndexConfig:
    where = f"indexes.{index.name}.schema"
    try:
        schema = decode_schema(index.schema_, where)
    except (KeyError, TypeError, AttributeError, IndexError) as exc:
        # The tree is checked as it is read; this catches a shape the checks missed.
        raise Malformed(f"{where}: unexpected shape ({type(exc).__name__})") from None
    return model.IndexConfig(
        name=index.name, enabled=index.enabled, schema=schema, on_error=index.on_error
    )
