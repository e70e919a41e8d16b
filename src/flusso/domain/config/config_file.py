"""Loads `flusso.toml` text into a validated `Deployment`.

Pure: the file's text is handed in and referenced schema files are read through
the `read_schema` callable; nothing here touches the disk or the environment.
`{ env = "X" }` references stay references (`Secret`) until run time.
"""

from __future__ import annotations

import ipaddress
import os.path
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    Tag,
    ValidationError,
    field_validator,
)
from pydantic_core import PydanticCustomError

from flusso.domain.config.model import (
    ConnectionParts,
    Deployment,
    IndexConfig,
    OpenSearchSinkConfig,
    Secret,
    ServerConfig,
    SinkConfig,
    SourceConfig,
    StdoutSinkConfig,
)
from flusso.domain.config.sink_security import (
    AWS_SIGV4_KEYS,
    AwsSigV4File,
    SecretRef,
    convert_security,
)
from flusso.domain.config.suggest import did_you_mean
from flusso.domain.errors import ConfigError

_U32 = 4_294_967_295
_U64 = 18_446_744_073_709_551_615

ENV_OR_VALUE_SHAPES = 'a string value or an env reference `{ env = "VAR" }`'
CONNECTION_SHAPES = (
    'a connection URL string, an env reference `{ env = "VAR" }`, '
    "or a connection-parts table `{ host, port, user, password, database }`"
)

# ---------------------------------------------------------------------------
# File-shaped models: they mirror the TOML and nothing more
# ---------------------------------------------------------------------------


