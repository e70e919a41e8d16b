"""Reindex-and-swap planning: step order, alias moves, resumes.

A small model cluster carries the plans out and checks the lifecycle invariants after every
step; crashing it at every point and resuming from the journal must end in one served
generation.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest

from flusso.domain.errors import LifecycleError
from flusso.domain.lifecycle import (
    INITIAL,
    EventKind,
    LifecycleEvent,
    LifecycleState,
    Meta,
    SinkFacts,
    State,
    apply,
    reconcile,
    with_op_id,
)
from flusso.domain.naming import parse_generation
from flusso.domain.reindex import (
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
    StageTarget,
    StartDualWrite,
    Step,
    SwapAliases,
    can_request_reindex,
    event_for,
    plan_abandon,
    plan_alias_swap,
    plan_reindex,
    plan_resume,
)

E = EventKind
NAMES = IndexNames(logical="users", hash_alias="users_ab12cd34", bare_alias="users")
OLD_HASH = "users_0f0f0f0f"


def gen(n: int) -> str:
    return NAMES.generation(n)


# -- alias moves --------------------------------------------------------------


def test_an_alias_already_on_exactly_the_target_needs_no_call():
    assert plan_alias_swap("users", ["users_new"], "users_new") == ()


def test_an_alias_move_removes_every_other_holder_in_order_then_adds_the_target():
    actions = plan_alias_swap("users", ["users_b", "users_new", "users_a"], "users_new")
    assert [a.as_json() for a in actions] == [
        {"remove": {"index": "users_b", "alias": "users"}},
        {"remove": {"index": "users_a", "alias": "users"}},
        {"add": {"index": "users_new", "alias": "users"}},
    ]


def test_the_spec_example_body_is_produced_exactly():
    step = SwapAliases(hash_actions=(), bare_actions=plan_alias_swap("users", ["users_old"],
                                                                      "users_new"))
    assert step.body() == {"actions": [{"remove": {"index": "users_old", "alias": "users"}},
                                       {"add": {"index": "users_new", "alias": "users"}}]}


def test_an_unheld_alias_is_simply_added():
    assert plan_alias_swap("users", [], "users_1") == (AliasAction("add", "users_1", "users"),)


# -- the rebuild plan ------------------------------------------------------------

SERVING_1 = LifecycleState(State.SERVING, 1)
VIEW_1 = ClusterView(hash_holders=(gen(1),), bare_holders=(gen(1),), generations=(1,))


def kinds(steps: tuple[Step, ...]) -> list[type]:
    return [type(s) for s in steps]


def journal_kinds(steps: tuple[Step, ...]) -> list[EventKind]:
    return [k for s in steps for k in (s.before, s.after) if k is not None]


def test_a_rebuild_dual_writes_seeds_rebuilds_touched_ids_then_swaps_and_drops():
    steps = plan_reindex(SERVING_1, NAMES, VIEW_1, refresh_interval="10s")
    assert kinds(steps) == [StageTarget, CreateGeneration, StartDualWrite, Backfill,
                            RebuildTouched, Refresh, SwapAliases, EndDualWrite,
                            DropGenerations, MarkSeeded]
    dual = steps[2]
    assert isinstance(dual, StartDualWrite)
    assert (dual.serving, dual.target) == (gen(1), gen(2))
    assert isinstance(steps[5], Refresh) and steps[5].refresh_interval == "10s"


def test_both_aliases_move_in_one_call():
    swap = plan_reindex(SERVING_1, NAMES, VIEW_1, refresh_interval="1s")[6]
    assert isinstance(swap, SwapAliases)
    assert swap.body() == {"actions": [
        {"remove": {"index": gen(1), "alias": NAMES.hash_alias}},
        {"add": {"index": gen(2), "alias": NAMES.hash_alias}},
        {"remove": {"index": gen(1), "alias": "users"}},
        {"add": {"index": gen(2), "alias": "users"}},
    ]}


def test_the_plan_journals_the_op_events_in_order():
    steps = plan_reindex(SERVING_1, NAMES, VIEW_1, refresh_interval="1s")
    assert journal_kinds(steps) == [
        E.REINDEX_REQUESTED, E.REINDEX_STAGED, E.GENERATION_CREATED, E.BACKFILL_STARTED,
        E.SWAP_STARTED, E.ALIAS_SWAPPED, E.GENERATIONS_DROPPED, E.SEEDED,
    ]


def test_a_request_already_recorded_as_pending_is_not_journaled_twice():
    pending = LifecycleState(State.SERVING, 1, op_id="op", pending_request=True)
    steps = plan_reindex(pending, NAMES, VIEW_1, refresh_interval="1s")
    assert journal_kinds(steps)[0] is E.REINDEX_STAGED


def test_an_orphan_generation_is_skipped_and_dropped():
    view = ClusterView(hash_holders=(gen(2),), bare_holders=(gen(2),), generations=(2, 3))
    steps = plan_reindex(LifecycleState(State.SERVING, 2), NAMES, view, refresh_interval="1s")
    assert isinstance(steps[0], StageTarget) and steps[0].generation == 4
    drop = steps[8]
    assert isinstance(drop, DropGenerations)
    assert drop.indexes == (gen(2), gen(3))


def test_a_rebuild_is_refused_unless_the_index_serves():
    with pytest.raises(LifecycleError, match="reindex of users already in progress"):
        plan_reindex(LifecycleState(State.REINDEXING, 1, 2, "op"), NAMES, VIEW_1,
                     refresh_interval="1s")


def test_the_journal_events_of_a_step_carry_the_numbers_apply_needs():
    steps = plan_reindex(SERVING_1, NAMES, VIEW_1, refresh_interval="1s")
    staged = event_for(steps[0], E.REINDEX_STAGED, sink="primary", names=NAMES)
    assert (staged.hash_alias, staged.generation) == (NAMES.hash_alias, 2)
    dropped = event_for(steps[8], E.GENERATIONS_DROPPED, sink="primary", names=NAMES)
    assert dropped.dropped == (1,)
    assert dropped.detail == {"dropped": [gen(1)]}


# -- one rebuild at a time ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("states", "queued", "skip", "reason"),
    [
        ([SERVING_1], False, False, None),
        ([], False, False, None),
        ([SERVING_1, LifecycleState(State.REINDEXING, 1, 2, "o")], False, False,
         "reindex of users already in progress"),
        ([LifecycleState(State.REINDEX_STAGED, 1, 2, "o")], False, False,
         "reindex of users already in progress"),
        ([LifecycleState(State.SERVING, 1, op_id="o", pending_request=True)], False, False,
         "reindex of users already in progress"),
        ([LifecycleState(State.SEEDING, None, 1, "o")], False, False,
         "reindex of users already in progress"),
        ([SERVING_1], True, False, "reindex of users already in progress"),
        ([SERVING_1], False, True,
         "reindex of users needs a backfill; server runs with --skip-backfill"),
    ],
)
def test_a_second_request_is_refused_while_one_is_staged_running_or_queued(
    states, queued, skip, reason
):
    verdict = can_request_reindex("users", states, queued=queued, skip_backfill=skip)
    assert bool(verdict) is (reason is None)
    assert verdict.reason == reason


# -- a model cluster that executes plans -------------------------------------------


class Crash(Exception):
    pass


@dataclass
class Cluster:
    generations: set[int] = field(default_factory=set)
    hash_holders: list[str] = field(default_factory=list)
    bare_holders: list[str] = field(default_factory=list)
    meta: Meta | None = None
    complete: set[int] = field(default_factory=set)  # generations whose seeding finished
    first_build: bool = True
    writes_to: tuple[str, ...] = ()

    def view(self) -> ClusterView:
        return ClusterView(tuple(self.hash_holders), tuple(self.bare_holders),
                           tuple(sorted(self.generations)))

    def facts(self) -> SinkFacts:
        holders = tuple(n for n in (parse_generation(NAMES.hash_alias, h)
                                    for h in self.hash_holders) if n is not None)
        return SinkFacts(self.meta, holders, tuple(sorted(self.generations)))

    def run(self, step: Step) -> None:
        if isinstance(step, StageTarget):
            self.meta = Meta(step.generation, False)
        elif isinstance(step, CreateGeneration):
            self.generations.add(step.generation)
        elif isinstance(step, StartDualWrite):
            self.writes_to = tuple(i for i in (step.serving, step.target) if i)
        elif isinstance(step, RebuildTouched):
            self.complete.add(int(step.index.rsplit("_", 1)[1]))
        elif isinstance(step, SwapAliases):
            for action in step.actions:
                holders = self.hash_holders if action.alias == NAMES.hash_alias else \
                    self.bare_holders
                if action.action == "remove":
                    assert action.index in holders, f"remove of a non-holder {action}"
                    holders.remove(action.index)
                else:
                    n = parse_generation(NAMES.hash_alias, action.index)
                    assert n in self.generations, f"alias on a missing index {action}"
                    if action.index not in holders:
                        holders.append(action.index)
        elif isinstance(step, EndDualWrite):
            self.writes_to = (step.target,)
        elif isinstance(step, DropGenerations):
            for index in step.indexes:
                # An alias holder is never deleted: readers would lose it.
                assert index not in self.hash_holders, f"deleting holder {index}"
                self.generations.discard(int(index.rsplit("_", 1)[1]))
        elif isinstance(step, MarkSeeded):
            # Seeded only once the alias points at that generation.
            assert self.hash_holders == [gen(step.generation)]
            self.meta = Meta(step.generation, True)
            self.first_build = False
        self.check()

    def check(self) -> None:
        for writes in self.writes_to:
            n = parse_generation(NAMES.hash_alias, writes)
            assert n in self.generations, f"live writes to missing {writes}"
        if not self.first_build:
            # Behind a served generation nothing unseeded is readable.
            for holder in self.hash_holders:
                assert int(holder.rsplit("_", 1)[1]) in self.complete | {
                    self.meta.generation if self.meta and self.meta.seeded else -1
                }, f"{holder} readable before its backfill completed"


@dataclass
class Journal:
    state: LifecycleState | None = None
    kinds: list[EventKind] = field(default_factory=list)
    history: list[LifecycleState] = field(default_factory=list)
    ids: itertools.count = field(default_factory=itertools.count)

    def record(self, event: LifecycleEvent) -> None:
        current = self.state or INITIAL
        event = with_op_id(current, event, lambda: f"op-{next(self.ids)}")
        after = apply(current, event)
        # At most one rebuild, and numbers only grow.
        if after.serving_generation and after.target_generation:
            assert after.target_generation > after.serving_generation
        self.state = after
        self.kinds.append(event.kind)
        self.history.append(after)


def execute(steps, cluster: Cluster, journal: Journal, *, crash_at: int | None = None) -> None:
    """Run steps with their journal events; `crash_at` counts before/step/after points."""
    points = itertools.count()
    for step in steps:
        for phase in ("before", "step", "after"):
            kind = getattr(step, phase) if phase != "step" else None
            if phase != "step" and kind is None:
                continue
            if next(points) == crash_at:
                raise Crash
            if phase == "step":
                cluster.run(step)
            else:
                journal.record(event_for(step, kind, sink="primary", names=NAMES))


def restart(cluster: Cluster, journal: Journal) -> None:
    """A new process: dual writes are gone, the sink's facts reconcile the journal, resume."""
    cluster.writes_to = ()
    event = reconcile(journal.state, cluster.facts(), sink="primary", logical="users",
                      hash_alias=NAMES.hash_alias)
    if event is not None:
        journal.record(event)
    assert journal.state is not None
    execute(plan_resume(journal.state, NAMES, cluster.view(), refresh_interval="1s"),
            cluster, journal)


