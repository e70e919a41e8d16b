"""One parsed conninfo for every Postgres connection flusso opens (engine spec R-3).

Admin, snapshot and replication connections are all built from the same
parameters, so `sslmode` and friends apply to the WAL stream too.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from flusso.app.ports import SourceError, SourceUnavailableError

APPLICATION_NAME = "flusso"


def parse_conninfo(url: str) -> dict[str, Any]:
    """The URL's parameters, with `application_name=flusso` unless the URL names one."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise SourceError(f"invalid Postgres connection string: {exc}") from exc
    params.setdefault("application_name", APPLICATION_NAME)
    return params


def build_conninfo(params: dict[str, Any], **overrides: Any) -> str:
    return make_conninfo("", **{**params, **overrides})


def describe(params: dict[str, Any]) -> str:
    """`host:port/db` for messages; never the password."""
    host = params.get("host") or params.get("hostaddr") or "localhost"
    port = params.get("port") or 5432
    return f"{host}:{port}/{params.get('dbname') or params.get('user') or ''}"


async def connect_admin(params: dict[str, Any]) -> psycopg.AsyncConnection[Any]:
    try:
        return await psycopg.AsyncConnection.connect(build_conninfo(params), autocommit=True)
    except psycopg.Error as exc:
        raise translate(exc, f"cannot connect to Postgres at {describe(params)}") from exc


async def connect_replication(params: dict[str, Any]) -> psycopg.AsyncConnection[Any]:
    """A `replication=database` connection; pgoutput text arrives in UTF-8."""
    conninfo = build_conninfo(params, replication="database", client_encoding="UTF8")
    try:
        return await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
    except psycopg.Error as exc:
        raise translate(
            exc, f"cannot open a replication connection to Postgres at {describe(params)}"
        ) from exc


def translate(exc: BaseException, context: str) -> SourceError:
    """The port error for a driver error: connection trouble is transient, the rest is not."""
    detail = str(exc).strip() or type(exc).__name__
    if isinstance(exc, psycopg.OperationalError) and not isinstance(
        exc, psycopg.errors.InsufficientPrivilege | psycopg.errors.InvalidAuthorizationSpecification
    ):
        return SourceUnavailableError(f"{context}: {detail}")
    return SourceError(f"{context}: {detail}")
