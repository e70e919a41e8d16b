"""The vocabulary of generation-level work: the names one logical index has in a sink, what
the sink shows of them, alias moves, and the steps planners hand to whoever carries them out.

Pure values. Each step may name a journal event to record before it runs (the intent of a
visible or destructive step) and one to record once it succeeded; an executor that keeps
no journal ignores both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from flusso.domain.lifecycle import EventKind, LifecycleEvent
from flusso.domain.naming import convenience_alias, generation_name, hash_alias
from flusso.domain.types import IndexMapping


@dataclass(frozen=True)
class IndexNames:
    """The names one logical index has in one sink (see `domain.naming`)."""

    logical: str
    hash_alias: str
    bare_alias: str

    def generation(self, n: int) -> str:
        return generation_name(self.hash_alias, n)

    @classmethod
    def of(cls, prefix: str, mapping: IndexMapping) -> IndexNames:
        """The names of `mapping`'s index under `prefix`."""
        return cls(
            logical=mapping.index,
            hash_alias=hash_alias(prefix, mapping.index, mapping.hash),
            bare_alias=convenience_alias(prefix, mapping.index),
        )


@dataclass(frozen=True)
class ClusterView:
    """Alias holders (index names, in the order the sink listed them) and existing generations."""

    hash_holders: tuple[str, ...] = ()
    bare_holders: tuple[str, ...] = ()
    generations: tuple[int, ...] = ()


@dataclass(frozen=True)
class AliasAction:
    action: Literal["add", "remove"]
    index: str
    alias: str

    def as_json(self) -> dict[str, dict[str, str]]:
        """One entry of the `POST /_aliases` `actions` list."""
        return {self.action: {"index": self.index, "alias": self.alias}}


def plan_alias_swap(alias: str, holders: Sequence[str], target: str) -> tuple[AliasAction, ...]:
    """Point `alias` at exactly `target`: nothing when it already is the sole holder, else a
    `remove` per other holder (in holder order) followed by the `add`."""
    if list(holders) == [target]:
        return ()
    removes = tuple(AliasAction("remove", h, alias) for h in holders if h != target)
    return (*removes, AliasAction("add", target, alias))


# ---------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _Step:
    before: EventKind | None = None
    """Journal this event before the step runs (intent of a visible or destructive step)."""
    after: EventKind | None = None
    """Journal this event once the step succeeded."""


@dataclass(frozen=True, kw_only=True)
class _Marker(_Step):
    hash_alias: str
    generation: int


@dataclass(frozen=True, kw_only=True)
class StageTarget(_Marker):
    """Write the marker `{generation, seeded: false}` of the hash alias: a rebuild into that
    number is due, and it survives a crash."""


@dataclass(frozen=True, kw_only=True)
class MarkSeeded(_Marker):
    """Write the marker `{generation, seeded: true}`: the rebuild is done."""


@dataclass(frozen=True, kw_only=True)
class CreateGeneration(_Step):
    """Create the index with refresh off (nothing is searched before the swap) unless it
    exists; an existing mapping is kept."""

    index: str
    generation: int


@dataclass(frozen=True, kw_only=True)
class _OfIndex(_Step):
    logical: str


@dataclass(frozen=True, kw_only=True)
class _Seeding(_OfIndex):
    index: str


@dataclass(frozen=True, kw_only=True)
class Backfill(_Seeding):
    """Seed `index` from one snapshot of the root rows of `logical`."""


@dataclass(frozen=True, kw_only=True)
class RebuildTouched(_Seeding):
    """Rebuild every id recorded since `StartDualWrite` from current rows into `index` (a
    Delete when the row is gone). Run it through the live pipeline's ordered queue so no
    rebuilt document can land after a newer live write of the same id."""


@dataclass(frozen=True, kw_only=True)
class StartDualWrite(_OfIndex):
    """From now on live writes of `logical` go to `serving` (when set) and to `target`, and
    the ids they touch are recorded. Must take effect before the backfill's snapshot."""

    serving: str | None
    target: str


@dataclass(frozen=True, kw_only=True)
class EndDualWrite(_OfIndex):
    """Live writes of `logical` go to `target` only; stop recording touched ids."""

    target: str


@dataclass(frozen=True, kw_only=True)
class RouteWrites(_OfIndex):
    """Live writes of `logical` go to exactly `generations` (no ids are recorded)."""

    generations: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Refresh(_Step):
    """Refresh `index` once, then set its configured `refresh_interval`."""

    index: str
    refresh_interval: str


@dataclass(frozen=True, kw_only=True)
class SwapAliases(_Step):
    """Move the hash alias and the bare alias together in ONE `POST /_aliases` call.

    The bare alias is a convenience for people, so it is best-effort: when the combined
    call fails and `bare_actions` is not empty, send `hash_actions` alone and only warn
    about the bare alias. An empty `actions` needs no call (its `after` event is still due).
    """

    hash_actions: tuple[AliasAction, ...]
    bare_actions: tuple[AliasAction, ...]

    @property
    def actions(self) -> tuple[AliasAction, ...]:
        return (*self.hash_actions, *self.bare_actions)

    def body(self) -> dict[str, Any]:
        return {"actions": [a.as_json() for a in self.actions]}


@dataclass(frozen=True, kw_only=True)
class DropGenerations(_Step):
    """Delete superseded generations of the hash alias (a missing one counts as deleted, so a
    repeated drop succeeds). May be empty."""

    indexes: tuple[str, ...]
    generations: tuple[int, ...]


Step = (
    StageTarget
    | CreateGeneration
    | StartDualWrite
    | Backfill
    | RebuildTouched
    | RouteWrites
    | Refresh
    | SwapAliases
    | EndDualWrite
    | DropGenerations
    | MarkSeeded
)


def event_for(step: Step, kind: EventKind, *, sink: str, names: IndexNames) -> LifecycleEvent:
    """The journal event for `kind` around `step`, with the numbers `apply` needs."""
    generation: int | None = None
    dropped: tuple[int, ...] = ()
    detail: dict[str, Any] = {}
    if isinstance(step, _Marker | CreateGeneration):
        generation = step.generation
    if isinstance(step, DropGenerations):
        dropped = step.generations
        detail["dropped"] = list(step.indexes)
    if isinstance(step, SwapAliases):
        detail["actions"] = [a.as_json() for a in step.actions]
    return LifecycleEvent(
        sink=sink,
        logical=names.logical,
        hash_alias=names.hash_alias,
        kind=kind,
        generation=generation,
        dropped=dropped,
        detail=detail,
    )
