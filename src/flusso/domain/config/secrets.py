"""Resolves config secrets against an environment mapping, at run time.

Pure: the caller hands in the environment (`os.environ` in entrypoints, a dict in
tests). Messages name variables, never their values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from flusso.domain.config.model import (
    ConnectionParts,
    Deployment,
    OpenSearchSinkConfig,
    Secret,
    SourceConfig,
)
from flusso.domain.errors import ConfigError

SOURCE_URL_VAR = "DATABASE_URL"

_POSTGRES_URL = re.compile(r"^(postgresql|postgres)://\S+$")
_HTTP_URL = re.compile(r"^https?://\S+$")
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


@dataclass(frozen=True)
class ResolvedOpenSearch:
    """One OpenSearch sink's connection values in the running environment.

    `overrides` names the reserved variables that took effect (for a log line).
    """

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    overrides: tuple[str, ...] = ()
    api_key: str | None = field(default=None, repr=False)
    bearer_token: str | None = field(default=None, repr=False)

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        """Basic auth only when a username resolved; a missing password is empty."""
        if self.username is None:
            return None
        return self.username, self.password or ""


def sink_variable(sink: str, key: str) -> str:
    """The reserved variable for one sink key: `primary`, `url` → `PRIMARY_OPENSEARCH_URL`."""
    return f"{sink.upper()}_OPENSEARCH_{key.upper()}"


def resolve_source_url(source: SourceConfig, env: Mapping[str, str]) -> str:
    """The source connection URL, stripped and checked.

    Precedence: an explicit `{ env = "X" }` reference, then DATABASE_URL, then a literal
    URL, then connection parts; with none of them there is nothing to connect to.
    """
    connection = source.connection
    if isinstance(connection, Secret) and connection.env is not None:
        url, origin = _read(connection.env, env, "[source] connection_url"), connection.env
    elif SOURCE_URL_VAR in env:
        url, origin = env[SOURCE_URL_VAR], SOURCE_URL_VAR
    elif isinstance(connection, Secret):
        url, origin = connection.value or "", "[source] connection_url"
    elif isinstance(connection, ConnectionParts):
        url, origin = _assemble(connection, env), "[source] connection_url parts"
    else:
        raise ConfigError(
            f"source has no connection_url and {SOURCE_URL_VAR} is not set",
            hint=f"set {SOURCE_URL_VAR}, or `connection_url` under [source] in flusso.toml",
        )
    url = url.strip()
    if not _POSTGRES_URL.match(url):
        raise ConfigError(
            f"invalid connection URL from {origin}: `{redact_password(url)}` does not match "
            "^(postgresql|postgres)://\\S+$",
            hint="write it as postgresql://user:password@host:5432/database",
        )
    return url


def resolve_opensearch(
    name: str,
    sink: OpenSearchSinkConfig,
    env: Mapping[str, str],
    read_file: Callable[[str], str] | None = None,
) -> ResolvedOpenSearch:
    """The sink's url and credentials: `{ env = "X" }` > `<NAME>_OPENSEARCH_*` > literal.

    `api_key` and `bearer_token` come from their `{ env }` or `{ file }` reference only;
    `read_file(path)` returns a file's text or raises OSError.
    """
    overrides: list[str] = []
    url = _resolve(name, "url", sink.url, env, overrides)
    username = _resolve(name, "username", sink.username, env, overrides)
    password = _resolve(name, "password", sink.password, env, overrides)
    api_key = _reference(name, "api_key", sink.security.api_key, env, read_file)
    bearer_token = _reference(name, "bearer_token", sink.security.bearer_token, env, read_file)
    schemes = [
        scheme
        for scheme, present in (
            ("username", username is not None),
            ("api_key", api_key is not None),
            ("bearer_token", bearer_token is not None),
            ("aws_sigv4", sink.security.aws_sigv4 is not None),
        )
        if present
    ]
    if len(schemes) > 1:
        reserved = [v for v in overrides if v.endswith("_USERNAME")]
        where = f" ({reserved[0]} is set)" if reserved else ""
        raise ConfigError(
            f"[sinks.{name}]: more than one authentication scheme: {', '.join(schemes)}{where}",
            hint="a sink authenticates one way: keep exactly one of them",
        )
    url = (url or "").strip()
    if not _HTTP_URL.match(url):
        raise ConfigError(
            f"[sinks.{name}] url: invalid HTTP URL `{redact_password(url)}`: "
            "it must match ^https?://\\S+$",
            hint="write it as https://host:9200",
        )
    return ResolvedOpenSearch(
        url=url.rstrip("/"),
        username=username,
        password=password,
        overrides=tuple(overrides),
        api_key=api_key,
        bearer_token=bearer_token,
    )


def reserved_overrides(deployment: Deployment, env: Mapping[str, str]) -> tuple[str, ...]:
    """Names of the reserved variables that take effect for this deployment, for one INFO line.

    Does not fail: unset references are reported when the value is resolved.
    """
    names: list[str] = []
    connection = deployment.source.connection
    explicit_env = isinstance(connection, Secret) and connection.env is not None
    if not explicit_env and SOURCE_URL_VAR in env:
        names.append(SOURCE_URL_VAR)
    for name, sink in deployment.sinks.items():
        if not isinstance(sink, OpenSearchSinkConfig):
            continue
        for key, secret in (
            ("url", sink.url), ("username", sink.username), ("password", sink.password),
        ):
            variable = sink_variable(name, key)
            if (secret is None or secret.env is None) and variable in env:
                names.append(variable)
    return tuple(names)


def redact_password(url: str) -> str:
    """`scheme://user:secret@host` → `scheme://user:***@host`; other URLs unchanged."""
    scheme_end = url.find("://")
    if scheme_end < 0:
        return url
    start = scheme_end + 3
    at = url.find("@", start)
    if at < 0:
        return url
    colon = url.find(":", start, at)
    if colon < 0:
        return url
    return f"{url[:colon]}:***{url[at:]}"


def _resolve(
    name: str, key: str, secret: Secret | None, env: Mapping[str, str], overrides: list[str]
) -> str | None:
    if secret is not None and secret.env is not None:
        return _read(secret.env, env, f"[sinks.{name}] {key}")
    variable = sink_variable(name, key)
    if variable in env:
        overrides.append(variable)
        return env[variable]
    return None if secret is None else secret.value


def _reference(
    name: str,
    key: str,
    secret: Secret | None,
    env: Mapping[str, str],
    read_file: Callable[[str], str] | None,
) -> str | None:
    """A secret that is only ever referenced: its variable's value or its file's text, trimmed."""
    if secret is None:
        return None
    where = f"[sinks.{name}] {key}"
    if secret.env is not None:
        value = _read(secret.env, env, where).strip()
        origin = f"environment variable '{secret.env}'"
    elif secret.file is not None:
        if read_file is None:
            raise ConfigError(f"{where}: cannot read {secret.file}: no file access here")
        try:
            value = read_file(secret.file).strip()
        except OSError as exc:
            raise ConfigError(
                f"{where}: cannot read {secret.file}: {exc.strerror or exc}",
                hint="point the `file` reference at a readable file holding only the secret",
            ) from None
        origin = f"file {secret.file}"
    else:
        raise ConfigError(f"{where}: a secret is read only from an env or a file reference")
    if not value:
        raise ConfigError(
            f"{where}: {origin} is empty", hint=f"put the {key.replace('_', ' ')} there"
        )
    return value


def _read(variable: str, env: Mapping[str, str], where: str) -> str:
    if variable not in env:
        raise ConfigError(
            f"environment variable '{variable}' is not set (referenced by {where})",
            hint=f"export {variable} before starting flusso",
        )
    return env[variable]


def _assemble(parts: ConnectionParts, env: Mapping[str, str]) -> str:
    user = _percent_encode(parts.user)
    if parts.password is not None:
        password = (
            _read(parts.password.env, env, "[source] connection_url.password")
            if parts.password.env is not None
            else parts.password.value or ""
        )
        user = f"{user}:{_percent_encode(password)}"
    host = parts.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal needs brackets before the port
    return f"postgresql://{user}@{host}:{parts.port}/{parts.database}"


def _percent_encode(text: str) -> str:
    # Upstream does not escape; a password holding `@` or `/` would otherwise
    # break the URL (an addition of the Python version).
    return "".join(
        chr(byte) if byte in _UNRESERVED else f"%{byte:02X}" for byte in text.encode()
    )