def _kind(value: object) -> str:
    """A human name for a TOML value, for the "found …" half of a message."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an empty table" if not value else "a table"
    return "a datetime"  # tomllib's only other kinds are date/time/datetime


def _env_or_value(value: object) -> Secret:
    if isinstance(value, str):
        return Secret(value=value)
    if isinstance(value, dict) and value:
        first = next(iter(value))
        if first != "env":
            raise PydanticCustomError(
                "env_or_value",
                "unknown key `{key}` — expected {shapes}",
                {"key": first, "shapes": ENV_OR_VALUE_SHAPES},
            )
        extra = next((k for k in value if k != "env"), None)
        if extra is not None:
            raise PydanticCustomError(
                "env_or_value",
                "unexpected key `{key}` in env reference — write it as `{shape}`",
                {"key": extra, "shape": '{ env = "VAR" }'},
            )
        name = value["env"]
        if not isinstance(name, str):
            raise PydanticCustomError(
                "env_or_value",
                "`env` must be a string naming an environment variable, found {found}",
                {"found": _kind(name)},
            )
        return Secret(env=name)
    raise PydanticCustomError(
        "env_or_value",
        "expected {shapes}, found {found}",
        {"shapes": ENV_OR_VALUE_SHAPES, "found": _kind(value)},
    )


EnvOrValue = Annotated[Secret, PlainValidator(_env_or_value)]


class _File(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, arbitrary_types_allowed=True
    )


class _PartsFile(_File):
    host: str = "127.0.0.1"
    port: int = Field(5432, ge=0, le=65535)
    user: str = "postgres"
    password: EnvOrValue | None = None
    database: str


def _connection_tag(value: object) -> str:
    if isinstance(value, dict) and "env" not in value:
        return "parts"
    return "url"


_Connection = Annotated[
    Annotated[EnvOrValue, Tag("url")] | Annotated[_PartsFile, Tag("parts")],
    Discriminator(_connection_tag),
]


class _SourceFile(_File):
    type: Literal["postgres"]
    connection_url: _Connection | None = None
    manage_publication: bool = True

    @field_validator("connection_url", mode="before")
    @classmethod
    def _shape(cls, value: object) -> object:
        if value is not None and not isinstance(value, str | dict):
            raise PydanticCustomError(
                "connection_url",
                "expected {shapes}, found {found}",
                {"shapes": CONNECTION_SHAPES, "found": _kind(value)},
            )
        return value


class _OpenSearchFile(_File):
    type: Literal["opensearch"]
    url: EnvOrValue
    username: EnvOrValue | None = None
    password: EnvOrValue | None = None
    tls_verify: bool = True
    batch_size: int = Field(1000, ge=0, le=_U32)
    max_bytes: int = Field(10_485_760, ge=0, le=_U64)
    timeout_secs: int = Field(30, ge=0, le=_U64)
    max_retries: int = Field(3, ge=0, le=_U32)
    pipeline: str | None = None
    number_of_shards: int = Field(1, ge=0, le=_U32)
    number_of_replicas: int = Field(1, ge=0, le=_U32)
    refresh_interval: str = "10s"
    text_analysis: Literal["builtin", "icu"] = "builtin"
    auto_subfields: bool = True
    # Connection security (sink_security.py converts and checks them).
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_verify_hostname: bool = True
    api_key: SecretRef | None = None
    bearer_token: SecretRef | None = None
    aws_sigv4: AwsSigV4File | None = None


class _StdoutFile(_File):
    type: Literal["stdout"]
    pretty: bool = False


_Sink = Annotated[_OpenSearchFile | _StdoutFile, Field(discriminator="type")]


class _IndexFile(_File):
    name: str
    schema_: str = Field(alias="schema")
    enabled: bool
    on_error: Literal["stop", "skip"] | None = None


class _ServerFile(_File):
    public_address: str | None = None
    private_address: str | None = None


class _ConfigFile(_File):
    source: _SourceFile
    sinks: dict[str, _Sink] = {}
    index: list[_IndexFile] = []
    on_error: Literal["stop", "skip"] = "stop"
    prefix: str = ""
    server: _ServerFile | None = None


def _keys(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(info.alias or name for name, info in model.model_fields.items())


TOP_LEVEL_KEYS = _keys(_ConfigFile)
SOURCE_KEYS = _keys(_SourceFile)
CONNECTION_PART_KEYS = _keys(_PartsFile)
OPENSEARCH_SINK_KEYS = _keys(_OpenSearchFile)
STDOUT_SINK_KEYS = _keys(_StdoutFile)
SINK_TYPES: tuple[str, ...] = ("opensearch", "stdout")
SOURCE_TYPES: tuple[str, ...] = ("postgres",)
INDEX_KEYS = _keys(_IndexFile)
SERVER_KEYS = _keys(_ServerFile)
"""The key sets the loader accepts; the `flusso schema config` drift test compares against them."""

# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------


def parse_config(text: str, *, path: str, read_schema: Callable[[str], str]) -> Deployment:
    """Parse, validate and convert one `flusso.toml`, reading each index schema via `read_schema`.

    `read_schema(resolved_path)` returns the schema file's text or raises OSError.
    """
    raw = _load_toml(text, path)
    try:
        file = _ConfigFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError.collect([_problem(path, e) for e in exc.errors()]) from None
    deployment, plans = _convert(file, path)
    return _with_schemas(deployment, plans, path, read_schema)


def unreadable_file_hint(exc: OSError, what: str) -> str | None:
    """The fix for a file that exists but cannot be read as text; None when it is missing."""
    if isinstance(exc, IsADirectoryError):
        return f"{what} names a directory; point it at the file itself"
    if isinstance(exc, PermissionError):
        return "make the file readable by the user flusso runs as"
    if "not UTF-8" in str(exc):
        return "save the file as UTF-8 text"
    return None


def resolve_schema_path(config_path: str, schema: str) -> str:
    """A schema path as written, joined to the config file's directory when relative."""
    if os.path.isabs(schema):
        return schema
    return os.path.join(os.path.dirname(config_path), schema)


# ---------------------------------------------------------------------------
# TOML syntax
# ---------------------------------------------------------------------------

_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_AT_END = re.compile(r"\s*\(at end of document\)$")


