"""Read-only catalog queries behind `flusso check`'s findings about the source database.

The role's rights (and the managed service granting them), the settings logical
replication depends on, and per needed table its privileges, keys and replica identity.
The verdicts are the domain's (`domain.source_check`); nothing here changes the database.
"""

from __future__ import annotations

from typing import Any

import psycopg

from flusso.adapters.postgres.connection import translate
from flusso.domain.documents.change import TableRef
from flusso.domain.source_check import (
    IdentityFacts,
    RoleFacts,
    ServerSettings,
    Service,
    SourceFacts,
    SourceNeeds,
    TableNeed,
    TableSourceFacts,
)

# A role only a managed service has tells which one it is (Aurora is RDS).
_SERVICE_MARKERS: dict[str, Service] = {
    "rds_superuser": "rds",
    "cloudsqlsuperuser": "cloudsql",
    "azure_pg_admin": "azure",
    "supabase_admin": "supabase",
    "neon_superuser": "neon",
}
_MEMBERSHIPS = ("rds_replication", "rds_superuser", "neon_superuser", "cloudsqlsuperuser",
                "azure_pg_admin")

_ROLE_SQL = """
SELECT r.rolname, r.rolsuper, r.rolreplication,
       ARRAY(SELECT b.rolname::text FROM pg_roles b
             WHERE b.rolname = ANY(%s) AND b.oid <> r.oid AND pg_has_role(r.oid, b.oid, 'MEMBER'))
FROM pg_roles r WHERE r.rolname = current_user
"""
_MARKERS_SQL = "SELECT rolname::text FROM pg_roles WHERE rolname = ANY(%s)"
_SETTINGS_SQL = """
SELECT current_setting('server_version_num')::int, current_setting('wal_level'),
       current_setting('max_replication_slots')::int,
       (SELECT count(*) FROM pg_replication_slots)::int,
       current_setting('max_wal_senders')::int,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender')::int,
       current_database()
"""
_SLOT_SQL = "SELECT plugin, database FROM pg_replication_slots WHERE slot_name = %s"

_TABLE_SQL = """
SELECT c.oid::int8, c.relkind = 'p', has_schema_privilege(n.oid, 'USAGE'),
       has_table_privilege(c.oid, 'SELECT')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')
"""
_UNREADABLE_SQL = """
SELECT attname FROM pg_attribute
WHERE attrelid = %s::oid AND attnum > 0 AND NOT attisdropped
  AND NOT has_column_privilege(attrelid, attnum, 'SELECT')
ORDER BY attnum
"""
_GENERATED_SQL = """
SELECT attname FROM pg_attribute
WHERE attrelid = %s::oid AND attnum > 0 AND NOT attisdropped AND attgenerated <> ''
"""
# Columns of an index in index order.
_INDEX_COLUMNS = (
    "ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n) "
    "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.n)"
)
_PRIMARY_KEY_SQL = f"SELECT {_INDEX_COLUMNS} FROM pg_index i WHERE i.indrelid = %s::oid AND i.indisprimary"
# What REPLICA IDENTITY USING INDEX accepts: unique, immediate, not partial, no
# expressions, every column NOT NULL.
_CANDIDATES_SQL = f"""
SELECT ci.relname::text, {_INDEX_COLUMNS}, i.indisreplident
FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid
WHERE i.indrelid = %s::oid AND i.indisunique AND i.indimmediate AND i.indpred IS NULL
  AND i.indexprs IS NULL
  AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = i.indrelid
                  AND a.attnum = ANY(i.indkey) AND NOT a.attnotnull)
ORDER BY i.indisprimary DESC, ci.relname
"""
_IDENTITY_SQL = f"""
SELECT c.relreplident,
       (SELECT {_INDEX_COLUMNS} FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident)
FROM pg_class c WHERE c.oid = %s::oid
"""
_LEAVES_SQL = """
SELECT t.relid::oid::int8, n.nspname, c.relname
FROM pg_partition_tree(%s::oid::regclass) t
JOIN pg_class c ON c.oid = t.relid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE t.isleaf ORDER BY c.relname
"""


async def read_source_facts(conn: psycopg.AsyncConnection[Any], needs: SourceNeeds) -> SourceFacts:
    """Everything `diagnose_source` compares the needs with, in a handful of queries per table."""
    try:
        role = await _role(conn)
        server = await _server(conn, needs.slot)
        tables = {need.table: await _table(conn, need) for need in needs.tables}
    except psycopg.Error as exc:
        raise translate(exc, "cannot read the source database's catalog") from exc
    return SourceFacts(role=role, server=server, tables=tables)