def served_cluster() -> Cluster:
    return Cluster({1}, [gen(1)], [gen(1)], Meta(1, True), {1}, first_build=False)


def assert_serves_only(cluster: Cluster, journal: Journal, n: int) -> None:
    assert cluster.generations == {n}
    assert cluster.hash_holders == [gen(n)]
    assert cluster.bare_holders == [gen(n)]
    assert cluster.meta == Meta(n, True)
    assert journal.state == LifecycleState(State.SERVING, n)


def test_a_requested_rebuild_ends_with_only_the_new_generation_served():
    cluster, journal = served_cluster(), Journal(LifecycleState(State.SERVING, 1))
    execute(plan_reindex(journal.state, NAMES, cluster.view(), refresh_interval="1s"),
            cluster, journal)
    assert_serves_only(cluster, journal, 2)
    assert journal.kinds == [E.REINDEX_REQUESTED, E.REINDEX_STAGED, E.GENERATION_CREATED,
                             E.BACKFILL_STARTED, E.SWAP_STARTED, E.ALIAS_SWAPPED,
                             E.GENERATIONS_DROPPED, E.SEEDED]


def test_reads_stay_on_the_serving_generation_until_the_swap():
    cluster, journal = served_cluster(), Journal(LifecycleState(State.SERVING, 1))
    steps = plan_reindex(journal.state, NAMES, cluster.view(), refresh_interval="1s")
    swap = next(i for i, s in enumerate(steps) if isinstance(s, SwapAliases))
    execute(steps[:swap], cluster, journal)
    assert cluster.hash_holders == [gen(1)] and cluster.bare_holders == [gen(1)]
    assert cluster.writes_to == (gen(1), gen(2))
    assert journal.state == LifecycleState(State.SWAPPING, 1, 2, "op-0")


