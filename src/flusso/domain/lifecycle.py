"""The index lifecycle per `(sink, hash_alias)`: states, events, the transition table, its
invariants, and the state derived from what the sink shows.

Pure: it never reads a clock or makes an id; callers pass both in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from flusso.domain.errors import LifecycleError


class State(StrEnum):
    NEW = "new"
    SEEDING = "seeding"
    SERVING = "serving"
    REINDEX_STAGED = "reindex_staged"
    REINDEXING = "reindexing"
    SWAPPING = "swapping"
    RETIRED = "retired"


class EventKind(StrEnum):
    GENERATION_CREATED = "generation_created"
    BACKFILL_STARTED = "backfill_started"
    SWAP_STARTED = "swap_started"
    ALIAS_SWAPPED = "alias_swapped"
    GENERATIONS_DROPPED = "generations_dropped"
    SEEDED = "seeded"
    REINDEX_REQUESTED = "reindex_requested"
    REINDEX_STAGED = "reindex_staged"
    REINDEX_STAGE_FAILED = "reindex_stage_failed"
    GENERATION_MISSING = "generation_missing"
    HASH_RETIRED = "hash_retired"
    RECONCILED = "reconciled"
    RUN_FAILED = "run_failed"


class WireState(StrEnum):
    """Per-index values on `/status` and `/indexes`."""

    PENDING = "pending"
    BACKFILLING = "backfilling"
    SEEDED = "seeded"


#: States in which one seeding or rebuild (an "operation", with an `op_id`) is under way.
IN_PROGRESS = frozenset({State.SEEDING, State.REINDEX_STAGED, State.REINDEXING, State.SWAPPING})


@dataclass(frozen=True)
class LifecycleState:
    """One index's lifecycle in one sink, as the journal keeps it.

    `op_id` names the seeding or rebuild under way (or the one a pending request
    will start) and survives restarts; it is None when nothing is in progress.
    """

    state: State = State.NEW
    serving_generation: int | None = None
    target_generation: int | None = None
    op_id: str | None = None
    pending_request: bool = False
    configured: bool = True


INITIAL = LifecycleState()


@dataclass(frozen=True)
class LifecycleEvent:
    """Something that happened to `(sink, hash_alias)`; the inputs `apply` needs ride along.

    `generation`: the generation created (`generation_created`), staged
    (`reindex_staged`), chosen as the next target (`generation_missing`), just
    marked seeded (`seeded`, optional check) or derived as the target
    (`reconciled`). `serving_generation`: the current holder for
    `generation_missing` and `reconciled`. `derived`: the reconciled state.
    `dropped`: generation numbers deleted (`generations_dropped`). `op_id` is
    required when the event opens an operation (see `opens_operation`).
    `detail` is free JSON for people: errors, request origin, observed facts.
    """

    sink: str
    logical: str
    hash_alias: str
    kind: EventKind
    generation: int | None = None
    serving_generation: int | None = None
    derived: State | None = None
    dropped: tuple[int, ...] = ()
    op_id: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------
# The transition table
# ---------------------------------------------------------------------------

_REBUILDING = frozenset({State.SEEDING, State.REINDEXING})
_ANY = frozenset(State)

#: event -> the states it may be applied in. Everything else raises.
ALLOWED: Mapping[EventKind, frozenset[State]] = {
    EventKind.GENERATION_CREATED: frozenset({State.NEW, State.REINDEX_STAGED}),
    EventKind.BACKFILL_STARTED: _REBUILDING,
    EventKind.SWAP_STARTED: _REBUILDING,
    EventKind.ALIAS_SWAPPED: frozenset({State.SWAPPING}),
    EventKind.GENERATIONS_DROPPED: frozenset({State.SWAPPING}),
    EventKind.SEEDED: frozenset({State.SWAPPING}),
    EventKind.REINDEX_REQUESTED: frozenset({State.SERVING}),
    EventKind.REINDEX_STAGED: frozenset({State.SERVING}),
    EventKind.REINDEX_STAGE_FAILED: frozenset({State.SERVING}),
    EventKind.GENERATION_MISSING: frozenset({State.SERVING}),
    EventKind.HASH_RETIRED: _ANY - {State.RETIRED},
    EventKind.RECONCILED: _ANY,
    EventKind.RUN_FAILED: _ANY,
}


def is_allowed(state: State, kind: EventKind) -> bool:
    return state in ALLOWED[kind]


def opens_operation(current: LifecycleState, event: LifecycleEvent) -> bool:
    """Whether `event` starts a new seeding or rebuild, so it must carry a fresh `op_id`."""
    kind = event.kind
    if kind is EventKind.GENERATION_CREATED:
        return current.state is State.NEW
    if kind is EventKind.REINDEX_REQUESTED:
        return current.state is State.SERVING
    if kind is EventKind.REINDEX_STAGED:
        return current.state is State.SERVING and current.op_id is None
    if kind is EventKind.GENERATION_MISSING:
        return current.state is State.SERVING
    if kind is EventKind.RECONCILED:
        if event.derived not in IN_PROGRESS:
            return False
        return _continued_op(current, event) is None
    return False


def with_op_id(
    current: LifecycleState, event: LifecycleEvent, new_op_id: Callable[[], str]
) -> LifecycleEvent:
    """`event`, given a fresh op id from `new_op_id` when it opens an operation without one."""
    if event.op_id or not opens_operation(current, event):
        return event
    return replace(event, op_id=new_op_id())


def _continued_op(current: LifecycleState, event: LifecycleEvent) -> str | None:
    """The op a `reconciled` event carries on: same target in progress, or a pending request."""
    if current.op_id is None:
        return None
    if current.state in IN_PROGRESS and current.target_generation == event.generation:
        return current.op_id
    if current.pending_request and event.derived in (State.REINDEX_STAGED, State.REINDEXING):
        return current.op_id
    return None


def apply(current: LifecycleState, event: LifecycleEvent) -> LifecycleState:
    """The state after `event`; LifecycleError when the table forbids it or it breaks an
    invariant."""
    where = f"{event.sink}/{event.hash_alias}"
    if not is_allowed(current.state, event.kind):
        raise LifecycleError(
            f"{where}: event {event.kind} is not allowed in state {current.state}",
            hint="this is a bug in flusso's lifecycle handling; the journal was not changed",
        )
    if opens_operation(current, event) and not event.op_id:
        raise LifecycleError(f"{where}: event {event.kind} starts an operation but has no op_id")
    after = _transition(current, event, where)
    check_invariants(after, where=where)
    return after


def _transition(cur: LifecycleState, ev: LifecycleEvent, where: str) -> LifecycleState:
    kind = ev.kind
    if kind is EventKind.GENERATION_CREATED:
        gen = _required(ev.generation, where, kind)
        if cur.state is State.NEW:
            return LifecycleState(State.SEEDING, None, gen, ev.op_id)
        if gen != cur.target_generation:
            raise LifecycleError(
                f"{where}: created generation {gen} but generation "
                f"{cur.target_generation} is the staged target"
            )
        return replace(cur, state=State.REINDEXING)
    if kind in (EventKind.BACKFILL_STARTED, EventKind.ALIAS_SWAPPED, EventKind.RUN_FAILED):
        return cur
    if kind is EventKind.SWAP_STARTED:
        return replace(cur, state=State.SWAPPING)
    if kind is EventKind.GENERATIONS_DROPPED:
        # The generation the alias now points at is never deleted: readers would lose it.
        if cur.target_generation in ev.dropped:
            raise LifecycleError(
                f"{where}: generation {cur.target_generation} cannot be dropped; "
                "the hash alias points at it"
            )
        return cur
    if kind is EventKind.SEEDED:
        if ev.generation is not None and ev.generation != cur.target_generation:
            raise LifecycleError(
                f"{where}: generation {ev.generation} marked seeded but the target is "
                f"{cur.target_generation}"
            )
        return LifecycleState(State.SERVING, cur.target_generation, None, None)
    if kind is EventKind.REINDEX_REQUESTED:
        if cur.pending_request:
            raise LifecycleError(f"{where}: a reindex request is already pending")
        return replace(cur, pending_request=True, op_id=ev.op_id)
    if kind is EventKind.REINDEX_STAGED:
        gen = _required(ev.generation, where, kind)
        op_id = cur.op_id if cur.op_id is not None else ev.op_id
        return LifecycleState(State.REINDEX_STAGED, cur.serving_generation, gen, op_id)
    if kind is EventKind.REINDEX_STAGE_FAILED:
        return replace(cur, pending_request=False, op_id=None)
    if kind is EventKind.GENERATION_MISSING:
        gen = _required(ev.generation, where, kind)
        if ev.serving_generation is None:
            return LifecycleState(State.SEEDING, None, gen, ev.op_id)
        return LifecycleState(State.REINDEX_STAGED, ev.serving_generation, gen, ev.op_id)
    if kind is EventKind.HASH_RETIRED:
        return replace(
            cur, state=State.RETIRED, op_id=None, pending_request=False, configured=False
        )
    if kind is EventKind.RECONCILED:
        derived = ev.derived
        if derived is None or derived is State.RETIRED:
            raise LifecycleError(f"{where}: reconciled needs a derived sink state, got {derived}")
        op_id: str | None = None
        if derived in IN_PROGRESS:
            op_id = _continued_op(cur, ev) or ev.op_id
        pending = derived is State.SERVING and cur.state is State.SERVING and cur.pending_request
        if pending:
            op_id = cur.op_id
        return LifecycleState(
            derived, ev.serving_generation, ev.generation, op_id, pending, configured=True
        )
    raise LifecycleError(f"{where}: unknown event {kind}")  # pragma: no cover - enum is closed


def _required(value: int | None, where: str, kind: EventKind) -> int:
    if value is None:
        raise LifecycleError(f"{where}: event {kind} needs a generation number")
    return value


def fold(events: Iterable[LifecycleEvent], start: LifecycleState = INITIAL) -> LifecycleState:
    """Replay events from `start`; the journal's state row must always equal this."""
    state = start
    for event in events:
        state = apply(state, event)
    return state


