"""Reindex-and-swap planning: the ordered steps that take one hash alias from where its
lifecycle stands to `serving` on a fresh, fully seeded generation (sinks spec §3.1–3.5).

Live sync never pauses (§3.2, Python): while generation N+1 seeds, live writes of that
index go to N (serving) and N+1, the ids touched from the snapshot on are rebuilt once
more after the backfill, then both aliases move in one `_aliases` call and N is dropped.
Pure: it returns step values; the app and the adapters carry them out, and record each
step's `before` event ahead of it and its `after` event once it succeeded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from flusso.domain.errors import LifecycleError
from flusso.domain.lifecycle import (
    EventKind,
    LifecycleEvent,
    LifecycleState,
    State,
    next_generation_of,
    next_target_of,
)
from flusso.domain.naming import generation_name, parse_generation

# ---------------------------------------------------------------------------
# Names and what the cluster shows
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexNames:
    """The names one logical index has in one sink (see `domain.naming`)."""

    logical: str
    hash_alias: str
    bare_alias: str

    def generation(self, n: int) -> str:
        return generation_name(self.hash_alias, n)


@dataclass(frozen=True)
class ClusterView:
    """Alias holders (index names, in the order the sink listed them) and existing generations."""

    hash_holders: tuple[str, ...] = ()
    bare_holders: tuple[str, ...] = ()
    generations: tuple[int, ...] = ()


# ---------------------------------------------------------------------------
# Alias moves (§2.3)
# ---------------------------------------------------------------------------


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
class StageTarget(_Step):
    """Write meta `{generation, seeded: false}` for the hash alias (§2.6)."""

    hash_alias: str
    generation: int


@dataclass(frozen=True, kw_only=True)
class CreateGeneration(_Step):
    """Create the index (refresh `-1`, §2.8) unless it exists; an existing mapping is kept."""

    index: str
    generation: int


@dataclass(frozen=True, kw_only=True)
class StartDualWrite(_Step):
    """From now on live writes of `logical` go to `serving` (when set) and to `target`, and
    the ids they touch are recorded. Must take effect before the backfill's snapshot."""

    logical: str
    serving: str | None
    target: str


@dataclass(frozen=True, kw_only=True)
class Backfill(_Step):
    """Seed `index` from one snapshot of the root rows of `logical`."""

    logical: str
    index: str


@dataclass(frozen=True, kw_only=True)
class RebuildTouched(_Step):
    """Rebuild every id recorded since `StartDualWrite` from current rows into `index` (a
    Delete when the row is gone). Run it through the live pipeline's ordered queue so no
    rebuilt document can land after a newer live write of the same id."""

    logical: str
    index: str


@dataclass(frozen=True, kw_only=True)
class Refresh(_Step):
    """Refresh `index` once, then set its configured `refresh_interval` (§2.7)."""

    index: str
    refresh_interval: str


@dataclass(frozen=True, kw_only=True)
class SwapAliases(_Step):
    """Move the hash alias and the bare alias together in ONE `POST /_aliases` call.

    The bare alias is best-effort (§2.3): when the combined call fails and
    `bare_actions` is not empty, send `hash_actions` alone and only warn about the
    bare alias. An empty `actions` needs no call (its `after` event is still due).
    """

    hash_actions: tuple[AliasAction, ...]
    bare_actions: tuple[AliasAction, ...]

    @property
    def actions(self) -> tuple[AliasAction, ...]:
        return (*self.hash_actions, *self.bare_actions)

    def body(self) -> dict[str, Any]:
        return {"actions": [a.as_json() for a in self.actions]}


@dataclass(frozen=True, kw_only=True)
class EndDualWrite(_Step):
    """Live writes of `logical` go to `target` only; stop recording touched ids."""

    logical: str
    target: str


@dataclass(frozen=True, kw_only=True)
class DropGenerations(_Step):
    """Delete superseded generations of the hash alias (D3; 404 is success). May be empty."""

    indexes: tuple[str, ...]
    generations: tuple[int, ...]


@dataclass(frozen=True, kw_only=True)
class MarkSeeded(_Step):
    """Write meta `{generation, seeded: true}`: the rebuild is done."""

    hash_alias: str
    generation: int


