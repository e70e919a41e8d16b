"""Publication coverage: inspect which required tables are streamed, and close the gap when allowed.

`inspect_publication` is read-only (used by `flusso check`); `ensure_publication`
runs the DDL only when management is on and the role may do it, else warns
with the exact SQL an operator can run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import psycopg

from flusso.adapters.postgres.connection import driver_hint, translate
from flusso.adapters.postgres.quoting import quote_ident, quote_table
from flusso.app.ports import Coverage, SourceError
from flusso.domain.documents.change import TableRef

logger = logging.getLogger(__name__)


def plan_publication_sql(exists: bool, publication: str, tables: Sequence[TableRef]) -> str:
    """`CREATE PUBLICATION … FOR TABLE …;` or `ALTER PUBLICATION … ADD TABLE …;` in sorted order."""
    listed = ", ".join(quote_table(t) for t in sorted(tables))
    if exists:
        return f"ALTER PUBLICATION {quote_ident(publication)} ADD TABLE {listed};"
    return f"CREATE PUBLICATION {quote_ident(publication)} FOR TABLE {listed};"


_TABLE_FACTS = """
SELECT pg_has_role(current_user, c.relowner, 'USAGE') AS owned,
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) AS has_pk,
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident)
           AS has_identity_index,
       c.relreplident AS identity
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')
"""


def _addressable(has_pk: bool, has_identity_index: bool, identity: str) -> bool:
    """Whether the WAL can carry a key for the table's rows.

    Postgres refuses UPDATE and DELETE on a published table without one, so
    publishing it would break the application's own writes.
    """
    if identity == "f":
        return True
    if identity == "i":
        return has_identity_index
    if identity == "d":
        return has_pk
    return False


async def inspect_publication(
    conn: psycopg.AsyncConnection[Any],
    publication: str,
    required_tables: Sequence[TableRef],
    manage: bool,
) -> Coverage:
    """Read-only coverage report of `publication` against `required_tables`."""
    try:
        return await _inspect(conn, publication, required_tables, manage)
    except psycopg.Error as exc:
        raise translate(exc, f'cannot inspect publication "{publication}"') from exc


async def _inspect(
    conn: psycopg.AsyncConnection[Any],
    publication: str,
    required_tables: Sequence[TableRef],
    manage: bool,
) -> Coverage:
    row = await (
        await conn.execute(
            "SELECT pg_has_role(current_user, p.pubowner, 'USAGE') "
            "FROM pg_publication p WHERE p.pubname = %s",
            (publication,),
        )
    ).fetchone()
    exists = row is not None
    owns_publication = bool(row and row[0])

    rows = await (
        await conn.execute(
            "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s",
            (publication,),
        )
    ).fetchall()
    published = {TableRef(str(s), str(t)) for s, t in rows}
    required = sorted(set(required_tables))
    present = tuple(t for t in required if t in published)
    missing = tuple(t for t in required if t not in published)
    satisfied = not missing

    row = await (
        await conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    ).fetchone()
    superuser = bool(row and row[0])
    row = await (
        await conn.execute(
            "SELECT has_database_privilege(current_user, current_database(), 'CREATE')"
        )
    ).fetchone()
    can_create = bool(row and row[0])

    ownership_blockers: list[str] = []
    keyless_blockers: list[str] = []
    owns_all_missing = True
    for table in missing:
        facts = await (await conn.execute(_TABLE_FACTS, (table.schema, table.name))).fetchone()
        if facts is None:
            owns_all_missing = False
            ownership_blockers.append(f"table {table} does not exist")
            continue
        owned, has_pk, has_identity_index, identity = facts
        if not owned:
            owns_all_missing = False
            ownership_blockers.append(f"role does not own table {table}")
        if not _addressable(bool(has_pk), bool(has_identity_index), str(identity)):
            keyless_blockers.append(
                f"table {table} has no primary key or replica identity; publishing it would "
                f"make UPDATE and DELETE on it fail (add a primary key or set REPLICA IDENTITY)"
            )

    if satisfied or superuser:
        manageable = True
    elif exists:
        if not owns_publication:
            ownership_blockers.append(f'role does not own publication "{publication}"')
        manageable = owns_all_missing and owns_publication
    else:
        if not can_create:
            ownership_blockers.append("role lacks the CREATE privilege on the database")
        manageable = owns_all_missing and can_create
    if manageable:
        ownership_blockers.clear()
    # flusso never publishes a table it cannot address, whoever runs it: the
    # application's UPDATE and DELETE on it would start failing.
    if keyless_blockers:
        manageable = False
    blockers = tuple(ownership_blockers + keyless_blockers)

    return Coverage(
        satisfied=satisfied,
        manageable=manageable,
        will_manage=manage and manageable and not satisfied,
        present=present,
        missing=missing,
        blockers=blockers,
        remediation=() if satisfied else (plan_publication_sql(exists, publication, missing),),
    )


async def ensure_publication(
    conn: psycopg.AsyncConnection[Any],
    publication: str,
    required_tables: Sequence[TableRef],
    manage: bool,
) -> Coverage:
    """Inspect; add the missing tables when allowed, else warn once with the SQL to run."""
    coverage = await inspect_publication(conn, publication, required_tables, manage)
    if coverage.satisfied:
        logger.debug('publication "%s" covers every required table', publication)
        return coverage
    missing = ", ".join(str(t) for t in coverage.missing)
    if coverage.will_manage:
        exists = False
        try:
            row = await (
                await conn.execute(
                    "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = %s)",
                    (publication,),
                )
            ).fetchone()
            exists = bool(row and row[0])
            await conn.execute(
                plan_publication_sql(exists, publication, coverage.missing).encode()
            )
        except psycopg.Error as exc:
            verb = "extend" if exists else "create"
            hint = driver_hint(exc)
            if isinstance(exc, psycopg.errors.UndefinedTable):
                hint = (
                    "a schema names a table the database lacks; run `flusso check` to list "
                    "every mismatch, then fix the schema or create the table"
                )
            elif isinstance(exc, psycopg.errors.InsufficientPrivilege):
                hint = (
                    "let a privileged role create the publication (see `flusso check` for the "
                    "SQL), or set manage_publication = false under [source]"
                )
            raise SourceError(
                f"failed to {verb} publication '{publication}': {str(exc).strip()}", hint=hint
            ) from exc
        logger.info('publication "%s": added %s', publication, missing)
        return coverage
    reason = (
        "automatic publication management is disabled"
        if not manage
        else "; ".join(coverage.blockers)
    )
    logger.warning(
        'publication "%s" is missing %s and flusso will not add them (%s); changes to those '
        "tables are not streamed and their documents go stale until an operator runs: %s",
        publication,
        missing,
        reason,
        " ".join(coverage.remediation),
    )
    return coverage
