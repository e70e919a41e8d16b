"""Reverse-resolution paths (engine spec §7): how a changed table leads back to root documents.

Pure: describes the chain of hops from a changed table up to the root of one
index. Running the lookups is the adapter's job.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from flusso.domain.config.model import (
    Aggregate,
    BelongsTo,
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

HopKind = Literal["foreign_key", "belongs_to", "junction", "far"]


@dataclass(frozen=True)
class Hop:
    """One step from the keys of `child_table` rows to the key values of their parents.

    * `foreign_key`: `SELECT column FROM child_table WHERE <child key> = …`
      (has_one, has_many, aggregate by foreign key).
    * `belongs_to`: `SELECT <parent key> FROM parent_table WHERE column = <target key>`;
      `target_key` names the entry of a changed row's key to use.
    * `junction`: the changed row is the junction; its `left_key` is the parent key,
      read from the row key when present, else `SELECT left_key FROM junction WHERE …`.
    * `far`: `SELECT left_key FROM junction WHERE right_key = <far key>`.

    `parent_key` is the declared root key at depth 0 and None deeper (the parent
    table's catalog primary key, looked up by the adapter).
    """

    kind: HopKind
    child_table: str
    parent_table: str
    parent_key: str | None
    column: str | None = None
    target_key: str | None = None
    through: Through | None = None

    @property
    def lookup_table(self) -> str:
        """The table the hop's lookup query reads."""
        if self.kind == "belongs_to":
            return self.parent_table
        if self.through is not None:
            return self.through.table
        return self.child_table

    @property
    def tuple_column(self) -> str | None:
        """The column of the changed row whose WAL tuple values are parent candidates (R-9)."""
        if self.kind == "foreign_key":
            return self.column
        if self.kind == "junction" and self.through is not None:
            return self.through.left_key
        return None


@dataclass(frozen=True)
class ResolutionPath:
    """Hops ordered from the changed table upwards; the last hop yields root key values."""

    hops: tuple[Hop, ...]


def _relation_of(f: Field) -> Join | Aggregate | None:
    source = f.source
    if isinstance(source, (Join, Aggregate)):
        return source
    return None


def _children(f: Field) -> tuple[Field, ...]:
    source = f.source
    if isinstance(source, (GroupSource, Join)):
        return source.fields
    return ()


def _through_of(relation: Join | Aggregate) -> Through | None:
    if isinstance(relation, Join) and isinstance(relation.kind, ManyToMany):
        return relation.kind.through
    if isinstance(relation, Aggregate) and isinstance(relation.key, Through):
        return relation.key
    return None


def _find_chains(
    fields: Iterable[Field],
    table: str,
    prefix: list[Join | Aggregate],
    out: list[list[Join | Aggregate]],
) -> None:
    for f in fields:
        relation = _relation_of(f)
        if relation is None:
            _find_chains(_children(f), table, prefix, out)
            continue
        prefix.append(relation)
        through = _through_of(relation)
        if relation.table == table or (through is not None and through.table == table):
            out.append(list(prefix))
        _find_chains(_children(f), table, prefix, out)
        prefix.pop()


def _hop(
    relation: Join | Aggregate, child_table: str, parent_table: str, parent_key: str | None
) -> Hop:
    through = _through_of(relation)
    if through is not None:
        kind: HopKind = "junction" if child_table == through.table else "far"
        return Hop(kind, child_table, parent_table, parent_key, through=through)
    if isinstance(relation, Join) and isinstance(relation.kind, BelongsTo):
        return Hop(
            "belongs_to", child_table, parent_table, parent_key,
            column=relation.kind.column, target_key=relation.primary_key,
        )
    if isinstance(relation, Join) and isinstance(relation.kind, (HasOne, HasMany)):
        column = relation.kind.foreign_key
    elif isinstance(relation, Aggregate) and isinstance(relation.key, ForeignKey):
        column = relation.key.column
    else:  # pragma: no cover - the model admits no other relation shape
        raise TypeError(f"unsupported relation {relation!r}")
    return Hop("foreign_key", child_table, parent_table, parent_key, column=column)


def plan_resolution_paths(schema: IndexSchema, table: str) -> list[ResolutionPath]:
    """Every path from the root to a relation whose target or junction is `table`.

    Groups add no hop; a table used several times yields several paths. A
    relation whose target is the root table itself is found too (R-23).
    """
    chains: list[list[Join | Aggregate]] = []
    _find_chains(schema.fields, table, [], chains)
    paths: list[ResolutionPath] = []
    for chain in chains:
        hops: list[Hop] = []
        child = table
        for depth in range(len(chain) - 1, -1, -1):
            relation = chain[depth]
            if depth == 0:
                parent_table, parent_key = schema.table, schema.primary_key
            else:
                parent_table, parent_key = chain[depth - 1].table, None
            hops.append(_hop(relation, child, parent_table, parent_key))
            child = parent_table
        paths.append(ResolutionPath(tuple(hops)))
    return paths
