"""The ReindexControl contract, held by `ReindexRequests` over the in-memory journal and over
the SQLite journal alike (the journal supplies `detail`).

Requests answer at once; a queued or running rebuild refuses another request for the same
index; the queue has a bound; `detail` shows each sink's lifecycle from the journal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from flusso.adapters.fakes.journal import InMemoryJournal
from flusso.adapters.journal.sqlite import SqliteJournal
from flusso.app.ports import Journal, ReindexControl
from flusso.app.services.reindex_requests import ReindexRequests
from flusso.domain.lifecycle import EventKind, LifecycleEvent

HASH = "users_0123abcd"


@dataclass
class Leg:
    journal: Journal
    control: Callable[..., ReindexRequests]
    """A control over this leg's journal; keyword arguments as `ReindexRequests` takes them."""


@pytest.fixture(params=["memory", "sqlite"])
async def leg(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Leg]:
    if request.param == "memory":
        journal: Journal = InMemoryJournal()
    else:
        journal = SqliteJournal.open(tmp_path / "journal.sqlite3")

    def control(**kwargs: object) -> ReindexRequests:
        return ReindexRequests(["users", "orders"], journal=journal, **kwargs)  # type: ignore[arg-type]

    try:
        yield Leg(journal, control)
    finally:
        await journal.close()


async def serve_generation_one(journal: Journal, sink: str = "primary") -> None:
    for kind, generation in (
        (EventKind.GENERATION_CREATED, 1),
        (EventKind.BACKFILL_STARTED, None),
        (EventKind.SWAP_STARTED, None),
        (EventKind.ALIAS_SWAPPED, None),
        (EventKind.GENERATIONS_DROPPED, None),
        (EventKind.SEEDED, 1),
    ):
        await journal.record(
            LifecycleEvent(sink=sink, logical="users", hash_alias=HASH, kind=kind,
                           generation=generation)
        )


async def test_the_enabled_indexes_are_the_ones_it_was_given(leg: Leg):
    control: ReindexControl = leg.control()
    assert control.enabled_indexes() == frozenset({"users", "orders"})


async def test_a_request_is_queued_once_and_refused_while_queued(leg: Leg):
    control = leg.control()
    assert await control.request("users") == "queued"
    assert await control.request("users") == "in_progress"
    assert await control.request("orders") == "queued"
    assert await control.next() == "users"
    assert await control.request("users") == "in_progress"  # being rebuilt
    control.finished("users")
    assert await control.request("users") == "queued"


async def test_a_full_or_closed_queue_refuses_with_full(leg: Leg):
    control = leg.control(capacity=1)
    assert await control.request("users") == "queued"
    assert await control.request("orders") == "full"
    control.close()
    assert control.take_pending() == ["users"]
    assert await control.request("orders") == "full"


async def test_without_a_backfill_nothing_is_queued(leg: Leg):
    control = leg.control(skip_backfill=True)
    assert await control.request("users") == "needs_backfill"
    assert control.take_pending() == []


async def test_an_index_the_lifecycle_calls_busy_is_refused(leg: Leg):
    async def busy(name: str) -> bool:
        return name == "orders"

    control = leg.control(is_busy=busy)
    assert await control.request("orders") == "in_progress"
    assert await control.request("users") == "queued"


async def test_detail_is_empty_until_the_journal_knows_an_index(leg: Leg):
    assert await leg.control().detail() == {}


async def test_detail_shows_each_sinks_lifecycle_and_a_queued_request(leg: Leg):
    await serve_generation_one(leg.journal)
    await serve_generation_one(leg.journal, sink="audit")
    control = leg.control()
    detail = await control.detail()
    assert set(detail) == {"users"}
    assert set(detail["users"]) == {"audit", "primary"}
    entry = detail["users"]["primary"]
    assert {k: v for k, v in entry.items() if k != "updated_at"} == {
        "lifecycle": "serving",
        "hash_alias": HASH,
        "serving_generation": 1,
        "target_generation": None,
        "pending_request": False,
    }
    assert await control.request("users") == "queued"
    assert (await control.detail())["users"]["primary"]["pending_request"] is True


async def test_detail_prefers_the_live_hash_over_a_retired_one(leg: Leg):
    await serve_generation_one(leg.journal)
    await leg.journal.record(
        LifecycleEvent(sink="primary", logical="users", hash_alias=HASH,
                       kind=EventKind.HASH_RETIRED)
    )
    newer = "users_89abcdef"
    await leg.journal.record(
        LifecycleEvent(sink="primary", logical="users", hash_alias=newer,
                       kind=EventKind.GENERATION_CREATED, generation=1)
    )
    detail = await leg.control().detail()
    assert detail["users"]["primary"]["hash_alias"] == newer
    assert detail["users"]["primary"]["lifecycle"] == "seeding"