def _load_toml(text: str, path: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_syntax_message(str(exc), text, path)) from None


def _syntax_message(reason: str, text: str, path: str) -> str:
    lines = text.splitlines() or [""]
    found = _POSITION.search(reason)
    if found:
        line, column = int(found.group(1)), int(found.group(2))
        reason = reason[: found.start()]
    else:
        reason = _AT_END.sub("", reason)
        line = len(lines)
        column = len(lines[-1]) + 1
    source_line = lines[line - 1] if 0 < line <= len(lines) else ""
    gutter = " " * len(str(line))
    return (
        f"{path}: TOML syntax error: {reason[:1].lower()}{reason[1:]}\n"
        f"{gutter}--> line {line}, column {column}\n"
        f"{gutter} |\n"
        f"{line} | {source_line}\n"
        f"{gutter} | {' ' * (column - 1)}^"
    )


# ---------------------------------------------------------------------------
# Structural errors (pydantic) → messages in the config's own words
# ---------------------------------------------------------------------------

_WHAT = {
    "int_type": "an integer",
    "bool_type": "a boolean (true or false)",
    "string_type": "a string",
    "dict_type": "a table",
    "list_type": "an array of tables",
    "model_type": "a table",
    "model_attributes_type": "a table",
}


def _where(loc: tuple[Any, ...]) -> tuple[str, tuple[str, ...]]:
    """Split a pydantic location into the TOML section and the key path inside it."""
    parts = list(loc)
    if len(parts) > 1 and parts[0] == "source":
        rest = parts[1:]
        if rest[:1] == ["connection_url"] and rest[1:2] in (["url"], ["parts"]):
            rest = ["connection_url", *rest[2:]]  # drop the union's tag
        return "[source]", tuple(str(p) for p in rest)
    if parts and parts[0] == "sinks" and len(parts) > 1:
        rest = parts[3:] if len(parts) > 2 and parts[2] in SINK_TYPES else parts[2:]
        return f"[sinks.{parts[1]}]", tuple(str(p) for p in rest)
    if parts and parts[0] == "index" and len(parts) > 1 and isinstance(parts[1], int):
        return f"[[index]] #{parts[1] + 1}", tuple(str(p) for p in parts[2:])
    if len(parts) > 1 and parts[0] == "server":
        return "[server]", tuple(str(p) for p in parts[1:])
    return "", tuple(str(p) for p in parts)


def _allowed(loc: tuple[Any, ...]) -> tuple[str, ...]:
    """The keys allowed in the table that holds the last element of `loc`."""
    head = loc[:-1]
    if not head:
        return TOP_LEVEL_KEYS
    if head == ("source",):
        return SOURCE_KEYS
    if head[:2] == ("source", "connection_url"):
        return CONNECTION_PART_KEYS
    if head[0] == "sinks" and len(head) == 3:
        return OPENSEARCH_SINK_KEYS if head[2] == "opensearch" else STDOUT_SINK_KEYS
    if head[0] == "sinks" and head[3:] == ("aws_sigv4",):
        return AWS_SIGV4_KEYS
    if head[0] == "index":
        return INDEX_KEYS
    if head[0] == "server":
        return SERVER_KEYS
    return ()


