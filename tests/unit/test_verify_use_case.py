"""The verify use case against the in-memory builder, root rows and served index."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from flusso.adapters.fakes.builder import InMemoryDocumentBuilder, InMemoryIndex
from flusso.adapters.fakes.rows import InMemoryRootRows
from flusso.adapters.fakes.served import InMemoryServedIndex
from flusso.app.ports import Repair, RepairResult
from flusso.app.services.verify import (
    UnknownIndexError,
    Verifier,
    VerifyOptions,
    VerifyReport,
    select_indexes,
)
from flusso.domain.documents.change import DocumentId, TableRef

USERS = TableRef("public", "users")


def _visible(row: dict[str, Any]) -> bool:
    return not row.get("hidden", False)


class Clock:
    """A monotonic clock that only moves when the use case sleeps; `on_sleep` runs first."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[], None] | None = None

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.on_sleep is not None:
            self.on_sleep()
        self.now += seconds


class World:
    """A database of `rows` users and an index live sync has kept equal to it."""

    def __init__(self, rows: int = 30) -> None:
        self.builder = InMemoryDocumentBuilder(
            [InMemoryIndex("users", USERS, where=_visible)],
            {USERS: {(("id", i),): {"id": i, "name": f"user {i}"} for i in range(1, rows + 1)}},
        )
        self.rows = InMemoryRootRows([InMemoryIndex("users", USERS)], self.builder.tables)
        self.served = InMemoryServedIndex(indexes=["users"])
        self.clock = Clock()
        for i in range(1, rows + 1):
            self.sync(i)

    def row(self, key: int) -> dict[str, Any] | None:
        return self.builder.tables[USERS].get((("id", key),))

    def set_row(self, key: int, **values: Any) -> None:
        self.builder.put_row(USERS, (("id", key),), {"id": key, "name": f"user {key}", **values})

    def delete_row(self, key: int) -> None:
        self.builder.delete_row(USERS, (("id", key),))

    def sync(self, key: int) -> None:
        """What live sync writes for one row: the built document, or a delete."""
        row = self.row(key)
        if row is None or not _visible(row):
            self.served.remove("users", str(key))
        else:
            self.served.put("users", str(key), row)

    def verifier(self, served: Any = None, **options: Any) -> Verifier:
        return Verifier(
            self.builder,
            self.rows,
            [served or self.served],
            VerifyOptions(**{"settle": 1.0, "page_size": 7, **options}),
            clock=self.clock,
            sleep=self.clock.sleep,
        )

    async def verify(self, served: Any = None, **options: Any) -> VerifyReport:
        return await self.verifier(served, **options).run(["users"])


def counts(report: VerifyReport) -> dict[str, Any]:
    (entry,) = report.to_json()["indexes"]
    return entry


def tamper(world: World) -> None:
    """2 missing, 3 stale, 4 orphaned without a row, 1 orphaned by the index's filter."""
    world.served.remove("users", "3")
    world.served.remove("users", "4")
    for key in (5, 6, 7):
        world.served.put("users", str(key), {"id": key, "name": "tampered"})
    for key in (101, 102, 103, 104):
        world.served.put("users", str(key), {"id": key, "name": "ghost"})
    world.set_row(8, hidden=True)  # live sync missed the change that hid it


async def test_an_index_equal_to_the_database_has_no_drift() -> None:
    world = World()
    report = await world.verify()
    assert counts(report) == {
        "index": "users", "checked": 30, "missing": 0, "stale": 0, "orphaned": 0, "repaired": 0,
    }
    assert not report.drift_left
    assert world.clock.sleeps == []  # nothing to settle, nothing waited for


async def test_a_tampered_index_reports_each_kind_of_drift_exactly() -> None:
    world = World()
    tamper(world)
    report = await world.verify()
    assert counts(report) == {
        "index": "users", "checked": 34, "missing": 2, "stale": 3, "orphaned": 5, "repaired": 0,
    }
    assert report.drift_left
    verbose = report.to_json(verbose=True)["indexes"][0]
    assert verbose["ids"] == {
        "missing": ["3", "4"],
        "stale": ["5", "6", "7"],
        "orphaned": ["8", "101", "102", "103", "104"],
    }
    assert verbose["unsettled"] == 0
    assert world.served.documents("users")["5"]["name"] == "tampered"  # nothing written


