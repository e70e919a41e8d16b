"""What a run needs from the source database, and the findings when the catalog says it lacks it.

Pure: `plan_source_needs` walks the deployment into the tables, columns and keys a run
reads; `diagnose_source` compares them with the facts the caller fetched (role rights,
server settings, privileges, keys and replica identity) and returns one diagnostic per
problem, each naming the object and carrying the statement that fixes it. Nothing here
talks to a database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from flusso.domain.config.model import (
    Aggregate,
    Deployment,
    Field,
    ForeignKey,
    GroupSource,
    HasMany,
    HasOne,
    IndexSchema,
    Join,
    ManyToMany,
    Through,
)
from flusso.domain.documents.change import TableRef
from flusso.domain.validation import ERROR, Diagnostic, plan_column_checks

SOURCE = "source"
"""The `index` of a finding about the database rather than one index."""

ReplicaIdentity = Literal["d", "n", "f", "i"]
"""`pg_class.relreplident`: default (primary key), nothing, full, index."""

Service = Literal["self-hosted", "rds", "cloudsql", "azure", "supabase", "neon"]


# ---------------------------------------------------------------------------
# Needs
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TableNeed:
    """One table a run reads: the columns named by the schemas, whether it is read whole
    (`row.*` for to-many joins), and for a root table the key its documents use
    (`declared_key` None: the catalog primary key)."""

    table: TableRef
    columns: frozenset[str]
    whole_row: bool = False
    is_root: bool = False
    declared_key: str | None = None
    indexes: tuple[str, ...] = ()
    parent_columns: frozenset[str] = frozenset()


@dataclass(frozen=True)
class SourceNeeds:
    tables: tuple[TableNeed, ...]
    slot: str = "flusso"


def _to_many_targets(fields: Iterable[Field], schema: str, out: set[TableRef]) -> None:
    for f in fields:
        source = f.source
        if isinstance(source, GroupSource):
            _to_many_targets(source.fields, schema, out)
        elif isinstance(source, Join):
            if isinstance(source.kind, HasMany | ManyToMany):
                out.add(TableRef(schema, source.table))
            _to_many_targets(source.fields, schema, out)


def _parent_columns(fields: Iterable[Field], schema: str, out: dict[TableRef, set[str]]) -> None:
    for f in fields:
        source = f.source
        if isinstance(source, GroupSource):
            _parent_columns(source.fields, schema, out)
        elif isinstance(source, Join):
            kind = source.kind
            if isinstance(kind, HasOne | HasMany):
                out.setdefault(TableRef(schema, source.table), set()).add(kind.foreign_key)
            elif isinstance(kind, ManyToMany):
                through = kind.through
                out.setdefault(TableRef(schema, through.table), set()).add(through.left_key)
            _parent_columns(source.fields, schema, out)
        elif isinstance(source, Aggregate):
            key = source.key
            if isinstance(key, ForeignKey):
                out.setdefault(TableRef(schema, source.table), set()).add(key.column)
            elif isinstance(key, Through):
                out.setdefault(TableRef(schema, key.table), set()).add(key.left_key)


def _schema_tables(schema: IndexSchema) -> dict[TableRef, set[str]]:
    columns: dict[TableRef, set[str]] = {}
    for check in plan_column_checks(schema):
        found = columns.setdefault(check.table, set())
        if check.column is not None:
            found.add(check.column)
    return columns


def plan_source_needs(deployment: Deployment, *, slot: str = "flusso") -> SourceNeeds:
    """Every table the enabled indexes read, sorted, with what each read needs."""
    columns: dict[TableRef, set[str]] = {}
    whole: set[TableRef] = set()
    roots: dict[TableRef, str | None] = {}
    users: dict[TableRef, list[str]] = {}
    parents: dict[TableRef, set[str]] = {}
    for index in sorted(deployment.enabled_indexes(), key=lambda i: i.name):
        schema = index.schema
        root = TableRef(schema.db_schema, schema.table)
        roots.setdefault(root, schema.primary_key)
        for table, named in _schema_tables(schema).items():
            columns.setdefault(table, set()).update(named)
            users.setdefault(table, [])
            if index.name not in users[table]:
                users[table].append(index.name)
        _to_many_targets(schema.fields, schema.db_schema, whole)
        _parent_columns(schema.fields, schema.db_schema, parents)
    return SourceNeeds(
        tables=tuple(
            TableNeed(
                table=table,
                columns=frozenset(columns[table]),
                whole_row=table in whole,
                is_root=table in roots,
                declared_key=roots.get(table),
                indexes=tuple(users[table]),
                parent_columns=frozenset(parents.get(table, ())),
            )
            for table in sorted(columns)
        ),
        slot=slot,
    )


# ---------------------------------------------------------------------------
# Facts
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RoleFacts:
    """The connected role: its attributes and the roles it is a member of (transitively)."""

    name: str
    superuser: bool = False
    replication: bool = False
    member_of: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ServerSettings:
    """Settings and usage that logical replication depends on."""

    version_num: int
    wal_level: str
    service: Service = "self-hosted"
    max_replication_slots: int = 10
    used_replication_slots: int = 0
    max_wal_senders: int = 10
    used_wal_senders: int = 0
    slot_exists: bool = False
    slot_plugin: str | None = None
    slot_database: str | None = None
    database: str = ""


@dataclass(frozen=True)
class IdentityFacts:
    """The replica identity of one table, or of one partition of a partitioned table (each
    partition has its own).

    `carried` are the columns a deleted row's WAL record carries: the primary key under
    the default identity, the index's columns under USING INDEX, every column under FULL.
    `candidates` are the unique, not-null indexes USING INDEX accepts (name, columns).
    """

    table: TableRef
    identity: ReplicaIdentity = "d"
    carried: tuple[str, ...] = ()
    primary_key: tuple[str, ...] = ()
    candidates: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def addressable(self) -> bool:
        """Whether UPDATE and DELETE may run once the table is published."""
        return (
            self.identity == "f"
            or (self.identity == "i" and bool(self.carried))
            or (self.identity == "d" and bool(self.primary_key))
        )

    def carries(self, columns: Iterable[str]) -> bool:
        return self.identity == "f" or set(columns) <= set(self.carried)


@dataclass(frozen=True)
class TableSourceFacts:
    """What the catalog says about one needed table (`exists` False: nothing else is read).

    `identities` holds the table's own replica identity, or each partition's for a
    partitioned table.
    """

    exists: bool = True
    schema_usage: bool = True
    select: bool = True
    unreadable_columns: tuple[str, ...] = ()
    primary_key: tuple[str, ...] = ()
    unique_not_null: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (index name, columns)
    generated: frozenset[str] = frozenset()
    partitioned: bool = False
    identities: tuple[IdentityFacts, ...] = ()


@dataclass(frozen=True)
class SourceFacts:
    role: RoleFacts
    server: ServerSettings
    tables: Mapping[TableRef, TableSourceFacts] = field(default_factory=dict)


# ---------------------------------------------------------------------------
# Diagnosis
# ---------------------------------------------------------------------------


def ident(name: str) -> str:
    """A double-quoted SQL identifier, as Postgres reads it."""
    return '"' + name.replace('"', '""') + '"'


def table_sql(table: TableRef) -> str:
    return f"{ident(table.schema)}.{ident(table.name)}"


REPLICATION_ROLES: Mapping[str, str] = {
    "rds_replication": "rds",
    "neon_superuser": "neon",
}
"""Memberships managed services grant replication through (the role attribute itself is
not inherited, but these services honour the membership)."""


def may_replicate(role: RoleFacts) -> bool:
    """A superuser, the REPLICATION attribute, or a managed service's replication role."""
    return role.superuser or role.replication or bool(role.member_of & set(REPLICATION_ROLES))