def _problem(path: str, error: Mapping[str, Any]) -> ConfigError:
    loc = tuple(error["loc"])
    kind = error["type"]
    ctx = error.get("ctx") or {}
    section, keys = _where(loc)
    hint: str | None = None
    if kind == "extra_forbidden":
        key = keys[-1] if keys else str(loc[-1])
        keys = keys[:-1]
        allowed = _allowed(loc)
        what = f"unknown key `{key}`, expected one of {_listing(allowed)}"
        hint = did_you_mean(key, allowed)
    elif kind == "missing":
        what = f"missing key `{keys[-1] if keys else loc[-1]}`"
        keys = keys[:-1]
        if loc == ("source",):
            hint = (
                'every config needs a [source] table: add `[source]` and `type = "postgres"` '
                "(the connection then comes from DATABASE_URL); `flusso schema config` "
                "prints every key"
            )
    elif kind == "union_tag_not_found":
        what = f"missing key `type`, expected one of {_listing(SINK_TYPES)}"
    elif kind == "union_tag_invalid":
        what = (
            f"unknown sink type {_show(ctx.get('tag'))}, expected one of {_listing(SINK_TYPES)}"
        )
        keys = (*keys, "type")
    elif kind == "literal_error":
        what = f"expected one of {ctx.get('expected')}, found {_show(error.get('input'))}"
    elif kind in ("greater_than_equal", "less_than_equal"):
        bounds = _bounds(loc)
        what = f"must be between {bounds[0]} and {bounds[1]}, found {error.get('input')}"
    elif kind in _WHAT:
        what = f"expected {_WHAT[kind]}, found {_kind(error.get('input'))}"
    else:
        what = str(error.get("msg"))
    where = " ".join(p for p in (section, ".".join(keys)) if p)
    return ConfigError(f"{path}: {where + ': ' if where else ''}{what}", hint=hint)


def _bounds(loc: tuple[Any, ...]) -> tuple[int, int]:
    key = str(loc[-1])
    if key == "port":
        return 0, 65535
    if key in ("max_bytes", "timeout_secs"):
        return 0, _U64
    return 0, _U32


def _show(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) else _kind(value)


def _listing(keys: tuple[str, ...]) -> str:
    return ", ".join(f"`{k}`" for k in keys)


# ---------------------------------------------------------------------------
# Conversion: identifiers, duplicates, addresses
# ---------------------------------------------------------------------------

_PG_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def _identifier(value: str, *, what: str, problems: list[ConfigError], path: str) -> str:
    normalised = value.strip().lower()
    if len(normalised) > 63 or not _PG_IDENTIFIER.match(normalised):
        problems.append(
            ConfigError(
                f"{path}: {what}: `{value}` is not a valid name: after trimming and "
                "lowercasing it must match ^[a-z_][a-z0-9_]*$ and be at most 63 characters",
                hint="use letters, digits and underscores, not starting with a digit",
            )
        )
    return normalised


def _socket_address(value: str, *, what: str, problems: list[ConfigError], path: str) -> None:
    if not _is_socket_address(value):
        problems.append(
            ConfigError(
                f"{path}: [server] {what}: expected a socket address `IPv4:port` or "
                f"`[IPv6]:port`, found \"{value}\"",
                hint="write an IP address, e.g. `0.0.0.0:9464` or `[::1]:9464`; "
                "host names such as `localhost` are not accepted",
            )
        )


def _is_socket_address(value: str) -> bool:
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
        family: type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address] = (
            ipaddress.IPv6Address
        )
    else:
        host, sep, port = value.rpartition(":")
        family = ipaddress.IPv4Address
    if not sep or not re.fullmatch(r"[0-9]{1,5}", port) or int(port) > 65535:
        return False
    try:
        family(host)
    except ValueError:
        return False
    return True


class _IndexPlan(NamedTuple):
    """An `[[index]]` entry whose schema file has not been read yet."""

    name: str
    enabled: bool
    on_error: Literal["stop", "skip"] | None
    schema_path: str