def _points(steps) -> int:
    return sum(1 + (s.before is not None) + (s.after is not None) for s in steps)


REBUILD_POINTS = _points(plan_reindex(LifecycleState(State.SERVING, 1, op_id="r",
                                                     pending_request=True),
                                      NAMES, VIEW_1, refresh_interval="1s"))


@pytest.mark.parametrize("crash_at", range(REBUILD_POINTS))
def test_cases_19_to_21_a_crash_anywhere_in_a_rebuild_resumes_into_the_same_generation(crash_at):
    cluster = served_cluster()
    journal = Journal()
    journal.record(LifecycleEvent("primary", "users", NAMES.hash_alias, E.RECONCILED,
                                  derived=State.SERVING, serving_generation=1))
    journal.record(LifecycleEvent("primary", "users", NAMES.hash_alias, E.REINDEX_REQUESTED))
    op = journal.state.op_id
    steps = plan_reindex(journal.state, NAMES, cluster.view(), refresh_interval="1s")
    with pytest.raises(Crash):
        execute(steps, cluster, journal, crash_at=crash_at)
    restart(cluster, journal)
    # No new number, the old generation gone (orphans too), one op throughout.
    assert_serves_only(cluster, journal, 2)
    assert {s.op_id for s in journal.history if s.op_id is not None} == {op}