def replication_fix(role: str, service: Service) -> str:
    """The statement (and who runs it) that lets `role` stream changes on `service`."""
    quoted = ident(role)
    if service == "rds":
        return f"GRANT rds_replication TO {quoted};  -- as the master user (RDS and Aurora)"
    if service == "cloudsql":
        return (
            f"ALTER USER {quoted} WITH REPLICATION;  -- as a cloudsqlsuperuser member "
            "(the instance needs the flag cloudsql.logical_decoding = on)"
        )
    if service == "azure":
        return f"ALTER ROLE {quoted} WITH REPLICATION;  -- as the server admin (azure_pg_admin)"
    if service == "supabase":
        return f"ALTER ROLE {quoted} WITH REPLICATION;  -- as the postgres role"
    if service == "neon":
        return (
            f"ALTER ROLE {quoted} WITH REPLICATION;  -- as the project owner; roles made in "
            "the Neon console are neon_superuser members and already may"
        )
    return f"ALTER ROLE {quoted} REPLICATION;  -- as a superuser"


def wal_level_fix(service: Service) -> str:
    if service == "rds":
        return "set rds.logical_replication = 1 in the DB parameter group, then reboot"
    if service == "cloudsql":
        return "set the database flag cloudsql.logical_decoding = on, then restart the instance"
    if service == "azure":
        return (
            "set the server parameter wal_level = logical (az postgres flexible-server "
            "parameter set --name wal_level --value logical), then restart"
        )
    if service == "neon":
        return "enable logical replication in the project settings (Settings → Logical Replication)"
    if service == "supabase":
        return "Supabase runs with wal_level = logical; ask support if it does not"
    return "ALTER SYSTEM SET wal_level = logical;  -- then restart Postgres"


