"""Index lifecycle planning: the ordered steps that take one hash alias from where it stands
to `serving` on a fully seeded generation, whether at a start, after a backfill, for a
requested rebuild or when a crash left one half done.

Live sync never pauses: while generation N+1 seeds, live writes of that index go to N
(serving) and N+1, the ids touched from the snapshot on are rebuilt once more after the
backfill, then both aliases move in one `_aliases` call and N is dropped. Pure: it returns
step values (`domain.generations`); the app and the adapters carry them out, recording
each step's `before` event ahead of it and its `after` event once it succeeded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flusso.domain.errors import LifecycleError
from flusso.domain.generations import (
    AliasAction,
    Backfill,
    ClusterView,
    CreateGeneration,
    DropGenerations,
    EndDualWrite,
    IndexNames,
    MarkSeeded,
    RebuildTouched,
    Refresh,
    RouteWrites,
    StageTarget,
    StartDualWrite,
    Step,
    SwapAliases,
    event_for,
    plan_alias_swap,
)
from flusso.domain.lifecycle import (
    EventKind,
    LifecycleState,
    Meta,
    State,
    next_generation_of,
    next_target_of,
)
from flusso.domain.naming import parse_generation

# The step vocabulary is importable from here too, beside the planners that emit it.
__all__ = [
    "AliasAction",
    "Backfill",
    "ClusterView",
    "CreateGeneration",
    "DropGenerations",
    "EndDualWrite",
    "IndexNames",
    "MarkSeeded",
    "RebuildTouched",
    "Refresh",
    "ReindexVerdict",
    "RouteWrites",
    "SiblingMarker",
    "StageTarget",
    "StartDualWrite",
    "StartFacts",
    "StartPlan",
    "Step",
    "SwapAliases",
    "can_request_reindex",
    "event_for",
    "plan_abandon",
    "plan_alias_swap",
    "plan_reindex",
    "plan_resume",
    "plan_stage",
    "plan_start",
    "plan_swap_in",
]


# ---------------------------------------------------------------------------
# A run's start and the end of its backfill
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SiblingMarker:
    """The marker of another schema hash of the same logical index, and its generations."""

    hash_alias: str
    marker: Meta
    generations: tuple[int, ...]


@dataclass(frozen=True)
class StartFacts:
    """What a generation-keeping sink shows for one hash alias when a run starts.

    `marker_generation_exists` tells whether the generation the marker names exists
    (False without a marker); `siblings` are the markers of the index's other hashes.
    """

    marker: Meta | None
    marker_generation_exists: bool
    view: ClusterView
    siblings: tuple[SiblingMarker, ...] = ()


@dataclass(frozen=True)
class StartPlan:
    """The generation a run writes to, whether it is already seeded, and the steps to take.

    `missing` is a seeded generation that vanished (it is rebuilt into `generation`);
    `serving_while_staged` the generation live writes stay on because nothing will seed
    the staged one; `bare_alias_waits` that the bare alias stays on another schema hash
    until this one is seeded.
    """

    generation: int
    seeded: bool
    steps: tuple[Step, ...]
    missing: int | None = None
    serving_while_staged: str | None = None
    bare_alias_waits: bool = False


def plan_start(names: IndexNames, facts: StartFacts, *, skip_backfill: bool) -> StartPlan:
    """What a start does for one hash alias before the backfill.

    No marker: a fresh generation past every existing number (orphans are skipped over,
    never reused). A seeded marker whose generation vanished must not serve an empty
    index: rebuild into a fresh number. Unseeded: create the generation and stage it.
    The hash alias is pointed at the generation when it is seeded or nothing holds the
    alias yet (a first build is readable while it seeds); the bare alias follows only
    when it holds nothing of another schema hash, so a schema change keeps the old hash
    readable under the bare name until the new one is seeded. Without a backfill a staged
    rebuild never finishes, so live writes stay on the generation readers see. Every
    other schema hash whose marker says seeded is staged again: reverting to it later
    must rebuild it rather than serve data that stopped changing.
    """
    marker, view = facts.marker, facts.view
    missing: int | None = None
    if marker is None:
        number, seeded = next_generation_of(view.generations), False
    elif marker.seeded and not facts.marker_generation_exists:
        missing = marker.generation
        number, seeded = next_target_of(view.generations, marker.generation), False
    else:
        number, seeded = marker.generation, marker.seeded
    index = names.generation(number)
    steps: list[Step] = []
    if not seeded:
        steps.append(CreateGeneration(index=index, generation=number))
        steps.append(StageTarget(hash_alias=names.hash_alias, generation=number))
    route: tuple[str, ...] = (index,)
    serving_while_staged: str | None = None
    waits = False
    if seeded or not view.hash_holders:
        own = seeded or _holds_only_own(names, view.bare_holders)
        waits = not own
        steps.append(
            SwapAliases(
                hash_actions=plan_alias_swap(names.hash_alias, view.hash_holders, index),
                bare_actions=plan_alias_swap(names.bare_alias, view.bare_holders, index)
                if own
                else (),
            )
        )
    elif skip_backfill and any(holder != index for holder in view.hash_holders):
        serving_while_staged = _serving_holder(names, index, view.hash_holders)
        route = (serving_while_staged,)
    steps.append(RouteWrites(logical=names.logical, generations=route))
    for sibling in facts.siblings:
        if sibling.hash_alias == names.hash_alias or not sibling.marker.seeded:
            continue
        target = next_target_of(sibling.generations, sibling.marker.generation)
        steps.append(StageTarget(hash_alias=sibling.hash_alias, generation=target))
    return StartPlan(number, seeded, tuple(steps), missing, serving_while_staged, waits)


def plan_stage(names: IndexNames, view: ClusterView) -> StageTarget:
    """Stage a rebuild into a never-used number; the next start seeds it behind the serving
    generation."""
    return StageTarget(hash_alias=names.hash_alias, generation=next_generation_of(view.generations))


def plan_swap_in(
    names: IndexNames,
    view: ClusterView,
    target: int,
    refresh_interval: str,
    *,
    hash_holders: tuple[str, ...] | None = None,
    bare_holders: tuple[str, ...] | None = None,
    record_swap_start: bool = True,
) -> tuple[Step, ...]:
    """Once `target` holds every document: make it searchable, move both aliases to it,
    and drop every other generation of the hash alias, orphans included (taken from
    `view`, before any alias move), then mark it seeded. The holders default to `view`'s."""
    index = names.generation(target)
    superseded = tuple(sorted(g for g in set(view.generations) if g != target))
    return (
        Refresh(
            index=index,
            refresh_interval=refresh_interval,
            before=EventKind.SWAP_STARTED if record_swap_start else None,
        ),
        SwapAliases(
            hash_actions=plan_alias_swap(
                names.hash_alias, view.hash_holders if hash_holders is None else hash_holders, index
            ),
            bare_actions=plan_alias_swap(
                names.bare_alias, view.bare_holders if bare_holders is None else bare_holders, index
            ),
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


def _holds_only_own(names: IndexNames, holders: Sequence[str]) -> bool:
    return all(parse_generation(names.hash_alias, h) is not None for h in holders)


def _serving_holder(names: IndexNames, staged: str, holders: Sequence[str]) -> str:
    """The generation readers see: the highest-numbered holder other than the staged one."""
    others = [holder for holder in holders if holder != staged]
    numbered = [(parse_generation(names.hash_alias, h), h) for h in others]
    ranked = sorted((n, h) for n, h in numbered if n is not None)
    return ranked[-1][1] if ranked else others[0]


# ---------------------------------------------------------------------------
# Requested rebuilds and resuming after a restart
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReindexVerdict:
    """Whether a reindex request may be accepted; `reason` is the 409 body without `\\n`."""

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
    """Only when every OpenSearch sink serves `index` and no request for it waits: a second
    rebuild would only repeat the first."""
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
    return (
        stage,
        _create(names, target, recorded=True),
        *_rebuild(names, view, serving, target, refresh_interval),
    )


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
        target = next_generation_of(view.generations)
        return _first_build(names, view, target, refresh_interval, record_creation=True)
    if s is State.SEEDING:
        target = _target(state, names)
        return _first_build(names, view, target, refresh_interval, record_creation=False)
    if s is State.SERVING:
        if not state.pending_request:
            return ()
        return plan_reindex(state, names, view, refresh_interval=refresh_interval)
    if s is State.REINDEX_STAGED:
        target = _target(state, names)
        rebuild = _rebuild(names, view, _serving(state, names), target, refresh_interval)
        return (_create(names, target, recorded=True), *rebuild)
    if s is State.REINDEXING:
        target = _target(state, names)
        rebuild = _rebuild(names, view, _serving(state, names), target, refresh_interval)
        if target in view.generations:
            return rebuild
        return (_create(names, target, recorded=False), *rebuild)
    if s is State.SWAPPING:
        target = _target(state, names)
        return plan_swap_in(names, view, target, refresh_interval, record_swap_start=False)
    return ()


def _target(state: LifecycleState, names: IndexNames) -> int:
    if state.target_generation is None:
        raise LifecycleError(f"{names.hash_alias}: {state.state} without a target generation")
    return state.target_generation


def _serving(state: LifecycleState, names: IndexNames) -> int:
    if state.serving_generation is None:
        raise LifecycleError(f"{names.hash_alias}: {state.state} without a serving generation")
    return state.serving_generation


def _create(names: IndexNames, target: int, *, recorded: bool) -> CreateGeneration:
    return CreateGeneration(
        index=names.generation(target),
        generation=target,
        after=EventKind.GENERATION_CREATED if recorded else None,
    )


def _first_build(
    names: IndexNames,
    view: ClusterView,
    target: int,
    refresh_interval: str,
    *,
    record_creation: bool,
) -> tuple[Step, ...]:
    """A hash alias's first generation: readable through the hash alias from creation (the
    only time an unseeded generation is readable, since nothing older could serve); the
    bare alias follows only when nothing of another hash holds it, so after a schema
    change it keeps serving the old hash until this one is seeded."""
    index = names.generation(target)
    steps: list[Step] = []
    if record_creation or target not in view.generations:
        steps.append(_create(names, target, recorded=record_creation))
    steps.append(StageTarget(hash_alias=names.hash_alias, generation=target))
    hash_holders, bare_holders = view.hash_holders, view.bare_holders
    early_hash: tuple[AliasAction, ...] = ()
    early_bare: tuple[AliasAction, ...] = ()
    if not hash_holders:
        early_hash = plan_alias_swap(names.hash_alias, hash_holders, index)
        hash_holders = (index,)
        if _holds_only_own(names, bare_holders):
            early_bare = plan_alias_swap(names.bare_alias, bare_holders, index)
            bare_holders = (index,)
    if early_hash or early_bare:
        steps.append(SwapAliases(hash_actions=early_hash, bare_actions=early_bare))
    steps.append(StartDualWrite(logical=names.logical, serving=None, target=index))
    steps.extend(_seed(names, index))
    steps.extend(
        plan_swap_in(
            names,
            view,
            target,
            refresh_interval,
            hash_holders=hash_holders,
            bare_holders=bare_holders,
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
        *plan_swap_in(names, view, target, refresh_interval),
    )


def _seed(names: IndexNames, index: str) -> tuple[Step, ...]:
    return (
        Backfill(logical=names.logical, index=index, before=EventKind.BACKFILL_STARTED),
        RebuildTouched(logical=names.logical, index=index),
    )


def plan_abandon(state: LifecycleState, names: IndexNames) -> tuple[Step, ...]:
    """Roll a staged or running rebuild back, as an operator would by hand: stop dual
    writes, write the marker `{serving, true}`, delete the target. Reconciliation then
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
