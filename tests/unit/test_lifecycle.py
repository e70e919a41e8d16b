"""The index lifecycle state machine, its invariants and reconciliation from the sink."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flusso.domain.errors import LifecycleError
from flusso.domain.lifecycle import (
    ALLOWED,
    INITIAL,
    EventKind,
    LifecycleEvent,
    LifecycleState,
    Meta,
    SinkFacts,
    State,
    WireState,
    anomalies,
    apply,
    check_invariants,
    derive_state,
    fold,
    generations_only_grow,
    invariant_problems,
    opens_operation,
    reconcile,
    wire_state,
    with_op_id,
)

E = EventKind
S = State


def ev(kind: EventKind, **fields) -> LifecycleEvent:
    return LifecycleEvent(sink="primary", logical="users", hash_alias="users_ab12cd34", kind=kind,
                          **fields)


#: One valid state per lifecycle state, used as the "from" side.
SAMPLE = {
    S.NEW: INITIAL,
    S.SEEDING: LifecycleState(S.SEEDING, None, 1, "op-a"),
    S.SERVING: LifecycleState(S.SERVING, 1),
    S.REINDEX_STAGED: LifecycleState(S.REINDEX_STAGED, 1, 2, "op-a"),
    S.REINDEXING: LifecycleState(S.REINDEXING, 1, 2, "op-a"),
    S.SWAPPING: LifecycleState(S.SWAPPING, 1, 2, "op-a"),
    S.RETIRED: LifecycleState(S.RETIRED, 1, configured=False),
}
PENDING = LifecycleState(S.SERVING, 1, op_id="op-r", pending_request=True)


def test_every_sample_state_satisfies_the_invariants():
    for state in [*SAMPLE.values(), PENDING]:
        assert invariant_problems(state) == []


# -- every allowed transition -----------------------------------------------

ALLOWED_CASES = [
    ("new + generation_created starts seeding",
     INITIAL, ev(E.GENERATION_CREATED, generation=1, op_id="op-n"),
     LifecycleState(S.SEEDING, None, 1, "op-n")),
    ("seeding + backfill_started stays",
     SAMPLE[S.SEEDING], ev(E.BACKFILL_STARTED), SAMPLE[S.SEEDING]),
    ("reindexing + backfill_started stays",
     SAMPLE[S.REINDEXING], ev(E.BACKFILL_STARTED), SAMPLE[S.REINDEXING]),
    ("seeding + swap_started swaps",
     SAMPLE[S.SEEDING], ev(E.SWAP_STARTED), LifecycleState(S.SWAPPING, None, 1, "op-a")),
    ("reindexing + swap_started swaps",
     SAMPLE[S.REINDEXING], ev(E.SWAP_STARTED), SAMPLE[S.SWAPPING]),
    ("swapping + alias_swapped stays",
     SAMPLE[S.SWAPPING], ev(E.ALIAS_SWAPPED), SAMPLE[S.SWAPPING]),
    ("swapping + generations_dropped stays",
     SAMPLE[S.SWAPPING], ev(E.GENERATIONS_DROPPED, dropped=(1,)), SAMPLE[S.SWAPPING]),
    ("swapping + seeded serves the target and closes the operation",
     SAMPLE[S.SWAPPING], ev(E.SEEDED, generation=2), LifecycleState(S.SERVING, 2)),
    ("serving + reindex_requested stays serving with a pending request",
     SAMPLE[S.SERVING], ev(E.REINDEX_REQUESTED, op_id="op-r"), PENDING),
    ("pending + reindex_staged keeps the request's op",
     PENDING, ev(E.REINDEX_STAGED, generation=2),
     LifecycleState(S.REINDEX_STAGED, 1, 2, "op-r")),
    ("serving + reindex_staged without a request opens an op",
     SAMPLE[S.SERVING], ev(E.REINDEX_STAGED, generation=3, op_id="op-s"),
     LifecycleState(S.REINDEX_STAGED, 1, 3, "op-s")),
    ("pending + reindex_stage_failed clears the request",
     PENDING, ev(E.REINDEX_STAGE_FAILED), SAMPLE[S.SERVING]),
    ("reindex_staged + generation_created reindexes",
     SAMPLE[S.REINDEX_STAGED], ev(E.GENERATION_CREATED, generation=2), SAMPLE[S.REINDEXING]),
    ("serving + generation_missing without holder seeds",
     SAMPLE[S.SERVING], ev(E.GENERATION_MISSING, generation=2, op_id="op-m"),
     LifecycleState(S.SEEDING, None, 2, "op-m")),
    ("serving + generation_missing behind a holder stages",
     LifecycleState(S.SERVING, 2),
     ev(E.GENERATION_MISSING, generation=3, serving_generation=1, op_id="op-m"),
     LifecycleState(S.REINDEX_STAGED, 1, 3, "op-m")),
    ("reconciled replaces the state with the derived one",
     SAMPLE[S.REINDEXING],
     ev(E.RECONCILED, derived=S.SERVING, serving_generation=2),
     LifecycleState(S.SERVING, 2)),
    ("reconciled brings a retired hash back",
     SAMPLE[S.RETIRED], ev(E.RECONCILED, derived=S.SERVING, serving_generation=1),
     LifecycleState(S.SERVING, 1)),
    ("reconciled into the same target keeps the operation",
     SAMPLE[S.SWAPPING], ev(E.RECONCILED, derived=S.SEEDING, generation=2),
     LifecycleState(S.SEEDING, None, 2, "op-a")),
    ("reconciled keeps a pending request while serving",
     PENDING, ev(E.RECONCILED, derived=S.SERVING, serving_generation=1), PENDING),
]
ALLOWED_CASES += [
    (f"{s} + hash_retired retires", SAMPLE[s], ev(E.HASH_RETIRED),
     replace(SAMPLE[s], state=S.RETIRED, op_id=None, pending_request=False, configured=False))
    for s in State if s is not S.RETIRED
]
ALLOWED_CASES += [
    (f"{s} + run_failed changes nothing", SAMPLE[s], ev(E.RUN_FAILED), SAMPLE[s]) for s in State
]


@pytest.mark.parametrize(
    ("current", "event", "expected"),
    [c[1:] for c in ALLOWED_CASES],
    ids=[c[0] for c in ALLOWED_CASES],
)
def test_an_allowed_transition_lands_in_the_specified_state(current, event, expected):
    assert apply(current, event) == expected


def test_the_allowed_cases_cover_every_entry_of_the_transition_table():
    covered = {(c[1].state, c[2].kind) for c in ALLOWED_CASES}
    table = {(s, k) for k, states in ALLOWED.items() for s in states}
    # reconciled from every state is exercised by the property test below.
    assert table - covered <= {(s, E.RECONCILED) for s in State}


# -- every forbidden transition ----------------------------------------------

FORBIDDEN = [(s, k) for s, k in itertools.product(State, EventKind) if s not in ALLOWED[k]]


@pytest.mark.parametrize(("state", "kind"), FORBIDDEN, ids=[f"{s}-{k}" for s, k in FORBIDDEN])
def test_a_forbidden_transition_raises(state, kind):
    event = ev(kind, generation=2, serving_generation=1, derived=S.SERVING, op_id="op-x")
    with pytest.raises(LifecycleError, match=f"event {kind} is not allowed in state {state}"):
        apply(SAMPLE[state], event)


def test_the_forbidden_list_is_not_empty_and_misses_no_pair():
    assert len(FORBIDDEN) + sum(len(v) for v in ALLOWED.values()) == len(State) * len(EventKind)
    assert (S.NEW, E.SEEDED) in FORBIDDEN
    assert (S.RETIRED, E.HASH_RETIRED) in FORBIDDEN


# -- invariants ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "event", "message"),
    [
        (PENDING, ev(E.REINDEX_REQUESTED, op_id="op-2"), "already pending"),
        (SAMPLE[S.REINDEX_STAGED], ev(E.GENERATION_CREATED, generation=3), "staged target"),
        (SAMPLE[S.SWAPPING], ev(E.GENERATIONS_DROPPED, dropped=(1, 2)), "cannot be dropped"),
        (SAMPLE[S.SWAPPING], ev(E.SEEDED, generation=1), "the target is 2"),
        (SAMPLE[S.SERVING], ev(E.REINDEX_STAGED, generation=1, op_id="o"), "not above serving"),
        (SAMPLE[S.SERVING], ev(E.REINDEX_STAGED, op_id="o"), "needs a generation"),
        (INITIAL, ev(E.GENERATION_CREATED, generation=1), "has no op_id"),
        (SAMPLE[S.SERVING], ev(E.REINDEX_REQUESTED), "has no op_id"),
        (INITIAL, ev(E.RECONCILED), "needs a derived sink state"),
        (INITIAL, ev(E.RECONCILED, derived=S.RETIRED), "needs a derived sink state"),
        (INITIAL, ev(E.RECONCILED, derived=S.SERVING), "serving needs serving generation"),
        (INITIAL, ev(E.GENERATION_CREATED, generation=0, op_id="o"), "is not >= 1"),
    ],
)
def test_an_event_breaking_an_invariant_raises(current, event, message):
    with pytest.raises(LifecycleError, match=message):
        apply(current, event)


@pytest.mark.parametrize(
    ("state", "problem"),
    [
        (LifecycleState(S.SERVING, 2, 1), "serving has no target"),
        (LifecycleState(S.REINDEXING, 2, 2, "o"), "not above serving"),
        (LifecycleState(S.SEEDING, None, 1), "without an op_id"),
        (LifecycleState(S.SERVING, 1, op_id="o"), "keeps op_id"),
        (LifecycleState(S.SEEDING, None, 1, "o", pending_request=True), "pending request"),
        (LifecycleState(S.RETIRED, 1), "configured must be false"),
        (LifecycleState(S.NEW, 1), "new has no serving"),
    ],
)
def test_malformed_states_are_reported(state, problem):
    assert any(problem in p for p in invariant_problems(state))
    with pytest.raises(LifecycleError, match="invalid lifecycle state"):
        check_invariants(state)


def test_generation_numbers_only_grow_along_a_rebuild():
    assert generations_only_grow(SAMPLE[S.SERVING], SAMPLE[S.REINDEX_STAGED])
    assert generations_only_grow(SAMPLE[S.SWAPPING], LifecycleState(S.SERVING, 2))
    assert not generations_only_grow(LifecycleState(S.SERVING, 3), LifecycleState(S.SERVING, 2))


# -- op ids ----------------------------------------------------------------------


def test_an_operation_opening_event_gets_a_fresh_op_id_and_others_keep_theirs():
    made = iter(["fresh-1", "fresh-2"])
    opened = with_op_id(INITIAL, ev(E.GENERATION_CREATED, generation=1), lambda: next(made))
    assert opened.op_id == "fresh-1"
    kept = with_op_id(SAMPLE[S.SEEDING], ev(E.BACKFILL_STARTED), lambda: next(made))
    assert kept.op_id is None
    assert apply(SAMPLE[S.SEEDING], kept).op_id == "op-a"
    given_id = with_op_id(INITIAL, ev(E.GENERATION_CREATED, generation=1, op_id="mine"), str)
    assert given_id.op_id == "mine"


def test_a_pending_request_carries_its_op_into_the_rebuild_and_through_reconciliation():
    staged_by_sink = ev(E.RECONCILED, derived=S.REINDEX_STAGED, serving_generation=1,
                        generation=2)
    assert not opens_operation(PENDING, staged_by_sink)
    assert apply(PENDING, staged_by_sink).op_id == "op-r"
    other_target = ev(E.RECONCILED, derived=S.REINDEXING, serving_generation=1, generation=3)
    assert opens_operation(SAMPLE[S.REINDEXING], other_target)


def test_the_rebuild_event_order_folds_from_serving_back_to_serving_on_the_new_generation():
    kinds = [
        ev(E.REINDEX_REQUESTED, op_id="op-15"),
        ev(E.REINDEX_STAGED, generation=2),
        ev(E.GENERATION_CREATED, generation=2),
        ev(E.BACKFILL_STARTED),
        ev(E.SWAP_STARTED),
        ev(E.ALIAS_SWAPPED),
        ev(E.GENERATIONS_DROPPED, dropped=(1,)),
        ev(E.SEEDED, generation=2),
    ]
    states = list(itertools.accumulate(kinds, apply, initial=SAMPLE[S.SERVING]))
    assert [s.state for s in states] == [
        S.SERVING, S.SERVING, S.REINDEX_STAGED, S.REINDEXING, S.REINDEXING,
        S.SWAPPING, S.SWAPPING, S.SWAPPING, S.SERVING,
    ]
    assert {s.op_id for s in states[1:-1]} == {"op-15"}
    assert fold(kinds, SAMPLE[S.SERVING]) == LifecycleState(S.SERVING, 2)


# -- reconciliation table --------------------------------------------------

RECONCILIATION = [
    ("no meta, no holder: new", SinkFacts(None), LifecycleState(S.NEW)),
    ("no meta, orphan gen 1 after a crash: still new",
     SinkFacts(None, generations=(1,)), LifecycleState(S.NEW)),
    ("no meta, one holder: staged behind it",
     SinkFacts(None, holders=(1,), generations=(1,)), LifecycleState(S.REINDEX_STAGED, 1, 2)),
    ("seeded marker, generation missing, no holder: seeding",
     SinkFacts(Meta(1, True), generations=()), LifecycleState(S.SEEDING, None, 2)),
    ("seeded marker, generation missing, orphan 4: seeds past it",
     SinkFacts(Meta(1, True), generations=(4,)), LifecycleState(S.SEEDING, None, 5)),
    ("seeded marker, generation missing, other holder: staged",
     SinkFacts(Meta(2, True), holders=(1,), generations=(1,)),
     LifecycleState(S.REINDEX_STAGED, 1, 3)),
    ("seeded marker, generation exists: serving",
     SinkFacts(Meta(2, True), holders=(2,), generations=(2,)), LifecycleState(S.SERVING, 2)),
    ("seeded marker, alias elsewhere: serving (alias repaired)",
     SinkFacts(Meta(2, True), holders=(1,), generations=(1, 2)), LifecycleState(S.SERVING, 2)),
    ("explicit HEAD result wins over the listing",
     SinkFacts(Meta(2, True), holders=(2,), generations=(2,), generation_exists=False),
     LifecycleState(S.REINDEX_STAGED, 2, 3)),
    ("unseeded marker, no holder: seeding",
     SinkFacts(Meta(1, False)), LifecycleState(S.SEEDING, None, 1)),
    ("unseeded marker, alias on it (swapped, crash before meta): seeding",
     SinkFacts(Meta(2, False), holders=(2,), generations=(1, 2)),
     LifecycleState(S.SEEDING, None, 2)),
    ("unseeded marker, other holder, target exists: reindexing",
     SinkFacts(Meta(2, False), holders=(1,), generations=(1, 2)),
     LifecycleState(S.REINDEXING, 1, 2)),
    ("unseeded marker, other holder, target missing: staged",
     SinkFacts(Meta(2, False), holders=(1,), generations=(1,)),
     LifecycleState(S.REINDEX_STAGED, 1, 2)),
    ("several holders: the highest serves",
     SinkFacts(Meta(3, False), holders=(1, 2), generations=(1, 2, 3)),
     LifecycleState(S.REINDEXING, 2, 3)),
    ("several holders incl. the target: seeding",
     SinkFacts(Meta(3, False), holders=(1, 3), generations=(1, 3)),
     LifecycleState(S.SEEDING, None, 3)),
]


@pytest.mark.parametrize(("facts", "derived"), [c[1:] for c in RECONCILIATION],
                         ids=[c[0] for c in RECONCILIATION])
def test_the_sink_facts_derive_the_lifecycle_state(facts, derived):
    assert derive_state(facts) == derived


def test_several_holders_are_noted_as_an_anomaly():
    notes = anomalies(SinkFacts(Meta(3, False), holders=(1, 2), generations=(1, 2, 3)))
    assert notes == ["hash alias has 2 holders (1, 2); the highest counts as serving"]
    assert anomalies(SinkFacts(Meta(2, True), holders=(2,), generations=(2,))) == []


def test_a_deleted_journal_is_reconciled_to_serving_from_the_sink():
    facts = SinkFacts(Meta(1, True), holders=(1,), generations=(1,))
    event = reconcile(None, facts, sink="primary", logical="users", hash_alias="users_ab12cd34")
    assert event is not None and event.kind is E.RECONCILED
    assert event.detail["journal"] is None
    assert event.detail["sink"]["meta"] == {"active_generation": 1, "seeded": True}
    assert apply(INITIAL, event) == LifecycleState(S.SERVING, 1)


def test_the_sink_wins_over_a_journal_that_says_reindexing():
    journal = LifecycleState(S.REINDEXING, 2, 3, "op-old")
    facts = SinkFacts(Meta(2, True), holders=(2,), generations=(2,))
    event = reconcile(journal, facts, sink="primary", logical="users",
                      hash_alias="users_ab12cd34")
    assert event is not None
    assert event.detail["journal"] == {"state": "reindexing", "serving_generation": 2,
                                       "target_generation": 3}
    assert apply(journal, event) == LifecycleState(S.SERVING, 2)


def test_an_agreeing_journal_needs_no_reconciliation():
    facts = SinkFacts(Meta(2, False), holders=(1,), generations=(1, 2))
    journal = LifecycleState(S.REINDEXING, 1, 2, "op-a")
    assert reconcile(journal, facts, sink="p", logical="users", hash_alias="users_x") is None
    retired = LifecycleState(S.RETIRED, 2, configured=False)
    served = SinkFacts(Meta(2, True), holders=(2,), generations=(2,))
    assert reconcile(retired, served, sink="p", logical="users", hash_alias="users_x") is not None


# -- properties ------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(st.data())
def test_any_walk_through_allowed_events_either_raises_or_keeps_every_invariant(data):
    state, applied = INITIAL, 0
    for _ in range(12):
        kinds = [k for k, states in ALLOWED.items() if state.state in states]
        event = ev(
            data.draw(st.sampled_from(kinds)),
            generation=data.draw(st.none() | st.integers(1, 6)),
            serving_generation=data.draw(st.none() | st.integers(1, 6)),
            derived=data.draw(st.none() | st.sampled_from(list(State))),
            dropped=tuple(data.draw(st.lists(st.integers(1, 6), max_size=2))),
            op_id=f"op-{applied}",
        )
        try:
            after = apply(state, event)
        except LifecycleError:
            continue
        assert invariant_problems(after) == []
        state, applied = after, applied + 1


@settings(max_examples=150, deadline=None)
@given(
    st.none() | st.tuples(st.integers(1, 5), st.booleans()),
    st.sets(st.integers(1, 5), max_size=3),
    st.sets(st.integers(1, 5), max_size=3),
)
def test_every_derived_state_is_a_valid_reconciliation_target(meta, holders, gens):
    facts = SinkFacts(None if meta is None else Meta(*meta), tuple(sorted(holders)),
                      tuple(sorted(gens | holders)))
    event = reconcile(None, facts, sink="p", logical="users", hash_alias="users_x",
                      op_id="op-r")
    assert event is not None
    assert invariant_problems(apply(INITIAL, event)) == []


# -- wire states ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("states", "wire"),
    [
        ([INITIAL], WireState.PENDING),
        ([SAMPLE[S.SERVING], INITIAL], WireState.PENDING),
        ([SAMPLE[S.SERVING], SAMPLE[S.REINDEXING]], WireState.BACKFILLING),
        ([SAMPLE[S.SEEDING]], WireState.BACKFILLING),
        ([PENDING], WireState.SEEDED),
        ([SAMPLE[S.SERVING], SAMPLE[S.RETIRED]], WireState.SEEDED),
        ([], WireState.SEEDED),
    ],
)
def test_the_wire_state_sums_up_every_sink(states, wire):
    assert wire_state(states) == wire