def _finding(field: str, message: str, fix: str, severity: str = ERROR) -> Diagnostic:
    return Diagnostic(SOURCE, field, severity, message, fix=fix)  # type: ignore[arg-type]


def diagnose_replication(server: ServerSettings, role: RoleFacts, slot: str) -> list[Diagnostic]:
    """Version, wal_level, the role's right to replicate, and room for one more slot and stream."""
    out: list[Diagnostic] = []
    if server.version_num < 130000:
        out.append(_finding(
            "server_version",
            f"the server is PostgreSQL {server.version_num // 10000}; flusso needs 13 or newer",
            "upgrade the server, or point the source at one that is",
        ))
    if server.wal_level != "logical":
        out.append(_finding(
            "wal_level",
            f"the server runs with wal_level = {server.wal_level}; logical replication needs "
            "wal_level = logical",
            wal_level_fix(server.service),
        ))
    if not may_replicate(role):
        out.append(_finding(
            "role",
            f"role {role.name} may not stream changes (no REPLICATION right)",
            replication_fix(role.name, server.service),
        ))
    if server.slot_exists:
        if server.slot_plugin != "pgoutput":
            plugin = server.slot_plugin or "none (a physical slot)"
            out.append(_finding(
                f"slot {slot}",
                f"replication slot {slot} exists with plugin {plugin}, not pgoutput",
                f"SELECT pg_drop_replication_slot('{slot}');  -- or choose another --slot",
            ))
        elif server.slot_database and server.slot_database != server.database:
            out.append(_finding(
                f"slot {slot}",
                f"replication slot {slot} belongs to database {server.slot_database}, "
                f"not {server.database}",
                "choose another --slot / FLUSSO_SLOT, or connect to that database",
            ))
    else:
        if server.used_replication_slots >= server.max_replication_slots:
            out.append(_finding(
                "max_replication_slots",
                f"all {server.max_replication_slots} replication slots are in use; flusso "
                f"needs one for slot {slot}",
                "drop an unused slot (SELECT pg_drop_replication_slot('<name>') FROM "
                "pg_replication_slots WHERE NOT active), or raise max_replication_slots "
                "and restart",
            ))
    if server.used_wal_senders >= server.max_wal_senders:
        out.append(_finding(
            "max_wal_senders",
            f"all {server.max_wal_senders} WAL senders are busy; flusso streams through one",
            "raise max_wal_senders and restart, or stop an idle replication client",
        ))
    return out