# ---------------------------------------------------------------------------
# Invariants
# ---------------------------------------------------------------------------


def invariant_problems(s: LifecycleState) -> list[str]:
    """Every way `s` breaks the shape its state must have (empty when it holds)."""
    problems: list[str] = []
    serving, target = s.serving_generation, s.target_generation
    for name, value in (("serving", serving), ("target", target)):
        if value is not None and value < 1:
            problems.append(f"{name} generation {value} is not >= 1")
    if serving is not None and target is not None and target <= serving:
        problems.append(f"target generation {target} is not above serving {serving}")
    shape: dict[State, tuple[bool | None, bool | None]] = {
        # state: (serving required?, target required?); None = either
        State.NEW: (False, False),
        State.SEEDING: (False, True),
        State.SERVING: (True, False),
        State.REINDEX_STAGED: (True, True),
        State.REINDEXING: (True, True),
        State.SWAPPING: (None, True),
        State.RETIRED: (None, None),
    }
    need_serving, need_target = shape[s.state]
    if need_serving is not None and (serving is not None) != need_serving:
        problems.append(f"{s.state} {'needs' if need_serving else 'has no'} serving generation")
    if need_target is not None and (target is not None) != need_target:
        problems.append(f"{s.state} {'needs' if need_target else 'has no'} target generation")
    if s.pending_request and s.state is not State.SERVING:
        problems.append(f"a pending request in state {s.state}")
    wants_op = s.state in IN_PROGRESS or s.pending_request
    if wants_op and s.op_id is None:
        problems.append(f"{s.state} without an op_id")
    if not wants_op and s.op_id is not None:
        problems.append(f"{s.state} keeps op_id {s.op_id} with nothing in progress")
    if s.configured == (s.state is State.RETIRED):
        problems.append("configured must be false exactly when retired")
    return problems


