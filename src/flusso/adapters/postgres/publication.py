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
    ACTIONS,
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

_PUBLICATION_SQL = """
SELECT p.oid::int8, pg_has_role(current_user, p.pubowner, 'USAGE'), p.puballtables,
       p.pubinsert, p.pubupdate, p.pubdelete, p.pubtruncate, p.pubviaroot
FROM pg_publication p WHERE p.pubname = %s
"""
# Members by name: a partitioned table is a member itself, whatever pg_publication_tables
# lists for it (its partitions, unless publish_via_partition_root is on).
_MEMBERS_SQL = """
SELECT n.nspname, c.relname FROM pg_publication_rel pr
JOIN pg_class c ON c.oid = pr.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE pr.prpubid = %s::oid
"""
# FOR TABLES IN SCHEMA (PostgreSQL 15 and newer).
_SCHEMAS_SQL = """
SELECT n.nspname FROM pg_publication_namespace pn JOIN pg_namespace n ON n.oid = pn.pnnspid
WHERE pn.pnpubid = %s::oid
"""
_PARTITIONED_SQL = """
SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'p' AND n.nspname = %s AND c.relname = %s
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


async def _published(
    conn: psycopg.AsyncConnection[Any], pub_oid: int, all_tables: bool,
    required: Sequence[TableRef],
) -> set[TableRef]:
    if all_tables:
        return set(required)
    rows = await (await conn.execute(_MEMBERS_SQL, (pub_oid,))).fetchall()
    members = {TableRef(str(s), str(t)) for s, t in rows}
    version = await (await conn.execute("SHOW server_version_num")).fetchone()
    if version is not None and int(version[0]) >= 150000:
        rows = await (await conn.execute(_SCHEMAS_SQL, (pub_oid,))).fetchall()
        schemas = {str(r[0]) for r in rows}
        members |= {t for t in required if t.schema in schemas}
    return members


async def _inspect(
    conn: psycopg.AsyncConnection[Any],
    publication: str,
    required_tables: Sequence[TableRef],
    manage: bool,
) -> Coverage:
    required = sorted(set(required_tables))
    row = await (await conn.execute(_PUBLICATION_SQL, (publication,))).fetchone()
    published = await _published(conn, int(row[0]), bool(row[2]), required) if row else set()
    partitioned = []
    for table in required:
        if await (await conn.execute(_PARTITIONED_SQL, (table.schema, table.name))).fetchone():
            partitioned.append(table)
    superuser = await _flag(conn, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    can_create = await _flag(
        conn, "SELECT has_database_privilege(current_user, current_database(), 'CREATE')"
    )
    standings: dict[TableRef, TableStanding | None] = {}
    for table in missing_tables(required, published):
        facts = await (await conn.execute(_TABLE_FACTS, (table.schema, table.name))).fetchone()
        standings[table] = None if facts is None else TableStanding(
            owned=bool(facts[0]),
            has_primary_key=bool(facts[1]),
            has_identity_index=bool(facts[2]),
            identity=str(facts[3]),  # type: ignore[arg-type]
        )
    return plan_coverage(
        publication,
        required,
        manage,
        PublicationFacts(
            exists=row is not None,
            owned=bool(row and row[1]),
            published=published,
            superuser=superuser,
            can_create=can_create,
            standings=standings,
            actions=tuple(a for a, on in zip(ACTIONS, row[3:7], strict=True) if on) if row else ACTIONS,
            via_root=bool(row[7]) if row else True,
            partitioned=partitioned,
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
    """Inspect; add the missing tables and actions when allowed, else warn once with the SQL.

    A publication that does not exist and will not be made stops the run here, before
    the slot: a slot decoding a publication that does not exist fails on its first
    change, and keeps failing on every later start.
    """
    coverage = await inspect_publication(conn, publication, required_tables, manage)
    if coverage.via_root_fix is not None:
        logger.info(
            'publication "%s" publishes partitions under their own names; flusso maps them '
            "to their partitioned table (to publish them under its name: %s)",
            publication, coverage.via_root_fix,
        )
    if coverage.satisfied:
        logger.debug('publication "%s" covers every required table', publication)
        return coverage
    gaps = _describe_gaps(coverage)
    if coverage.will_manage:
        try:
            for statement in coverage.remediation:
                await conn.execute(statement.encode())
        except psycopg.Error as exc:
            verb = "extend" if coverage.exists else "create"
            hint = driver_hint(exc)
            if isinstance(exc, psycopg.errors.UndefinedTable):
                hint = (
                    "a schema names a table the database lacks; run `flusso check` to list "
                    "every mismatch, then fix the schema or create the table"
                )
            elif isinstance(exc, psycopg.errors.InsufficientPrivilege):
                hint = (
                    "let a privileged role run it (see `flusso check` for the SQL), "
                    "or set manage_publication = false under [source]"
                )
            raise SourceError(
                f"failed to {verb} publication '{publication}': {str(exc).strip()}", hint=hint
            ) from exc
        logger.info('publication "%s": added %s', publication, gaps)
        return coverage
    reason = (
        "automatic publication management is disabled"
        if not manage
        else "; ".join(coverage.blockers)
    )
    statements = " ".join(coverage.remediation)
    if not coverage.exists:
        raise SourceError(
            f'publication "{publication}" does not exist and flusso will not create it ({reason})',
            hint=f"let its owner run: {statements} (or run flusso as a role that may, or point "
            "--publication / FLUSSO_PUBLICATION at an existing one)",
        )
    logger.warning(
        'publication "%s" is missing %s and flusso will not add them (%s); changes to those '
        "tables are not streamed and their documents go stale until an operator runs: %s",
        publication,
        gaps,
        reason,
        statements,
    )
    return coverage


def _describe_gaps(coverage: Coverage) -> str:
    parts = [str(t) for t in coverage.missing]
    if coverage.missing_actions:
        parts.append(f"the {', '.join(coverage.missing_actions)} action(s)")
    return ", ".join(parts) or "everything (it does not exist)"