def _grant_select(table: TableRef, role: str, columns: Sequence[str] = ()) -> str:
    if columns:
        listed = ", ".join(ident(c) for c in columns)
        return f"GRANT SELECT ({listed}) ON {table_sql(table)} TO {ident(role)};"
    return f"GRANT SELECT ON {table_sql(table)} TO {ident(role)};"


def _privileges(need: TableNeed, facts: TableSourceFacts, role: str) -> list[Diagnostic]:
    table = need.table
    if not facts.schema_usage:
        return [_finding(
            str(table),
            f"role {role} may not use schema {table.schema}, so it cannot read {table}",
            f"GRANT USAGE ON SCHEMA {ident(table.schema)} TO {ident(role)}; "
            + _grant_select(table, role)
            + f"  -- and for tables made later: ALTER DEFAULT PRIVILEGES IN SCHEMA "
            f"{ident(table.schema)} GRANT SELECT ON TABLES TO {ident(role)};",
        )]
    if facts.select:
        return []
    missing = sorted(set(facts.unreadable_columns) & set(need.columns))
    if need.whole_row:
        # To-many joins read `row.*`: column grants cannot cover that.
        return [_finding(
            str(table),
            f"role {role} may not read table {table} (a to-many join reads whole rows)",
            _grant_select(table, role),
        )]
    if not missing:
        return []
    return [_finding(
        str(table),
        f"role {role} may not read column(s) {', '.join(missing)} of {table}",
        _grant_select(table, role) + "  -- or only the columns: "
        + _grant_select(table, role, missing),
    )]


def _identity_fix(facts: IdentityFacts, wanted: Sequence[str] = ()) -> str:
    """USING INDEX on a unique not-null index covering `wanted`, else FULL."""
    for name, columns in facts.candidates:
        if wanted and set(wanted) <= set(columns):
            return (
                f"ALTER TABLE {table_sql(facts.table)} REPLICA IDENTITY USING INDEX {ident(name)};"
            )
    if not wanted and facts.candidates:
        name = facts.candidates[0][0]
        return f"ALTER TABLE {table_sql(facts.table)} REPLICA IDENTITY USING INDEX {ident(name)};"
    return f"ALTER TABLE {table_sql(facts.table)} REPLICA IDENTITY FULL;"


def _keys(need: TableNeed, facts: TableSourceFacts) -> list[Diagnostic]:
    table = need.table
    out: list[Diagnostic] = []
    if need.is_root and need.declared_key is None and not facts.primary_key:
        candidates = [columns for _, columns in facts.unique_not_null if len(columns) == 1]
        suggestion = (
            f"declare `primary_key: {candidates[0][0]}` in the schema of index "
            f"{', '.join(need.indexes)} (a unique, not-null column)"
            if candidates
            else f"ALTER TABLE {table_sql(table)} ADD PRIMARY KEY (…);  -- or declare "
            "`primary_key:` on a unique, not-null column"
        )
        out.append(_finding(
            str(table),
            f"table {table} has no primary key and index {', '.join(need.indexes)} declares "
            "none, so its rows cannot be addressed as documents",
            suggestion,
        ))
    key = (need.declared_key,) if need.declared_key else facts.primary_key
    unparented: list[IdentityFacts] = []
    for identity in facts.identities:
        where = str(identity.table)
        if not identity.addressable:
            out.append(_finding(
                where,
                f"table {where} has no primary key or replica identity: once published, its "
                "UPDATE and DELETE statements fail and deletes cannot be followed",
                _identity_fix(identity),
            ))
            continue
        if need.is_root and key and not identity.carries(key):
            out.append(_finding(
                where,
                f"a deleted row of {where} carries only ({', '.join(identity.carried)}) "
                f"in the WAL, but its documents are keyed by {', '.join(key)}: deletes "
                "could not be followed",
                _identity_fix(identity, key),
            ))
        if need.parent_columns and not identity.carries(need.parent_columns):
            unparented.append(identity)
    if unparented:
        columns = ", ".join(sorted(need.parent_columns))
        out.append(_finding(
            str(table),
            f"deleting a row of {table}, or changing its {columns}, leaves the old parent's "
            "document stale until it changes again: the WAL does not carry the old "
            f"{columns}",
            " ".join(
                f"ALTER TABLE {table_sql(identity.table)} REPLICA IDENTITY FULL;"
                for identity in unparented
            ) + ("  -- and on each partition made later" if facts.partitioned else ""),
            severity="warning",
        ))
    if need.is_root:
        generated = sorted(set(key) & facts.generated)
        if generated:
            out.append(_finding(
                str(table),
                f"the document key of {table} uses generated column(s) {', '.join(generated)}, "
                "which logical replication does not send",
                "declare a `primary_key:` on a stored, non-generated unique column",
            ))
    return out