def check_invariants(s: LifecycleState, *, where: str = "lifecycle") -> None:
    problems = invariant_problems(s)
    if problems:
        raise LifecycleError(f"{where}: invalid lifecycle state: " + "; ".join(problems))


def generations_only_grow(before: LifecycleState, after: LifecycleState) -> bool:
    """Across a step the highest generation number known never goes down, so a number is
    never reused for different data."""
    return _highest(after) >= _highest(before)


def _highest(s: LifecycleState) -> int:
    return max(s.serving_generation or 0, s.target_generation or 0)


# ---------------------------------------------------------------------------
# Reconciliation from the sink
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Meta:
    """The meta marker of a hash alias: `{"active_generation": g, "seeded": b}`."""

    generation: int
    seeded: bool


@dataclass(frozen=True)
class SinkFacts:
    """What `ensure_index` observes for one hash alias.

    `holders` and `generations` are generation numbers of this hash alias (the
    holders of the hash alias, and every `{hash_alias}_*` index). Holders that
    are not generations of it go in `foreign_holders`, reported as an anomaly.
    `generation_exists` is the HEAD check of the meta generation; None takes it
    from `generations`.
    """

    meta: Meta | None
    holders: tuple[int, ...] = ()
    generations: tuple[int, ...] = ()
    generation_exists: bool | None = None
    foreign_holders: tuple[str, ...] = ()

    @property
    def meta_generation_exists(self) -> bool:
        if self.meta is None:
            return False
        if self.generation_exists is not None:
            return self.generation_exists
        return self.meta.generation in self.generations


