"""Loads `flusso.toml` text into a validated `Deployment`: its shape is checked by the
models of `config_shape`, then names, duplicates and addresses here, then each index's
schema file is read and loaded.

Pure: the file's text is handed in and referenced schema files are read through
the `read_schema` callable; nothing here touches the disk or the environment.
`{ env = "X" }` references stay references (`Secret`) until run time.
"""

from __future__ import annotations

import ipaddress
import os.path
import re
from collections.abc import Callable, Mapping
from dataclasses import fields, replace
from typing import NamedTuple

from pydantic import (
    ValidationError,
)

from flusso.domain.config.config_problems import load_toml, structural_problems
from flusso.domain.config.config_shape import (
    SERVER_KEYS,
    ConfigFile,
    OpenSearchFile,
    PartsFile,
    ServerFile,
    SourceFile,
    StdoutFile,
)
from flusso.domain.config.index_schema.rules import pg_identifier_problem
from flusso.domain.config.model import (
    ConnectionParts,
    Deployment,
    IndexConfig,
    OnError,
    OpenSearchSinkConfig,
    Secret,
    ServerConfig,
    SinkConfig,
    SourceConfig,
    StdoutSinkConfig,
)
from flusso.domain.config.sink_security import convert_security
from flusso.domain.errors import ConfigError

# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------


def parse_config(text: str, *, path: str, read_schema: Callable[[str], str]) -> Deployment:
    """Parse, validate and convert one `flusso.toml`, reading each index schema via `read_schema`.

    `read_schema(resolved_path)` returns the schema file's text or raises OSError.
    """
    raw = load_toml(text, path)
    try:
        file = ConfigFile.model_validate(raw)
    except ValidationError as exc:
        raise structural_problems(path, exc) from None
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
# Conversion: identifiers, duplicates, addresses
# ---------------------------------------------------------------------------

def _identifier(value: str, *, what: str, problems: list[ConfigError], path: str) -> str:
    normalised, problem = pg_identifier_problem(value)
    if problem is not None:
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
    on_error: OnError | None
    schema_path: str


def _convert(file: ConfigFile, path: str) -> tuple[Deployment, list[_IndexPlan]]:
    problems: list[ConfigError] = []
    sinks: dict[str, SinkConfig] = {}
    for written, sink in file.sinks.items():
        where = f"[sinks.{written}]"
        name = _unique_name(written, where, f"{where} sink name", "sink", sinks, problems, path)
        sinks[name] = _sink(sink, written, path, problems)
    indexes: list[_IndexPlan] = []
    seen: dict[str, None] = {}
    for position, entry in enumerate(file.index, 1):
        where = f"[[index]] #{position}"
        name = _unique_name(entry.name, where, f"{where} name", "index", seen, problems, path)
        seen[name] = None
        schema_path = resolve_schema_path(path, entry.schema_)
        indexes.append(_IndexPlan(name, entry.enabled, entry.on_error, schema_path))
    server = _server(file.server, problems, path)
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


def _unique_name(
    written: str, where: str, what: str, noun: str, seen: Mapping[str, object],
    problems: list[ConfigError], path: str,
) -> str:
    """A sink or index name, normalised; invalid or repeated names are added to `problems`."""
    name = _identifier(written, what=what, problems=problems, path=path)
    if name in seen:
        problems.append(ConfigError(
            f"{path}: {where}: duplicate {noun} name `{name}`",
            hint=f"{noun} names are compared after trimming and lowercasing; rename one",
        ))
    return name


def _server(server: ServerFile | None, problems: list[ConfigError], path: str) -> ServerConfig:
    if server is None:
        return ServerConfig()
    for key in SERVER_KEYS:
        address = getattr(server, key)
        if address is not None:
            _socket_address(address, what=key, problems=problems, path=path)
    return ServerConfig(
        public_address=server.public_address, private_address=server.private_address
    )


def _source(source: SourceFile) -> SourceConfig:
    connection: Secret | ConnectionParts | None
    if isinstance(source.connection_url, PartsFile):
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
    sink: OpenSearchFile | StdoutFile, written: str, path: str, problems: list[ConfigError]
) -> SinkConfig:
    if isinstance(sink, StdoutFile):
        return StdoutSinkConfig(pretty=sink.pretty)
    security, found = convert_security(
        sink, basic_auth=sink.username is not None, section=f"[sinks.{written}]", path=path
    )
    problems.extend(found)
    return OpenSearchSinkConfig(
        **{key: getattr(sink, key) for key in _OPENSEARCH_KEYS}, security=security
    )


_OPENSEARCH_KEYS = tuple(f.name for f in fields(OpenSearchSinkConfig) if f.name != "security")
"""The sink keys copied as they are; the security keys are converted by `sink_security`."""


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
        # Imported here: `run --locked` never compiles a schema, so it never loads YAML.
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