FIRST_POINTS = _points(plan_resume(INITIAL, NAMES, ClusterView(), refresh_interval="1s"))


@pytest.mark.parametrize("crash_at", range(FIRST_POINTS))
def test_a_crash_anywhere_in_a_first_build_ends_with_one_served_generation(crash_at):
    cluster, journal = Cluster(), Journal()
    steps = plan_resume(INITIAL, NAMES, cluster.view(), refresh_interval="1s")
    with pytest.raises(Crash):
        execute(steps, cluster, journal, crash_at=crash_at)
    restart(cluster, journal)
    # A generation created before its meta was written is skipped and dropped
    # (points 1 and 2: after the create, before the meta write).
    served = 2 if crash_at in (1, 2) else 1
    assert_serves_only(cluster, journal, served)


def test_a_staged_rebuild_resumes_by_creating_its_target_behind_the_served_one():
    staged = LifecycleState(State.REINDEX_STAGED, 1, 2, "op")
    cluster = served_cluster()
    cluster.meta = Meta(2, False)
    steps = plan_resume(staged, NAMES, cluster.view(), refresh_interval="1s")
    assert isinstance(steps[0], CreateGeneration) and steps[0].generation == 2
    assert steps[0].after is E.GENERATION_CREATED
    assert isinstance(steps[1], StartDualWrite) and steps[1].serving == gen(1)


def test_a_rebuild_interrupted_mid_backfill_reuses_its_target():
    reindexing = LifecycleState(State.REINDEXING, 1, 2, "op")
    view = ClusterView((gen(1),), (gen(1),), (1, 2))
    steps = plan_resume(reindexing, NAMES, view, refresh_interval="1s")
    assert kinds(steps)[:2] == [StartDualWrite, Backfill]
    assert not any(isinstance(s, CreateGeneration) for s in steps)
    assert {s.generation for s in steps if isinstance(s, MarkSeeded)} == {2}


