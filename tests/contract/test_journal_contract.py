"""The Journal port, held on `InMemoryJournal` and `SqliteJournal` alike.

Each leg yields a `Leg`: the open journal, `reopen()` (a new process on the same store or
file), `tamper(event_id)` (try to rewrite a recorded event behind the port's back) and
`break_writes()` (make the next write fail). SQLite-only facts (pragmas, migrations,
corrupt files) follow at the end.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from flusso.adapters.fakes.journal import InMemoryJournal, InMemoryJournalStore
from flusso.adapters.journal import migrate, tables
from flusso.adapters.journal.migrate import (
    HEAD_REVISION,
    alembic_config,
    alembic_upgrade,
    migrations_dir,
)
from flusso.adapters.journal.sqlite import SqliteJournal, open_journal_engine
from flusso.app.ports import Journal, JournalError
from flusso.domain.errors import LifecycleError
from flusso.domain.lifecycle import (
    INITIAL,
    EventKind,
    LifecycleEvent,
    LifecycleState,
    Meta,
    SinkFacts,
    State,
    fold,
    reconcile,
)

E = EventKind
HASH = "users_ab12cd34"
RUN = "5b0f0c1e-0000-4000-8000-000000000001"
RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class Clock:
    """A deterministic UTC clock that ticks 1.5 ms per reading."""

    def __init__(self) -> None:
        self.now = datetime(2026, 6, 3, 10, 20, 30, 123000, tzinfo=UTC)

    def __call__(self) -> datetime:
        moment = self.now
        self.now += timedelta(microseconds=1500)
        return moment


@dataclass
class Leg:
    journal: Journal
    reopen: Callable[[], Journal]
    tamper: Callable[[int], Awaitable[None]]
    break_writes: Callable[[], None]


def ev(kind: EventKind, *, sink: str = "primary", hash_alias: str = HASH, **fields):
    return LifecycleEvent(sink=sink, logical="users", hash_alias=hash_alias, kind=kind, **fields)


@pytest.fixture(params=["memory", "sqlite"])
async def leg(request, tmp_path: Path) -> AsyncIterator[Leg]:
    clock = Clock()
    opened: list[Journal] = []
    if request.param == "memory":
        store = InMemoryJournalStore()
        faults = {"writes": 0}

        def reopen() -> Journal:
            journal = InMemoryJournal(RUN, store=store, clock=clock,
                                      fail_writes=faults.pop("writes", 0))
            opened.append(journal)
            return journal

        async def tamper(event_id: int) -> None:
            records = await opened[-1].events()
            target = next(r for r in records if r.event_id == event_id)
            records.remove(target)  # the list handed out is a copy
            with pytest.raises(dataclasses.FrozenInstanceError):
                target.event = E.SEEDED  # type: ignore[misc]
            target.detail["forged"] = True  # a copy too
            raise sqlite3.IntegrityError("lifecycle_events is append-only")

        def break_writes() -> None:
            opened[-1]._fail_writes = 1  # noqa: SLF001 - the fake's own fault knob

    else:
        path = tmp_path / "journal.sqlite3"

        def reopen() -> Journal:
            journal = SqliteJournal.open(path, RUN, clock=clock)
            opened.append(journal)
            return journal

        async def tamper(event_id: int) -> None:
            raw = sqlite3.connect(path)
            try:
                try:
                    raw.execute("UPDATE lifecycle_events SET event = 'seeded' "
                                "WHERE event_id = ?", (event_id,))
                except sqlite3.IntegrityError:
                    raw.execute("DELETE FROM lifecycle_events WHERE event_id = ?", (event_id,))
                raw.commit()
            finally:
                raw.close()

        def break_writes() -> None:
            raw = sqlite3.connect(path)
            try:
                raw.execute("ALTER TABLE lifecycle_state RENAME TO lifecycle_state_gone")
                raw.commit()
            finally:
                raw.close()

    leg = Leg(reopen(), reopen, tamper, break_writes)
    try:
        yield leg
    finally:
        for journal in opened:
            await journal.close()


async def seed_and_serve(journal: Journal, *, hash_alias: str = HASH) -> None:
    for event in (
        ev(E.GENERATION_CREATED, hash_alias=hash_alias, generation=1),
        ev(E.BACKFILL_STARTED, hash_alias=hash_alias),
        ev(E.SWAP_STARTED, hash_alias=hash_alias),
        ev(E.ALIAS_SWAPPED, hash_alias=hash_alias),
        ev(E.GENERATIONS_DROPPED, hash_alias=hash_alias),
        ev(E.SEEDED, hash_alias=hash_alias, generation=1),
    ):
        await journal.record(event)


CASE_15 = [
    ev(E.REINDEX_REQUESTED, detail={"origin": "POST /reindex"}),
    ev(E.REINDEX_STAGED, generation=2),
    ev(E.GENERATION_CREATED, generation=2),
    ev(E.BACKFILL_STARTED),
    ev(E.SWAP_STARTED),
    ev(E.ALIAS_SWAPPED),
    ev(E.GENERATIONS_DROPPED, dropped=(1,), detail={"dropped": [f"{HASH}_1"]}),
    ev(E.SEEDED, generation=2),
]


async def test_a_recorded_event_comes_back_with_its_before_and_after_states(leg):
    record = await leg.journal.record(ev(E.GENERATION_CREATED, generation=1))
    assert record.event_id == 1
    assert RFC3339_MS.match(record.recorded_at)
    assert record.recorded_at == "2026-06-03T10:20:30.123Z"
    assert record.run_id == RUN
    assert (record.event, record.state_before, record.state_after) == (
        E.GENERATION_CREATED, State.NEW, State.SEEDING)
    assert (record.serving_generation, record.target_generation) == (None, 1)
    assert record.op_id is not None
    row = await leg.journal.current("primary", HASH)
    assert row is not None
    assert row.lifecycle == LifecycleState(State.SEEDING, None, 1, record.op_id)
    assert (row.logical, row.last_event_id, row.updated_at) == ("users", 1, record.recorded_at)


async def test_the_rebuild_events_are_kept_in_order_under_one_op_id(leg):
    await seed_and_serve(leg.journal)
    first = len(await leg.journal.events())
    for event in CASE_15:
        await leg.journal.record(event)
    records = await leg.journal.events(after_id=first)
    assert [r.event for r in records] == [e.kind for e in CASE_15]
    op_ids = {r.op_id for r in records[:-1]}
    assert len(op_ids) == 1 and None not in op_ids
    assert records[-1].op_id is None
    assert [r.event for r in await leg.journal.events(op_id=records[0].op_id)] == [
        e.kind for e in CASE_15[:-1]]
    assert records[0].detail == {"origin": "POST /reindex"}
    assert records[6].detail == {"dropped": [f"{HASH}_1"], "dropped_generations": [1]}
    row = await leg.journal.current("primary", HASH)
    assert row is not None and row.lifecycle == LifecycleState(State.SERVING, 2)
    assert row.to_detail() == {"lifecycle": "serving", "hash_alias": HASH,
                               "serving_generation": 2, "target_generation": None,
                               "pending_request": False, "updated_at": records[-1].recorded_at}


async def test_every_state_row_equals_the_fold_of_its_events(leg):
    journal = leg.journal
    await seed_and_serve(journal)
    await seed_and_serve(journal, hash_alias="users_00000000")
    for event in CASE_15[:4]:
        await journal.record(event)
    await journal.record(ev(E.RUN_FAILED, detail={"error": "bulk request failed"}))
    await journal.record(ev(E.HASH_RETIRED, hash_alias="users_00000000"))
    facts = SinkFacts(Meta(2, True), holders=(2,), generations=(2,))
    current = await journal.current("primary", HASH)
    assert current is not None
    await journal.record(reconcile(current.lifecycle, facts, sink="primary", logical="users",
                                   hash_alias=HASH))
    rows = await journal.all_current()
    assert [(r.sink, r.hash_alias) for r in rows] == [("primary", "users_00000000"),
                                                      ("primary", HASH)]
    for row in rows:
        records = await journal.events("primary", row.hash_alias)
        assert fold(r.to_event() for r in records) == row.lifecycle
        assert row.last_event_id == records[-1].event_id
    assert rows[0].lifecycle.state is State.RETIRED
    assert rows[1].lifecycle == LifecycleState(State.SERVING, 2)


async def test_a_forbidden_transition_writes_nothing(leg):
    await leg.journal.record(ev(E.GENERATION_CREATED, generation=1))
    before = (await leg.journal.events(), await leg.journal.current("primary", HASH))
    with pytest.raises(LifecycleError, match="not allowed in state seeding"):
        await leg.journal.record(ev(E.SEEDED, generation=1))
    assert (await leg.journal.events(), await leg.journal.current("primary", HASH)) == before


async def test_an_event_whose_detail_is_not_json_is_refused_whole(leg):
    with pytest.raises(JournalError, match="not JSON"):
        await leg.journal.record(ev(E.GENERATION_CREATED, generation=1,
                                    detail={"when": datetime.now(UTC)}))
    assert await leg.journal.events() == []
    assert await leg.journal.current("primary", HASH) is None


async def test_recorded_events_cannot_be_rewritten_or_deleted(leg):
    await seed_and_serve(leg.journal)
    before = await leg.journal.events()
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        await leg.tamper(2)
    assert await leg.journal.events() == before


async def test_a_failed_write_raises_journal_error(leg):
    await leg.journal.record(ev(E.GENERATION_CREATED, generation=1))
    leg.break_writes()
    with pytest.raises(JournalError):
        await leg.journal.record(ev(E.BACKFILL_STARTED))


async def test_reopening_after_close_keeps_the_state_and_the_op_of_a_resumed_rebuild(leg):
    await seed_and_serve(leg.journal)
    for event in CASE_15[:4]:
        await leg.journal.record(event)
    op_id = (await leg.journal.current("primary", HASH)).lifecycle.op_id
    await leg.journal.close()
    with pytest.raises(JournalError, match="closed"):
        await leg.journal.current("primary", HASH)
    again = leg.reopen()
    row = await again.current("primary", HASH)
    assert row is not None
    assert row.lifecycle == LifecycleState(State.REINDEXING, 1, 2, op_id)
    resumed = await again.record(ev(E.BACKFILL_STARTED, detail={"resumed": True}))
    assert resumed.op_id == op_id
    assert resumed.event_id == len(await again.events())


async def test_events_filter_by_sink_hash_alias_and_position(leg):
    await leg.journal.record(ev(E.GENERATION_CREATED, generation=1))
    await leg.journal.record(ev(E.GENERATION_CREATED, sink="other", generation=1))
    await leg.journal.record(ev(E.BACKFILL_STARTED))
    assert [r.event_id for r in await leg.journal.events("primary")] == [1, 3]
    assert [r.event_id for r in await leg.journal.events(hash_alias=HASH, after_id=1)] == [2, 3]
    assert [r.sink for r in await leg.journal.all_current()] == ["other", "primary"]


async def test_a_fresh_journal_is_reconciled_from_the_sink(leg):
    facts = SinkFacts(Meta(1, True), holders=(1,), generations=(1,))
    event = reconcile(None, facts, sink="primary", logical="users", hash_alias=HASH)
    record = await leg.journal.record(event)
    assert (record.event, record.state_before, record.state_after) == (
        E.RECONCILED, State.NEW, State.SERVING)
    assert record.detail["sink"]["meta"] == {"active_generation": 1, "seeded": True}
    row = await leg.journal.current("primary", HASH)
    assert row.to_detail()["lifecycle"] == "serving"
    assert row.to_detail()["serving_generation"] == 1


async def test_reconciling_a_stale_rebuild_closes_its_op(leg):
    await seed_and_serve(leg.journal)
    await leg.journal.record(ev(E.REINDEX_REQUESTED))
    await leg.journal.record(ev(E.REINDEX_STAGED, generation=3))
    await leg.journal.record(ev(E.GENERATION_CREATED, generation=3))
    current = await leg.journal.current("primary", HASH)
    facts = SinkFacts(Meta(2, True), holders=(2,), generations=(2,))
    event = reconcile(current.lifecycle, facts, sink="primary", logical="users", hash_alias=HASH)
    record = await leg.journal.record(event)
    assert record.detail["journal"]["state"] == "reindexing"
    assert (await leg.journal.current("primary", HASH)).lifecycle == LifecycleState(
        State.SERVING, 2)
    assert fold(r.to_event() for r in await leg.journal.events()) == LifecycleState(
        State.SERVING, 2)
    assert INITIAL.state is State.NEW


# ---------------------------------------------------------------------------
# SQLite only: the file itself
# ---------------------------------------------------------------------------


def test_the_sqlite_journal_runs_in_wal_mode_with_full_sync(tmp_path):
    engine = open_journal_engine(tmp_path / "j.sqlite3")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    finally:
        engine.dispose()


async def test_an_empty_file_is_migrated_to_the_newest_schema(tmp_path):
    path = tmp_path / "empty.sqlite3"
    path.touch()
    journal = SqliteJournal.open(path, RUN)
    await journal.close()
    with sqlite3.connect(path) as raw:
        info = dict(raw.execute("SELECT key, value FROM journal_info"))
        version = raw.execute("SELECT version_num FROM alembic_version").fetchall()
        triggers = {r[0] for r in raw.execute("SELECT name FROM sqlite_master "
                                              "WHERE type = 'trigger'")}
    raw.close()
    assert info["schema_version"] == "1"
    assert RFC3339_MS.match(info["created_at"])
    assert version == [("0001",)]
    assert triggers == {"lifecycle_events_no_update", "lifecycle_events_no_delete"}


def test_the_core_tables_match_the_migrated_schema(tmp_path):
    engine = open_journal_engine(tmp_path / "j.sqlite3")
    try:
        inspector = inspect(engine)
        for table in tables.metadata.sorted_tables:
            migrated = [c["name"] for c in inspector.get_columns(table.name)]
            assert migrated == [c.name for c in table.columns], table.name
    finally:
        engine.dispose()


def _schema(path: Path) -> list[tuple[str, str, str]]:
    """Every table, index and trigger with its DDL, whitespace-normalised."""
    with sqlite3.connect(path) as raw:
        rows = raw.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name"
        ).fetchall()
    raw.close()
    def normal(sql: str) -> str:
        return re.sub(r"\(\s+", "(", re.sub(r"\s+\)", ")", " ".join(sql.split())))

    return [(kind, name, normal(sql)) for kind, name, sql in rows]


def test_a_fresh_journal_gets_exactly_the_schema_the_migrations_build(tmp_path):
    fresh, migrated = tmp_path / "fresh.sqlite3", tmp_path / "migrated.sqlite3"
    open_journal_engine(fresh).dispose()  # the fast path: tables.py, stamped
    engine = create_engine(f"sqlite:///{migrated}")
    try:
        alembic_upgrade(engine)  # the migrations themselves
    finally:
        engine.dispose()

    assert _schema(fresh) == _schema(migrated)
    assert any(kind == "trigger" for kind, _, _ in _schema(fresh))
    for path in (fresh, migrated):
        with sqlite3.connect(path) as raw:
            assert raw.execute("SELECT version_num FROM alembic_version").fetchall() == [
                (HEAD_REVISION,)
            ]
            assert dict(raw.execute("SELECT key, value FROM journal_info"))["schema_version"] == "1"
        raw.close()


def test_the_head_revision_constant_is_the_newest_migration():
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD_REVISION


def test_a_journal_at_an_older_revision_is_migrated_by_alembic(tmp_path, monkeypatch):
    path = tmp_path / "journal.sqlite3"
    open_journal_engine(path).dispose()
    ran: list[str] = []
    monkeypatch.setattr(migrate, "HEAD_REVISION", "0002")  # as if a migration were added
    monkeypatch.setattr(migrate, "alembic_upgrade", lambda engine: ran.append("alembic"))
    open_journal_engine(path).dispose()
    assert ran == ["alembic"]
    monkeypatch.setattr(migrate, "HEAD_REVISION", "0001")
    open_journal_engine(path).dispose()
    assert ran == ["alembic"]  # at head: Alembic is not even imported


async def test_a_corrupt_file_is_set_aside_and_replaced_with_a_warning(tmp_path, caplog):
    path = tmp_path / "journal.sqlite3"
    path.write_bytes(b"this is not a sqlite database, just bytes" * 100)
    (tmp_path / "journal.sqlite3-wal").write_bytes(b"junk")
    clock = Clock()
    with caplog.at_level(logging.WARNING, logger="flusso.adapters.journal.sqlite"):
        journal = SqliteJournal.open(path, RUN, clock=clock)
    try:
        assert await journal.events() == []
        await journal.record(ev(E.GENERATION_CREATED, generation=1))
    finally:
        await journal.close()
    aside = tmp_path / "journal.sqlite3.corrupt-20260603T102030.123Z"
    assert aside.read_bytes().startswith(b"this is not a sqlite database")
    # The old write-ahead log never leaks into the new journal.
    wal = tmp_path / "journal.sqlite3-wal"
    assert not wal.exists() or b"junk" not in wal.read_bytes()
    assert any("unreadable" in r.getMessage() and str(aside) in r.getMessage()
               for r in caplog.records)


def test_a_journal_from_a_newer_flusso_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "journal.sqlite3"
    open_journal_engine(path).dispose()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE alembic_version SET version_num = '9999'")
    raw.close()
    with pytest.raises(JournalError, match="schema this flusso does not know"):
        open_journal_engine(path)
    assert path.exists()
    assert not list(tmp_path.glob("*.corrupt-*"))


def test_a_journal_in_a_missing_directory_is_a_journal_error(tmp_path):
    with pytest.raises(JournalError, match="cannot open lifecycle journal") as caught:
        open_journal_engine(tmp_path / "nope" / "journal.sqlite3")
    assert "FLUSSO_JOURNAL" in (caught.value.hint or "")


def test_the_migrations_ship_inside_the_package():
    location = migrations_dir()
    assert (location / "env.py").is_file()
    assert (location / "versions" / "0001_initial.py").is_file()