async def _role(conn: psycopg.AsyncConnection[Any]) -> RoleFacts:
    row = await (await conn.execute(_ROLE_SQL, (list(_MEMBERSHIPS),))).fetchone()
    if row is None:  # pragma: no cover - current_user always has a pg_roles row
        return RoleFacts(name="current_user")
    name, superuser, replication, member_of = row
    return RoleFacts(
        name=str(name), superuser=bool(superuser), replication=bool(replication),
        member_of=frozenset(member_of or ()),
    )


async def _server(conn: psycopg.AsyncConnection[Any], slot: str) -> ServerSettings:
    markers = await (await conn.execute(_MARKERS_SQL, (list(_SERVICE_MARKERS),))).fetchall()
    service: Service = "self-hosted"
    for (name,) in markers:
        service = _SERVICE_MARKERS[name]
    row = await (await conn.execute(_SETTINGS_SQL)).fetchone()
    assert row is not None
    version, wal_level, max_slots, used_slots, max_senders, used_senders, database = row
    found = await (await conn.execute(_SLOT_SQL, (slot,))).fetchone()
    return ServerSettings(
        version_num=int(version), wal_level=str(wal_level), service=service,
        max_replication_slots=int(max_slots), used_replication_slots=int(used_slots),
        max_wal_senders=int(max_senders), used_wal_senders=int(used_senders),
        slot_exists=found is not None,
        slot_plugin=None if found is None else found[0],
        slot_database=None if found is None else found[1],
        database=str(database),
    )


async def _strings(conn: psycopg.AsyncConnection[Any], sql: str, oid: int) -> list[str]:
    return [str(r[0]) for r in await (await conn.execute(sql, (oid,))).fetchall()]


async def _identity(conn: psycopg.AsyncConnection[Any], oid: int, table: TableRef) -> IdentityFacts:
    primary_key = await _primary_key(conn, oid)
    row = await (await conn.execute(_IDENTITY_SQL, (oid,))).fetchone()
    identity = str(row[0]) if row else "d"
    candidates = tuple(
        (str(name), tuple(columns))
        for name, columns, _ in await (await conn.execute(_CANDIDATES_SQL, (oid,))).fetchall()
    )
    if identity == "d":
        carried = primary_key
    elif identity == "i":
        carried = tuple(row[1] or ()) if row else ()
    elif identity == "f":
        carried = tuple(
            await _strings(
                conn,
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::oid AND attnum > 0 "
                "AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
                oid,
            )
        )
    else:
        carried = ()
    return IdentityFacts(
        table=table, identity=identity,  # type: ignore[arg-type]
        carried=carried, primary_key=primary_key, candidates=candidates,
    )


async def _primary_key(conn: psycopg.AsyncConnection[Any], oid: int) -> tuple[str, ...]:
    row = await (await conn.execute(_PRIMARY_KEY_SQL, (oid,))).fetchone()
    return tuple(row[0]) if row and row[0] else ()


async def _table(conn: psycopg.AsyncConnection[Any], need: TableNeed) -> TableSourceFacts:
    row = await (await conn.execute(_TABLE_SQL, (need.table.schema, need.table.name))).fetchone()
    if row is None:
        return TableSourceFacts(exists=False)
    oid, partitioned, usage, select = int(row[0]), bool(row[1]), bool(row[2]), bool(row[3])
    unreadable = () if select else tuple(await _strings(conn, _UNREADABLE_SQL, oid))
    generated = frozenset(await _strings(conn, _GENERATED_SQL, oid))
    own = await _identity(conn, oid, need.table)
    if partitioned:
        # Each partition has its own replica identity; the parent's is never used.
        leaves = await (await conn.execute(_LEAVES_SQL, (oid,))).fetchall()
        identities = tuple([
            await _identity(conn, int(leaf), TableRef(str(schema), str(name)))
            for leaf, schema, name in leaves
        ])
    else:
        identities = (own,)
    return TableSourceFacts(
        exists=True, schema_usage=usage, select=select, unreadable_columns=unreadable,
        primary_key=own.primary_key, unique_not_null=own.candidates, generated=generated,
        partitioned=partitioned, identities=identities,
    )