Step = (
    StageTarget
    | CreateGeneration
    | StartDualWrite
    | Backfill
    | RebuildTouched
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
    if isinstance(step, StageTarget | CreateGeneration | MarkSeeded):
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


# ---------------------------------------------------------------------------
# Planning
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReindexVerdict:
    """Whether a reindex request may be accepted (D2); `reason` is the 409 body without `\\n`."""

    allowed: bool
    reason: str | None = None

    def __bool__(self) -> bool:
        return self.allowed


def can_request_reindex(
    index: str,
    states: Sequence[LifecycleState],
    *,
    queued: bool,
    skip_backfill: bool,
) -> ReindexVerdict:
    """D2: only when every OpenSearch sink serves `index` and no request for it waits."""
    if skip_backfill:
        return ReindexVerdict(
            False, f"reindex of {index} needs a backfill; server runs with --skip-backfill"
        )
    busy = queued or any(s.state is not State.SERVING or s.pending_request for s in states)
    if busy:
        return ReindexVerdict(False, f"reindex of {index} already in progress")
    return ReindexVerdict(True)


def plan_reindex(
    state: LifecycleState,
    names: IndexNames,
    view: ClusterView,
    *,
    refresh_interval: str,
) -> tuple[Step, ...]:
    """A requested rebuild of a serving hash alias into a never-used generation number.

    The `reindex_requested` intent is part of the plan unless the state already
    shows the pending request (the HTTP handler recorded it when it queued).
    """
    serving = state.serving_generation
    if state.state is not State.SERVING or serving is None:
        raise LifecycleError(
            f"reindex of {names.logical} already in progress",
            hint=f"{names.hash_alias} is {state.state}; wait until it is serving again",
        )
    target = next_target_of(view.generations, serving)
    stage = StageTarget(
        hash_alias=names.hash_alias,
        generation=target,
        before=None if state.pending_request else EventKind.REINDEX_REQUESTED,
        after=EventKind.REINDEX_STAGED,
    )
    created = CreateGeneration(
        index=names.generation(target), generation=target, after=EventKind.GENERATION_CREATED
    )
    return (stage, created, *_rebuild(names, view, serving, target, refresh_interval))


def plan_resume(
    state: LifecycleState,
    names: IndexNames,
    view: ClusterView,
    *,
    refresh_interval: str,
) -> tuple[Step, ...]:
    """The steps left after a restart (or a crash) from the journal's state, forward only.

    `new` plans the first build; `seeding` re-runs it into the same number; a staged
    rebuild creates its target; `reindexing` reuses its target and backfills from
    scratch (the touched-id record died with the process); `swapping` finishes the
    swap. `serving` with a pending request stages it; otherwise nothing is left.
    """
    s = state.state
    if s is State.NEW:
        return _first_build(
            names,
            view,
            next_generation_of(view.generations),
            refresh_interval,
            record_creation=True,
        )
    if s is State.SEEDING:
        return _first_build(
            names, view, _target(state, names), refresh_interval, record_creation=False
        )
    if s is State.SERVING:
        if not state.pending_request:
            return ()
        return plan_reindex(state, names, view, refresh_interval=refresh_interval)
    if s is State.REINDEX_STAGED:
        target = _target(state, names)
        created = CreateGeneration(
            index=names.generation(target), generation=target, after=EventKind.GENERATION_CREATED
        )
        serving = _serving(state, names)
        return (created, *_rebuild(names, view, serving, target, refresh_interval))
    if s is State.REINDEXING:
        target = _target(state, names)
        serving = _serving(state, names)
        steps = _rebuild(names, view, serving, target, refresh_interval)
        if target not in view.generations:
            steps = (CreateGeneration(index=names.generation(target), generation=target), *steps)
        return steps
    if s is State.SWAPPING:
        target = _target(state, names)
        return _finish(
            names,
            view,
            target,
            refresh_interval,
            hash_holders=view.hash_holders,
            bare_holders=view.bare_holders,
            record_swap_start=False,
        )
    return ()


def _target(state: LifecycleState, names: IndexNames) -> int:
    if state.target_generation is None:
        raise LifecycleError(f"{names.hash_alias}: {state.state} without a target generation")
    return state.target_generation


def _serving(state: LifecycleState, names: IndexNames) -> int:
    if state.serving_generation is None:
        raise LifecycleError(f"{names.hash_alias}: {state.state} without a serving generation")
    return state.serving_generation


def _first_build(
    names: IndexNames,
    view: ClusterView,
    target: int,
    refresh_interval: str,
    *,
    record_creation: bool,
) -> tuple[Step, ...]:
    """A hash alias's first generation: readable through the hash alias from creation (the
    one exception of invariant 5); the bare alias follows only when nothing else holds it
    (D5), so after a schema change it keeps serving the old hash until this one is seeded."""
    index = names.generation(target)
    steps: list[Step] = []
    if record_creation or target not in view.generations:
        steps.append(
            CreateGeneration(
                index=index,
                generation=target,
                after=EventKind.GENERATION_CREATED if record_creation else None,
            )
        )
    steps.append(StageTarget(hash_alias=names.hash_alias, generation=target))
    hash_holders, bare_holders = view.hash_holders, view.bare_holders
    early_hash: tuple[AliasAction, ...] = ()
    early_bare: tuple[AliasAction, ...] = ()
    if not hash_holders:
        early_hash = plan_alias_swap(names.hash_alias, hash_holders, index)
        hash_holders = (index,)
        own = all(parse_generation(names.hash_alias, h) is not None for h in bare_holders)
        if own:
            early_bare = plan_alias_swap(names.bare_alias, bare_holders, index)
            bare_holders = (index,)
    if early_hash or early_bare:
        steps.append(SwapAliases(hash_actions=early_hash, bare_actions=early_bare))
    steps.append(StartDualWrite(logical=names.logical, serving=None, target=index))
    steps.extend(_seed(names, index))
    steps.extend(
        _finish(
            names,
            view,
            target,
            refresh_interval,
            hash_holders=hash_holders,
            bare_holders=bare_holders,
            record_swap_start=True,
        )
    )
    return tuple(steps)


def _rebuild(
    names: IndexNames,
    view: ClusterView,
    serving: int,
    target: int,
    refresh_interval: str,
) -> tuple[Step, ...]:
    """Behind a serving generation: dual write, seed, re-apply touched ids, swap, drop."""
    index = names.generation(target)
    return (
        StartDualWrite(logical=names.logical, serving=names.generation(serving), target=index),
        *_seed(names, index),
        *_finish(
            names,
            view,
            target,
            refresh_interval,
            hash_holders=view.hash_holders,
            bare_holders=view.bare_holders,
            record_swap_start=True,
        ),
    )


def _seed(names: IndexNames, index: str) -> tuple[Step, ...]:
    return (
        Backfill(logical=names.logical, index=index, before=EventKind.BACKFILL_STARTED),
        RebuildTouched(logical=names.logical, index=index),
    )


def _finish(
    names: IndexNames,
    view: ClusterView,
    target: int,
    refresh_interval: str,
    *,
    hash_holders: tuple[str, ...],
    bare_holders: tuple[str, ...],
    record_swap_start: bool,
) -> tuple[Step, ...]:
    index = names.generation(target)
    # D3: every other generation of this hash alias, taken before any alias move.
    superseded = tuple(sorted(g for g in set(view.generations) if g != target))
    return (
        Refresh(
            index=index,
            refresh_interval=refresh_interval,
            before=EventKind.SWAP_STARTED if record_swap_start else None,
        ),
        SwapAliases(
            hash_actions=plan_alias_swap(names.hash_alias, hash_holders, index),
            bare_actions=plan_alias_swap(names.bare_alias, bare_holders, index),
            after=EventKind.ALIAS_SWAPPED,
        ),
        EndDualWrite(logical=names.logical, target=index),
        DropGenerations(
            indexes=tuple(names.generation(g) for g in superseded),
            generations=superseded,
            after=EventKind.GENERATIONS_DROPPED,
        ),
        MarkSeeded(hash_alias=names.hash_alias, generation=target, after=EventKind.SEEDED),
    )


def plan_abandon(state: LifecycleState, names: IndexNames) -> tuple[Step, ...]:
    """Roll a staged or running rebuild back (what §3.4 tells an operator to do by hand):
    stop dual writes, write meta `{serving, true}`, delete the target. Reconciliation then
    derives `serving`. Not for a first build, which has nothing to fall back to."""
    if state.state not in (State.REINDEX_STAGED, State.REINDEXING):
        raise LifecycleError(
            f"{names.hash_alias}: nothing to roll back in state {state.state}",
            hint="only a staged or running rebuild behind a serving generation can be abandoned",
        )
    serving, target = _serving(state, names), _target(state, names)
    return (
        EndDualWrite(logical=names.logical, target=names.generation(serving)),
        MarkSeeded(hash_alias=names.hash_alias, generation=serving),
        DropGenerations(indexes=(names.generation(target),), generations=(target,)),
    )