def next_generation_of(generations: Iterable[int]) -> int:
    """1 + the highest generation, or 1 (orphans are skipped over, never reused)."""
    return max(generations, default=0) + 1


def next_target_of(generations: Iterable[int], current: int) -> int:
    return max(next_generation_of(generations), current + 1)


def derive_state(facts: SinkFacts) -> LifecycleState:
    """The lifecycle the sink shows (the first matching case wins); `op_id` is left to the
    journal.

    With more than one holder the highest one counts as serving (see `anomalies`).
    """
    meta = facts.meta
    holder = max(facts.holders) if facts.holders else None
    if meta is None:
        if holder is None:
            return LifecycleState(State.NEW)
        target = max(next_generation_of(facts.generations), holder + 1)
        return LifecycleState(State.REINDEX_STAGED, holder, target)
    g = meta.generation
    if meta.seeded:
        if not facts.meta_generation_exists:
            # The marker says seeded but the data is gone: serving it would show an empty
            # index, so rebuild into a fresh number.
            target = next_target_of(facts.generations, g)
            if holder is None:
                return LifecycleState(State.SEEDING, None, target)
            return LifecycleState(State.REINDEX_STAGED, holder, max(target, holder + 1))
        return LifecycleState(State.SERVING, g)
    if holder is None or holder == g:
        return LifecycleState(State.SEEDING, None, g)
    if holder > g:
        # An operator put the alias past the staged number; the sink will still build
        # `g` and swap to it, which is what seeding does (noted in `anomalies`).
        return LifecycleState(State.SEEDING, None, g)
    state = State.REINDEXING if facts.meta_generation_exists else State.REINDEX_STAGED
    return LifecycleState(state, holder, g)