def _convert(file: _ConfigFile, path: str) -> tuple[Deployment, list[_IndexPlan]]:
    problems: list[ConfigError] = []

    sinks: dict[str, SinkConfig] = {}
    for written, sink in file.sinks.items():
        name = _identifier(
            written, what=f"[sinks.{written}] sink name", problems=problems, path=path
        )
        if name in sinks:
            problems.append(
                ConfigError(
                    f"{path}: [sinks.{written}]: duplicate sink name `{name}`",
                    hint="sink names are compared after trimming and lowercasing; rename one",
                )
            )
        sinks[name] = _sink(sink, written, path, problems)

    indexes: list[_IndexPlan] = []
    seen: set[str] = set()
    for position, entry in enumerate(file.index, 1):
        name = _identifier(
            entry.name, what=f"[[index]] #{position} name", problems=problems, path=path
        )
        if name in seen:
            problems.append(
                ConfigError(
                    f"{path}: [[index]] #{position}: duplicate index name `{name}`",
                    hint="index names are compared after trimming and lowercasing; rename one",
                )
            )
        seen.add(name)
        indexes.append(
            _IndexPlan(name, entry.enabled, entry.on_error, resolve_schema_path(path, entry.schema_))
        )

    server = ServerConfig()
    if file.server is not None:
        for key in SERVER_KEYS:
            address = getattr(file.server, key)
            if address is not None:
                _socket_address(address, what=key, problems=problems, path=path)
        server = ServerConfig(
            public_address=file.server.public_address,
            private_address=file.server.private_address,
        )

    if problems:
        raise ConfigError.collect(problems)
    deployment = Deployment(
        source=_source(file.source),
        sinks=dict(sorted(sinks.items())),
        on_error=file.on_error,
        prefix=file.prefix,
        server=server,
    )
    return deployment, indexes


def _source(source: _SourceFile) -> SourceConfig:
    connection: Secret | ConnectionParts | None
    if isinstance(source.connection_url, _PartsFile):
        parts = source.connection_url
        connection = ConnectionParts(
            database=parts.database,
            host=parts.host,
            port=parts.port,
            user=parts.user,
            password=parts.password,
        )
    else:
        connection = source.connection_url
    return SourceConfig(connection=connection, manage_publication=source.manage_publication)


def _sink(
    sink: _OpenSearchFile | _StdoutFile, written: str, path: str, problems: list[ConfigError]
) -> SinkConfig:
    if isinstance(sink, _StdoutFile):
        return StdoutSinkConfig(pretty=sink.pretty)
    security, found = convert_security(
        sink, basic_auth=sink.username is not None, section=f"[sinks.{written}]", path=path
    )
    problems.extend(found)
    return OpenSearchSinkConfig(
        url=sink.url,
        username=sink.username,
        password=sink.password,
        tls_verify=sink.tls_verify,
        batch_size=sink.batch_size,
        max_bytes=sink.max_bytes,
        timeout_secs=sink.timeout_secs,
        max_retries=sink.max_retries,
        pipeline=sink.pipeline,
        number_of_shards=sink.number_of_shards,
        number_of_replicas=sink.number_of_replicas,
        refresh_interval=sink.refresh_interval,
        text_analysis=sink.text_analysis,
        auto_subfields=sink.auto_subfields,
        security=security,
    )


# ---------------------------------------------------------------------------
# Index schemas
# ---------------------------------------------------------------------------


def _with_schemas(
    deployment: Deployment,
    plans: list[_IndexPlan],
    path: str,
    read_schema: Callable[[str], str],
) -> Deployment:
    problems: list[ConfigError] = []
    indexes: list[IndexConfig] = []
    for position, index in enumerate(plans, 1):
        resolved = index.schema_path
        try:
            text = read_schema(resolved)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            problems.append(
                ConfigError(
                    f"{path}: [[index]] #{position} `{index.name}`: cannot read schema "
                    f"file {resolved}: {reason}",
                    hint=unreadable_file_hint(exc, "`schema`")
                    or "relative schema paths are read from the config file's directory",
                )
            )
            continue
        from flusso.domain.config.schema_file import parse_index_schema

        try:
            schema = parse_index_schema(text, path=resolved, index=index.name)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        indexes.append(
            IndexConfig(
                name=index.name,
                enabled=index.enabled,
                schema=schema,
                on_error=index.on_error,
                schema_path=resolved,
            )
        )
    if problems:
        raise ConfigError.collect(problems)
    return replace(deployment, indexes=tuple(indexes))