async def test_repair_fixes_every_difference_and_a_second_run_is_clean() -> None:
    world = World()
    tamper(world)
    report = await world.verify(repair=True)
    assert counts(report)["repaired"] == 10
    assert not report.drift_left
    expected = {
        str(i): {"id": i, "name": f"user {i}"} for i in range(1, 31) if i != 8
    }
    assert world.served.documents("users") == expected
    again = await world.verify()
    assert counts(again) == {
        "index": "users", "checked": 30, "missing": 0, "stale": 0, "orphaned": 0, "repaired": 0,
    }


async def test_a_change_live_sync_writes_while_verify_looks_is_not_drift() -> None:
    world = World()
    world.set_row(5, name="renamed")  # committed; live sync has not written it yet
    world.delete_row(6)
    world.set_row(31)

    def live_sync_catches_up() -> None:
        for key in (5, 6, 31):
            world.sync(key)

    world.clock.on_sleep = live_sync_catches_up
    report = await world.verify()
    # 30 rows (6 deleted, 31 added) and the served 6 that had no row any more.
    assert counts(report) == {
        "index": "users", "checked": 31, "missing": 0, "stale": 0, "orphaned": 0, "repaired": 0,
    }
    assert world.clock.sleeps == [1.0]  # the differences were looked at again once settled


async def test_a_document_rewritten_through_every_look_is_left_to_live_sync() -> None:
    world = World()
    turn = [0]

    def hot_row() -> None:  # a row updated faster than verify looks
        turn[0] += 1
        world.set_row(9, name=f"hot {turn[0]}")
        world.sync(9)
        world.set_row(9, name=f"hot {turn[0]} again")

    world.set_row(9, name="hot")
    world.clock.on_sleep = hot_row
    report = await world.verify(looks=3)
    assert counts(report)["stale"] == 0
    assert report.to_json(verbose=True)["indexes"][0]["unsettled"] == 1
    assert not report.drift_left
    assert len(world.clock.sleeps) == 3


async def test_a_difference_that_stays_put_counts_even_while_the_rows_keep_changing() -> None:
    world = World()
    world.set_row(9, name="first")  # live sync is down: the index never moves

    def rows_change() -> None:
        world.set_row(9, name=f"changed at {world.clock.now}")

    world.clock.on_sleep = rows_change
    report = await world.verify()
    assert counts(report)["stale"] == 1


class RacingServedIndex(InMemoryServedIndex):
    """Runs `before_repair` just before each repair call lands, as a concurrent writer would."""

    def __init__(self, before_repair: Callable[[InMemoryServedIndex], None], **kw: Any) -> None:
        super().__init__(**kw)
        self.before_repair = before_repair

    async def repair(self, index: str, repairs: Sequence[Repair]) -> list[RepairResult]:
        self.before_repair(self)
        return await super().repair(index, repairs)


def _copy_world(world: World, served: InMemoryServedIndex) -> InMemoryServedIndex:
    for doc_id, body in world.served.documents("users").items():
        served.put("users", doc_id, body)
    return served


async def test_a_repair_never_overwrites_a_newer_write_of_live_sync() -> None:
    world = World()
    world.served.put("users", "5", {"id": 5, "name": "tampered"})

    def live_writes_first(served: InMemoryServedIndex) -> None:
        world.set_row(5, name="newest")
        served.put("users", "5", world.row(5) or {})

    racing = _copy_world(world, RacingServedIndex(live_writes_first, indexes=["users"]))
    report = await world.verify(racing, repair=True)
    assert racing.documents("users")["5"] == {"id": 5, "name": "newest"}
    # The drift was found; the newer write, not the repair, fixed it.
    assert counts(report)["stale"] == 1 and not report.drift_left


