"""One parsed conninfo for every Postgres connection flusso opens.

Admin, snapshot and replication connections are all built from the same
parameters, so `sslmode` and friends apply to the WAL stream too.
"""

from __future__ import annotations

import re
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


_URL = "the connection URL (DATABASE_URL, or connection_url under [source])"

# (text the driver's message contains, lower-cased; hint); the first match wins.
_HINTS: tuple[tuple[str, str], ...] = (
    ("logical decoding requires wal_level",
     "logical replication needs wal_level = logical: run ALTER SYSTEM SET wal_level = logical "
     "(or set it in postgresql.conf / your provider's parameter group), then restart Postgres"),
    ("must be superuser or replication role",
     "the role needs the REPLICATION attribute: ALTER ROLE <user> WITH REPLICATION; "
     "or connect as a role that has it"),
    ("permission denied to start wal sender",
     "the role needs the REPLICATION attribute: ALTER ROLE <user> WITH REPLICATION"),
    ("must have the replication attribute",
     "the role needs the REPLICATION attribute: ALTER ROLE <user> WITH REPLICATION"),
    ("all replication slots are in use",
     "raise max_replication_slots, or drop slots nobody uses (pg_drop_replication_slot)"),
    ("exceeds max_wal_senders",
     "raise max_wal_senders, or stop other replication clients"),
    ("is active for pid",
     "a slot serves one consumer at a time: stop the other flusso (or replication client), "
     "or give this one its own --slot / FLUSSO_SLOT"),
    ("password authentication failed",
     f"check the user and password in {_URL}"),
    ("no password supplied",
     f"put the password in {_URL}, or set PGPASSWORD"),
    ("no pg_hba.conf entry",
     "Postgres refuses this client: add a pg_hba.conf line for it (a `replication` line "
     "for replication connections) and reload, or connect as another role"),
    ("connection refused",
     f"is Postgres running and listening at that host and port? Check {_URL}"),
    ("could not translate host name",
     f"the host name does not resolve; check {_URL}"),
    ("name or service not known",
     f"the host name does not resolve; check {_URL}"),
    ("timeout expired",
     f"Postgres did not answer in time; check {_URL} and the network between them"),
    ("invalid port number",
     f"fix the port in {_URL}"),
)


def driver_hint(exc: BaseException) -> str | None:
    """What an operator can do about a driver error, when it is a setup problem we know."""
    text = str(exc).lower()
    if re.search(r'fatal: +role "[^"]*" does not exist', text):
        return f"create the role, or fix the user name in {_URL}"
    if re.search(r'fatal: +database "[^"]*" does not exist', text):
        return f"create the database (CREATE DATABASE …), or fix its name in {_URL}"
    for needle, hint in _HINTS:
        if needle in text:
            return hint
    return None


def translate(exc: BaseException, context: str) -> SourceError:
    """The port error for a driver error: connection trouble is transient, the rest is not."""
    detail = str(exc).strip() or type(exc).__name__
    hint = driver_hint(exc)
    if isinstance(exc, psycopg.OperationalError) and not isinstance(
        exc, psycopg.errors.InsufficientPrivilege | psycopg.errors.InvalidAuthorizationSpecification
    ):
        return SourceUnavailableError(f"{context}: {detail}", hint=hint)
    return SourceError(f"{context}: {detail}", hint=hint)