def anomalies(facts: SinkFacts) -> list[str]:
    """Odd facts noted in the `reconciled` detail for people rather than acted on."""
    notes: list[str] = []
    if len(facts.holders) > 1:
        listed = ", ".join(str(h) for h in sorted(facts.holders))
        notes.append(
            f"hash alias has {len(facts.holders)} holders ({listed}); the highest counts as serving"
        )
    if facts.foreign_holders:
        notes.append(
            "hash alias held by non-generation index(es): " + ", ".join(facts.foreign_holders)
        )
    meta = facts.meta
    serving_ok = meta is not None and meta.seeded and facts.meta_generation_exists
    if meta is not None and serving_ok and tuple(facts.holders) != (meta.generation,):
        notes.append(f"hash alias not on serving generation {meta.generation}; repairing")
    if (
        meta is not None
        and not meta.seeded
        and facts.holders
        and max(facts.holders) > meta.generation
    ):
        notes.append(
            f"staged generation {meta.generation} is below the serving one {max(facts.holders)}"
        )
    return notes


def _as_view(s: LifecycleState | None) -> dict[str, Any] | None:
    if s is None:
        return None
    return {
        "state": str(s.state),
        "serving_generation": s.serving_generation,
        "target_generation": s.target_generation,
    }


def _facts_view(facts: SinkFacts) -> dict[str, Any]:
    return {
        "meta": None
        if facts.meta is None
        else {"active_generation": facts.meta.generation, "seeded": facts.meta.seeded},
        "generation_exists": facts.meta_generation_exists,
        "holders": sorted(facts.holders),
        "generations": sorted(facts.generations),
    }


def agrees(journal: LifecycleState, derived: LifecycleState) -> bool:
    """Whether the journal row shows what the sink shows (state and generation numbers)."""
    return (journal.state, journal.serving_generation, journal.target_generation) == (
        derived.state,
        derived.serving_generation,
        derived.target_generation,
    )


def reconcile(
    journal: LifecycleState | None,
    facts: SinkFacts,
    *,
    sink: str,
    logical: str,
    hash_alias: str,
    op_id: str | None = None,
) -> LifecycleEvent | None:
    """The `reconciled` event to append when the journal row is missing or disagrees, else None.

    The sink wins: it holds the data readers see, the journal only a record of it. `op_id` is used when the derived state opens a
    new operation; pass a fresh one (the journal fills it in when omitted).
    """
    derived = derive_state(facts)
    if journal is not None and agrees(journal, derived) and journal.state is not State.RETIRED:
        return None
    detail: dict[str, Any] = {
        "journal": _as_view(journal),
        "sink": _facts_view(facts),
        "derived": _as_view(derived),
    }
    notes = anomalies(facts)
    if notes:
        detail["anomalies"] = notes
    return LifecycleEvent(
        sink=sink,
        logical=logical,
        hash_alias=hash_alias,
        kind=EventKind.RECONCILED,
        generation=derived.target_generation,
        serving_generation=derived.serving_generation,
        derived=derived.state,
        op_id=op_id,
        detail=detail,
    )


# ---------------------------------------------------------------------------
# Wire states
# ---------------------------------------------------------------------------


def wire_state(states: Sequence[LifecycleState]) -> WireState:
    """A logical index's wire state from its lifecycle in every OpenSearch sink.

    Never built anywhere → `pending`; a seeding or rebuild under way in any sink
    → `backfilling`; otherwise `seeded` (no OpenSearch sink counts as seeded).
    Retired hashes are ignored. The process status refines this (`pending` until
    the backfill really starts, `seeded` once live capture runs).
    """
    active = [s for s in states if s.state is not State.RETIRED]
    if any(s.state is State.NEW for s in active):
        return WireState.PENDING
    if any(s.state in IN_PROGRESS for s in active):
        return WireState.BACKFILLING
    return WireState.SEEDED


def event_detail(event: LifecycleEvent) -> dict[str, Any]:
    """The event's `detail` as the journal stores it: JSON values only, dropped generations
    folded in. Raises ValueError when the detail is not JSON (nothing may be recorded)."""
    detail = dict(event.detail)
    if event.dropped:
        detail["dropped_generations"] = list(event.dropped)
    try:
        # A round trip keeps exactly what a stored journal gives back.
        return json.loads(json.dumps(detail, sort_keys=True))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"lifecycle event {event.kind} has a detail that is not JSON: {exc}") from exc