def diagnose_tables(needs: SourceNeeds, facts: SourceFacts) -> list[Diagnostic]:
    """Privileges and keys of every needed table, in table order.

    A missing table is left to the column checks, which name the schema field.
    """
    out: list[Diagnostic] = []
    role = facts.role.name
    for need in needs.tables:
        table_facts = facts.tables.get(need.table)
        if table_facts is None or not table_facts.exists:
            continue
        if not facts.role.superuser:
            out.extend(_privileges(need, table_facts, role))
        out.extend(_keys(need, table_facts))
    return out


def diagnose_source(needs: SourceNeeds, facts: SourceFacts) -> list[Diagnostic]:
    """Every finding about the server, the role and the needed tables."""
    replication = diagnose_replication(facts.server, facts.role, needs.slot)
    return replication + diagnose_tables(needs, facts)


class PublicationView(Protocol):
    """The publication's coverage as the catalog adapter reports it."""

    @property
    def satisfied(self) -> bool: ...
    @property
    def manageable(self) -> bool: ...
    @property
    def exists(self) -> bool: ...
    @property
    def missing(self) -> Sequence[TableRef]: ...
    @property
    def missing_actions(self) -> Sequence[str]: ...
    @property
    def blockers(self) -> Sequence[str]: ...
    @property
    def remediation(self) -> Sequence[str]: ...
    @property
    def via_root_fix(self) -> str | None: ...


def diagnose_publication(
    coverage: PublicationView, publication: str, manage: bool
) -> list[Diagnostic]:
    """A gap `run` will not close itself is an error carrying the statements for its owner;
    partitions published under their own names are a warning (flusso maps them)."""
    out: list[Diagnostic] = []
    where = f"publication {publication}"
    if not coverage.satisfied and not (manage and coverage.manageable):
        if not coverage.exists:
            gap = f"publication {publication} does not exist"
        else:
            parts = []
            if coverage.missing:
                parts.append(", ".join(str(t) for t in coverage.missing))
            if coverage.missing_actions:
                parts.append(f"the {', '.join(coverage.missing_actions)} action(s)")
            gap = f"publication {publication} does not publish {' and '.join(parts)}"
        reason = (
            "flusso does not manage publications (manage_publication = false)"
            if not manage
            else "flusso may not change it: " + "; ".join(coverage.blockers)
        )
        out.append(_finding(where, f"{gap}; {reason}", " ".join(coverage.remediation)))
    if coverage.via_root_fix is not None:
        out.append(_finding(
            where,
            f"publication {publication} publishes partitions under their own names "
            "(publish_via_partition_root is off); flusso maps them to their partitioned table",
            coverage.via_root_fix,
            severity="warning",
        ))
    return out


def is_blocking(diagnostic: Diagnostic) -> bool:
    return diagnostic.severity == ERROR