async def test_a_created_copy_whose_row_went_away_meanwhile_is_removed_again() -> None:
    world = World()
    world.served.remove("users", "4")
    calls = [0]

    def row_deleted_while_repairing(served: InMemoryServedIndex) -> None:
        calls[0] += 1
        if calls[0] == 1:
            world.delete_row(4)  # live sync deletes the (absent) copy: a no-op
            world.sync(4)

    racing = _copy_world(world, RacingServedIndex(row_deleted_while_repairing, indexes=["users"]))
    report = await world.verify(racing, repair=True)
    assert counts(report)["missing"] == 1
    assert "4" not in racing.documents("users")


async def test_a_repair_the_index_refuses_stays_drift() -> None:
    world = World()
    world.served.remove("users", "3")
    refusing = _copy_world(
        world, InMemoryServedIndex(indexes=["users"], refuse=lambda index, i: "mapping says no")
    )
    report = await world.verify(refusing, repair=True)
    entry = report.to_json(verbose=True)["indexes"][0]
    assert (entry["missing"], entry["repaired"]) == (1, 0)
    assert entry["refused"] == ["3: mapping says no"]
    assert report.drift_left


async def test_a_sample_checks_that_many_rows_and_that_many_served_ids() -> None:
    world = World(rows=200)
    for key in (1001, 1002):
        world.served.put("users", str(key), {"id": key})
    report = await world.verify(sample=202)  # everything, both ways
    assert counts(report)["checked"] == 202
    assert counts(report)["orphaned"] == 2
    small = await world.verify(sample=10)
    assert 10 <= counts(small)["checked"] <= 12
    assert small.sampled


async def test_a_long_queue_of_differences_is_settled_as_the_walk_goes() -> None:
    world = World(rows=60)
    for key in range(1, 61, 2):
        world.served.put("users", str(key), {"id": key, "name": "tampered"})
    report = await world.verify(max_pending=5, repair=True)
    assert counts(report)["stale"] == 30
    assert counts(report)["repaired"] == 30
    assert not (await world.verify()).drift_left


async def test_several_sinks_are_reported_separately_and_named() -> None:
    world = World(rows=3)
    other = _copy_world(world, InMemoryServedIndex(sink_name="backup", indexes=["users"]))
    other.remove("users", "2")
    verifier = Verifier(
        world.builder, world.rows, [world.served, other], VerifyOptions(settle=0),
        clock=world.clock, sleep=world.clock.sleep,
    )
    report = await verifier.run(["users"])
    assert [(e["sink"], e["missing"]) for e in report.to_json()["indexes"]] == [
        ("memory", 0), ("backup", 1),
    ]


async def test_an_index_the_sink_lacks_is_an_error() -> None:
    world = World(rows=1)
    with pytest.raises(Exception, match="no such index"):
        await world.verify(InMemoryServedIndex(indexes=[]))


def test_every_enabled_index_is_verified_by_default() -> None:
    assert select_indexes(["a", "b"], ["a", "b", "c"], []) == ["a", "b"]
    assert select_indexes(["a", "b"], ["a", "b"], ["b", "b"]) == ["b"]


@pytest.mark.parametrize(
    ("name", "why"),
    [("nope", "is not in the config"), ("c", "is disabled in the config")],
)
def test_an_unknown_index_names_itself_and_the_known_ones(name: str, why: str) -> None:
    with pytest.raises(UnknownIndexError) as raised:
        select_indexes(["a", "b"], ["a", "b", "c"], [name])
    assert str(raised.value) == f"unknown index {name!r}: it {why}"
    assert raised.value.hint == "the enabled indexes are: a, b"


async def test_the_walk_reads_root_rows_in_key_order_and_pages() -> None:
    world = World(rows=15)
    pages = [page async for page in world.rows.pages("users", 7)]
    assert [len(p) for p in pages] == [7, 7, 1]
    assert [d.key[0] for p in pages for d in p] == list(range(1, 16))
    assert await world.rows.existing("users", ["1", "15", "16", "x"]) == {"1", "15"}
    assert isinstance(pages[0][0], DocumentId)