def test_after_the_swap_the_backfill_reruns_into_the_served_target_and_drops_the_old():
    seeding = LifecycleState(State.SEEDING, None, 2, "op")
    view = ClusterView((gen(2),), (gen(2),), (1, 2))
    steps = plan_resume(seeding, NAMES, view, refresh_interval="1s")
    assert kinds(steps) == [StageTarget, StartDualWrite, Backfill, RebuildTouched, Refresh,
                            SwapAliases, EndDualWrite, DropGenerations, MarkSeeded]
    assert steps[5].actions == ()
    assert steps[7].indexes == (gen(1),)


def test_a_swap_in_progress_is_finished_without_a_new_backfill():
    swapping = LifecycleState(State.SWAPPING, 1, 2, "op")
    view = ClusterView((gen(1),), (gen(1),), (1, 2))
    steps = plan_resume(swapping, NAMES, view, refresh_interval="1s")
    assert kinds(steps) == [Refresh, SwapAliases, EndDualWrite, DropGenerations, MarkSeeded]
    assert steps[0].before is None


@pytest.mark.parametrize(
    "state", [SERVING_1, LifecycleState(State.RETIRED, 1, configured=False)]
)
def test_nothing_is_left_to_do_when_serving_without_a_request_or_retired(state):
    assert plan_resume(state, NAMES, VIEW_1, refresh_interval="1s") == ()


def test_a_pending_request_is_staged_on_the_next_start():
    pending = LifecycleState(State.SERVING, 1, op_id="op", pending_request=True)
    steps = plan_resume(pending, NAMES, VIEW_1, refresh_interval="1s")
    assert isinstance(steps[0], StageTarget) and steps[0].before is None


# -- first builds and schema changes ---------------------------------------------


def test_a_fresh_index_is_readable_through_both_aliases_from_creation():
    steps = plan_resume(INITIAL, NAMES, ClusterView(), refresh_interval="1s")
    assert kinds(steps)[:4] == [CreateGeneration, StageTarget, SwapAliases, StartDualWrite]
    early = steps[2]
    assert [a.as_json() for a in early.actions] == [
        {"add": {"index": gen(1), "alias": NAMES.hash_alias}},
        {"add": {"index": gen(1), "alias": "users"}},
    ]
    assert steps[3].serving is None


def test_after_a_schema_change_the_bare_alias_keeps_serving_the_old_hash_until_seeded():
    cluster, journal = Cluster(bare_holders=[f"{OLD_HASH}_1"]), Journal()
    steps = plan_resume(INITIAL, NAMES, cluster.view(), refresh_interval="1s")
    final_swap = max(i for i, s in enumerate(steps) if isinstance(s, SwapAliases))
    execute(steps[:final_swap], cluster, journal)
    assert cluster.bare_holders == [f"{OLD_HASH}_1"]
    assert cluster.hash_holders == [gen(1)]  # the first generation is readable early
    execute(steps[final_swap:], cluster, journal)
    assert cluster.bare_holders == [gen(1)]
    assert journal.state == LifecycleState(State.SERVING, 1)
    # The old hash's objects are never dropped from here: reverting the schema reuses them.
    assert steps[-2].indexes == ()


def test_a_retired_hash_is_brought_back_by_reconciliation_and_rebuilt_past_its_numbers():
    cluster = Cluster({3}, [gen(3)], [f"{OLD_HASH}_1"], Meta(3, True), {3}, first_build=False)
    journal = Journal(LifecycleState(State.RETIRED, 3, configured=False))
    restart(cluster, journal)
    assert journal.state == LifecycleState(State.SERVING, 3)


# -- rolling back ---------------------------------------------------------------------


def test_abandoning_a_rebuild_keeps_the_served_generation_and_drops_the_target():
    cluster = served_cluster()
    cluster.meta, cluster.generations = Meta(2, False), {1, 2}
    state = LifecycleState(State.REINDEXING, 1, 2, "op")
    for step in plan_abandon(state, NAMES):
        cluster.run(step)
    journal = Journal(state)
    restart(cluster, journal)
    assert_serves_only(cluster, journal, 1)


def test_only_a_rebuild_behind_a_served_generation_can_be_abandoned():
    with pytest.raises(LifecycleError, match="nothing to roll back"):
        plan_abandon(LifecycleState(State.SEEDING, None, 1, "op"), NAMES)
