"""Publication coverage: whether the publication streams every table the indexes read, whether
flusso may add the missing ones itself, and the SQL an operator runs otherwise.

Pure: the catalog facts come from the caller (the Postgres adapter or a fake).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from flusso.domain.documents.change import TableRef

ReplicaIdentity = Literal["d", "n", "f", "i"]
"""`pg_class.relreplident`: default (primary key), nothing, full, index."""

ACTIONS = ("insert", "update", "delete", "truncate")
"""What the publication must publish: every change flusso follows, truncates included."""


@dataclass(frozen=True)
class Coverage:
    """How far the publication covers the tables the enabled indexes read.

    `present` and `missing` are sorted; `missing_actions` are the ones of `ACTIONS` it
    does not publish; `blockers` say why flusso may not close the gap itself (empty when
    it may); `remediation` is the SQL an operator runs to close it (empty when nothing is
    missing). `via_root_fix` is the statement that makes partitions' changes carry their
    partitioned table's name: advice, since flusso maps partitions itself.
    """

    satisfied: bool
    manageable: bool
    will_manage: bool
    present: tuple[TableRef, ...]
    missing: tuple[TableRef, ...]
    blockers: tuple[str, ...]
    remediation: tuple[str, ...]
    exists: bool = True
    missing_actions: tuple[str, ...] = ()
    partitioned: tuple[TableRef, ...] = ()
    via_root_fix: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "satisfied": self.satisfied,
            "manageable": self.manageable,
            "will_manage": self.will_manage,
            "present": [str(t) for t in self.present],
            "missing": [str(t) for t in self.missing],
            "blockers": list(self.blockers),
            "remediation": list(self.remediation),
            "exists": self.exists,
            "missing_actions": list(self.missing_actions),
            "via_root_fix": self.via_root_fix,
        }


@dataclass(frozen=True)
class TableStanding:
    """What the catalog says about a table that is not published yet."""

    owned: bool
    has_primary_key: bool
    has_identity_index: bool
    identity: ReplicaIdentity

    @property
    def addressable(self) -> bool:
        """Whether the WAL can carry a key for the table's rows.

        Postgres refuses UPDATE and DELETE on a published table without one, so
        publishing it would break the application's own writes.
        """
        if self.identity == "f":
            return True
        if self.identity == "i":
            return self.has_identity_index
        if self.identity == "d":
            return self.has_primary_key
        return False


@dataclass(frozen=True)
class PublicationFacts:
    """The publication and the role as the catalog shows them. `standings` holds the
    missing tables (None for a table that does not exist)."""

    exists: bool
    owned: bool
    published: Collection[TableRef]
    superuser: bool
    can_create: bool
    standings: Mapping[TableRef, TableStanding | None]
    actions: Collection[str] = ACTIONS  # those of ACTIONS it publishes
    via_root: bool = True  # publish_via_partition_root
    partitioned: Collection[TableRef] = ()  # the required tables that are partitioned


def missing_tables(required: Collection[TableRef], published: Collection[TableRef]) -> list[TableRef]:
    """The required tables the publication lacks, sorted."""
    return [t for t in sorted(set(required)) if t not in set(published)]


def plan_coverage(
    publication: str, required: Collection[TableRef], manage: bool, facts: PublicationFacts
) -> Coverage:
    """The coverage verdict: what is missing, and whether flusso may add it.

    A publication that does not exist is never satisfied, even for no tables: a slot
    streaming it would fail on its first change.
    """
    ordered = sorted(set(required))
    present = tuple(t for t in ordered if t in set(facts.published))
    missing = tuple(missing_tables(ordered, facts.published))
    missing_actions = (
        tuple(a for a in ACTIONS if a not in set(facts.actions)) if facts.exists else ()
    )
    partitioned = tuple(t for t in ordered if t in set(facts.partitioned))
    satisfied = facts.exists and not missing and not missing_actions
    ownership: list[str] = []
    keyless: list[str] = []
    owns_all_missing = True
    for table in missing:
        standing = facts.standings.get(table)
        if standing is None:
            owns_all_missing = False
            ownership.append(f"table {table} does not exist")
            continue
        if not standing.owned:
            owns_all_missing = False
            ownership.append(f"role does not own table {table}")
        if not standing.addressable:
            keyless.append(
                f"table {table} has no primary key or replica identity; publishing it would "
                f"make UPDATE and DELETE on it fail (add a primary key or set REPLICA IDENTITY)"
            )
    if satisfied or facts.superuser:
        manageable = True
    elif facts.exists:
        if not facts.owned:
            ownership.append(f'role does not own publication "{publication}"')
        manageable = owns_all_missing and facts.owned
    else:
        if not facts.can_create:
            ownership.append("role lacks the CREATE privilege on the database")
        manageable = owns_all_missing and facts.can_create
    if manageable:
        ownership.clear()
    # flusso never publishes a table it cannot address, whoever runs it: the
    # application's UPDATE and DELETE on it would start failing.
    if keyless:
        manageable = False
    remediation: list[str] = []
    if not facts.exists or missing:
        remediation.append(
            plan_publication_sql(facts.exists, publication, missing, via_root=bool(partitioned))
        )
    if missing_actions:
        remediation.append(plan_actions_sql(publication))
    return Coverage(
        satisfied=satisfied,
        manageable=manageable,
        will_manage=manage and manageable and not satisfied,
        present=present,
        missing=missing,
        blockers=tuple(ownership + keyless),
        remediation=tuple(remediation),
        exists=facts.exists,
        missing_actions=missing_actions,
        partitioned=partitioned,
        via_root_fix=(
            plan_via_root_sql(publication) if facts.exists and partitioned and not facts.via_root
            else None
        ),
    )


def plan_publication_sql(
    exists: bool, publication: str, tables: Sequence[TableRef], *, via_root: bool = False
) -> str:
    """`CREATE PUBLICATION … FOR TABLE …;` or `ALTER PUBLICATION … ADD TABLE …;` in sorted order.

    A new publication publishes partitions through their partitioned table (`via_root`)
    when the indexes read one, so their changes carry the name the schemas use.
    Identifiers are double-quoted as Postgres reads them; generated SQL that flusso runs
    itself quotes through `adapters/postgres/quoting.py` (the domain cannot import it).
    """
    listed = ", ".join(f"{_ident(t.schema)}.{_ident(t.name)}" for t in sorted(tables))
    if exists:
        return f"ALTER PUBLICATION {_ident(publication)} ADD TABLE {listed};"
    target = f" FOR TABLE {listed}" if listed else ""
    options = " WITH (publish_via_partition_root = true)" if via_root else ""
    return f"CREATE PUBLICATION {_ident(publication)}{target}{options};"


def plan_actions_sql(publication: str) -> str:
    """The statement that makes the publication publish every one of `ACTIONS`."""
    return f"ALTER PUBLICATION {_ident(publication)} SET (publish = '{', '.join(ACTIONS)}');"


def plan_via_root_sql(publication: str) -> str:
    return f"ALTER PUBLICATION {_ident(publication)} SET (publish_via_partition_root = true);"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'

