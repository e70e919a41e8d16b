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
from flusso.app.ports import SourceError
from flusso.domain.documents.change import TableRef
from flusso.domain.publication import (
    Coverage,
    PublicationFacts,
    TableStanding,
    missing_tables,
    plan_coverage,
    plan_publication_sql,
)

# The verdict and the remediation SQL are the domain's; they stay importable from here.
__all__ = ["Coverage", "ensure_publication", "inspect_publication", "plan_publication_sql"]

logger = logging.getLogger(__name__)


_TABLE_FACTS = """
SELECT pg_has_role(current_user, c.relowner, 'USAGE') AS owned,
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) AS has_pk,
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident)
           AS has_identity_index,
       c.relreplident AS identity
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')
"""


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
    rows = await (
        await conn.execute(
            "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s",
            (publication,),
        )
    ).fetchall()
    published = {TableRef(str(s), str(t)) for s, t in rows}
    superuser = await _flag(conn, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    can_create = await _flag(
        conn, "SELECT has_database_privilege(current_user, current_database(), 'CREATE')"
    )
    standings: dict[TableRef, TableStanding | None] = {}
    for table in missing_tables(required_tables, published):
        facts = await (await conn.execute(_TABLE_FACTS, (table.schema, table.name))).fetchone()
        standings[table] = None if facts is None else TableStanding(
            owned=bool(facts[0]),
            has_primary_key=bool(facts[1]),
            has_identity_index=bool(facts[2]),
            identity=str(facts[3]),  # type: ignore[arg-type]
        )
    return plan_coverage(
        publication,
        required_tables,
        manage,
        PublicationFacts(
            exists=row is not None,
            owned=bool(row and row[0]),
            published=published,
            superuser=superuser,
            can_create=can_create,
            standings=standings,
        ),
    )


async def _flag(conn: psycopg.AsyncConnection[Any], sql: str) -> bool:
    row = await (await conn.execute(sql)).fetchone()
    return bool(row and row[0])


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
