"""Journal versus sink at start-up: observe each hash alias, append
`reconciled` where the journal is missing or disagrees (the sink wins), retire hashes no
longer configured.

A rebuild a crash interrupted needs nothing more here: its sink facts make `ensure_index`
build the staged target behind the serving alias, and the start's ordinary backfill seeds
it and swaps (live sync waits for that backfill, as it does for a first build).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from flusso.app.ports import IndexFacts, Journal
from flusso.domain.lifecycle import (
    EventKind,
    LifecycleEvent,
    LifecycleState,
    SinkFacts,
    State,
    reconcile,
)
from flusso.domain.naming import parse_generation
from flusso.domain.reindex import ClusterView, IndexNames
from flusso.domain.types import IndexMapping

logger = logging.getLogger(__name__)


async def observe(admin: IndexFacts, names: IndexNames) -> tuple[SinkFacts, ClusterView]:
    """What the sink shows for one hash alias, as reconciliation and planning read it."""
    meta = await admin.read_marker(names)
    view = await admin.cluster_view(names)
    holders: list[int] = []
    foreign: list[str] = []
    for holder in view.hash_holders:
        number = parse_generation(names.hash_alias, holder)
        if number is None:
            foreign.append(holder)
        else:
            holders.append(number)
    facts = SinkFacts(
        meta=meta,
        holders=tuple(holders),
        generations=view.generations,
        foreign_holders=tuple(foreign),
    )
    return facts, view


async def reconcile_index(
    journal: Journal, admin: IndexFacts, mapping: IndexMapping
) -> LifecycleState:
    """Bring the journal row of `mapping` in `admin`'s sink in line with the sink; the state."""
    names = admin.index_names(mapping)
    facts, _ = await observe(admin, names)
    row = await journal.current(admin.sink_name, names.hash_alias)
    event = reconcile(
        row.lifecycle if row is not None else None,
        facts,
        sink=admin.sink_name,
        logical=names.logical,
        hash_alias=names.hash_alias,
    )
    if event is None:
        # reconcile answers None only when an existing row agrees with the sink
        return row.lifecycle if row is not None else LifecycleState()
    record = await journal.record(event)
    logger.info(
        "lifecycle journal reconciled with the sink",
        extra={
            "sink": admin.sink_name,
            "index": names.logical,
            "hash_alias": names.hash_alias,
            "state": str(record.state_after),
            "serving_generation": record.serving_generation,
            "target_generation": record.target_generation,
        },
    )
    current = await journal.current(admin.sink_name, names.hash_alias)
    return current.lifecycle if current is not None else LifecycleState()


@dataclass(frozen=True)
class StartupReport:
    """Per logical index, its lifecycle in each sink after reconciliation."""

    states: dict[str, dict[str, LifecycleState]] = field(default_factory=dict)

    @property
    def pending_requests(self) -> list[str]:
        """Indexes with a journaled reindex request no rebuild picked up (resume these)."""
        return sorted(
            index
            for index, by_sink in self.states.items()
            if any(s.pending_request for s in by_sink.values())
        )

    @property
    def resuming(self) -> list[str]:
        """Indexes whose seeding or rebuild the start's backfill finishes."""
        busy = {State.SEEDING, State.REINDEX_STAGED, State.REINDEXING, State.SWAPPING}
        return sorted(
            index
            for index, by_sink in self.states.items()
            if any(s.state in busy for s in by_sink.values())
        )


async def reconcile_on_start(
    journal: Journal, admins: Sequence[IndexFacts], mappings: Sequence[IndexMapping]
) -> StartupReport:
    """Reconcile every configured `(sink, hash alias)`; retire journal rows of hashes that
    are no longer configured (their data stopped following the source). Idempotent: call it before the pipeline starts, and
    again once it is live so the journal records what the start's backfill finished."""
    states: dict[str, dict[str, LifecycleState]] = {}
    for admin in admins:
        configured: set[str] = set()
        for mapping in mappings:
            configured.add(admin.index_names(mapping).hash_alias)
            state = await reconcile_index(journal, admin, mapping)
            states.setdefault(mapping.index, {})[admin.sink_name] = state
        for row in await journal.all_current():
            if (
                row.sink != admin.sink_name
                or row.hash_alias in configured
                or row.lifecycle.state is State.RETIRED
            ):
                continue
            await journal.record(
                LifecycleEvent(
                    sink=row.sink,
                    logical=row.logical,
                    hash_alias=row.hash_alias,
                    kind=EventKind.HASH_RETIRED,
                )
            )
            logger.info(
                "schema hash no longer configured; retired in the lifecycle journal",
                extra={"sink": row.sink, "index": row.logical, "hash_alias": row.hash_alias},
            )
    return StartupReport(states)
