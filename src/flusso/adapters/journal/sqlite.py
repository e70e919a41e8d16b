"""`SqliteJournal`: the lifecycle journal in a local SQLite file.

WAL mode, `synchronous=FULL`, one `BEGIN IMMEDIATE` transaction per event. The engine
is opened (and a corrupt file set aside) by `open_journal_engine`; the journal itself
does no I/O until called.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, insert, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import SQLAlchemyError

from flusso.adapters.journal.migrate import UnknownJournalSchemaError, upgrade
from flusso.adapters.journal.tables import lifecycle_events, lifecycle_state, stored_timestamp
from flusso.app.ports import JournalError, JournalRecord, JournalRow
from flusso.domain.lifecycle import (
    INITIAL,
    EventKind,
    LifecycleEvent,
    LifecycleState,
    State,
    apply,
    event_detail,
    with_op_id,
)

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]

_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26
_HINT = "point --journal / FLUSSO_JOURNAL at a writable file in an existing directory"


def _utc_now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------------------
# Opening
# ---------------------------------------------------------------------------


def _engine(path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's `begin` below emit BEGIN itself: pysqlite's implicit
        # transactions would start them too late for a read-modify-write.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA busy_timeout=5000")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _is_corruption(exc: BaseException) -> bool:
    cause = getattr(exc, "orig", exc)
    if not isinstance(cause, sqlite3.DatabaseError):
        return False
    code = getattr(cause, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    text = str(cause)
    return "not a database" in text or "malformed" in text


def _probe(path: Path) -> None:
    """Raise when the file is not a readable SQLite database."""
    engine = _engine(path)
    try:
        with engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            verdict = [row[0] for row in conn.exec_driver_sql("PRAGMA quick_check")]
            if verdict != ["ok"]:
                raise sqlite3.DatabaseError(f"database disk image is malformed: {verdict[:3]}")
    finally:
        engine.dispose()


def _set_aside(path: Path, clock: Clock, reason: str) -> Path:
    moment = clock().astimezone(UTC)
    stamp = moment.strftime("%Y%m%dT%H%M%S.") + f"{moment.microsecond // 1000:03d}Z"
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    path.rename(aside)
    for suffix in ("-wal", "-shm"):
        sidecar = path.with_name(path.name + suffix)
        if sidecar.exists():
            sidecar.rename(aside.with_name(aside.name + suffix))
    logger.warning(
        "lifecycle journal %s is unreadable (%s); moved it to %s and starting a new one",
        path,
        reason,
        aside,
    )
    return aside


def open_journal_engine(path: str | Path, *, clock: Clock = _utc_now) -> Engine:
    """An engine on the journal file, migrated to the newest schema.

    A file SQLite cannot read is renamed `<path>.corrupt-<UTC timestamp>` (with a
    warning) and replaced by a new journal; the sink's facts rebuild the state.
    """
    path = Path(path)
    try:
        if path.exists():
            try:
                _probe(path)
            except (SQLAlchemyError, sqlite3.DatabaseError) as exc:
                if not _is_corruption(exc):
                    raise
                _set_aside(path, clock, str(getattr(exc, "orig", exc)))
        engine = _engine(path)
        try:
            upgrade(engine)
        except BaseException:
            engine.dispose()
            raise
        return engine
    except UnknownJournalSchemaError as exc:
        raise JournalError(
            f"lifecycle journal {path} has a schema this flusso does not know: {exc}",
            hint="use the flusso version that wrote it, or move the file away to start afresh",
        ) from exc
    except (SQLAlchemyError, sqlite3.Error, OSError) as exc:
        # The driver's own words, without SQLAlchemy's statement echo and help link.
        reason = getattr(exc, "orig", None) or exc
        raise JournalError(
            f"cannot open lifecycle journal {path}: {reason}", hint=_HINT
        ) from reason


# ---------------------------------------------------------------------------
# The journal
# ---------------------------------------------------------------------------


class SqliteJournal:
    """The Journal port on SQLite. Calls run in a worker thread (`asyncio.to_thread`)."""

    def __init__(
        self,
        engine: Engine,
        run_id: str | None = None,
        *,
        clock: Clock = _utc_now,
    ) -> None:
        self._engine = engine
        self.run_id = run_id or str(uuid.uuid4())
        self._clock = clock
        self._closed = False

    @classmethod
    def open(
        cls, path: str | Path, run_id: str | None = None, *, clock: Clock = _utc_now
    ) -> SqliteJournal:
        """Open (create, migrate or replace a corrupt) journal file; blocking."""
        return cls(open_journal_engine(path, clock=clock), run_id, clock=clock)

    @property
    def location(self) -> str:
        return str(self._engine.url.database)

    async def record(self, event: LifecycleEvent) -> JournalRecord:
        return await self._run(self._record, event)

    async def current(self, sink: str, hash_alias: str) -> JournalRow | None:
        return await self._run(self._current, sink, hash_alias)

    async def all_current(self) -> list[JournalRow]:
        return await self._run(self._all_current)

    async def events(
        self,
        sink: str | None = None,
        hash_alias: str | None = None,
        *,
        op_id: str | None = None,
        after_id: int = 0,
    ) -> list[JournalRecord]:
        return await self._run(self._events, sink, hash_alias, op_id, after_id)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await asyncio.to_thread(self._engine.dispose)

    # -- blocking work --------------------------------------------------------

    async def _run(self, work: Callable[..., Any], *args: Any) -> Any:
        if self._closed:
            raise JournalError("the lifecycle journal is closed")
        try:
            return await asyncio.to_thread(work, *args)
        except SQLAlchemyError as exc:
            raise JournalError(
                f"lifecycle journal {self.location} could not be read or written: {exc}",
                hint=_HINT,
            ) from exc
        except ValueError as exc:  # a row this version cannot read (an unknown state name)
            raise JournalError(
                f"lifecycle journal {self.location} holds a row flusso cannot read: {exc}",
                hint="move the journal file away; the next start rebuilds it from the sink",
            ) from exc

    def _record(self, ev: LifecycleEvent) -> JournalRecord:
        with self._engine.begin() as conn:  # BEGIN IMMEDIATE: the read below is ours
            row = conn.execute(
                select(lifecycle_state).where(
                    lifecycle_state.c.sink == ev.sink,
                    lifecycle_state.c.hash_alias == ev.hash_alias,
                )
            ).first()
            current = _lifecycle(row) if row is not None else INITIAL
            ev = with_op_id(current, ev, lambda: str(uuid.uuid4()))
            after = apply(current, ev)  # LifecycleError rolls the transaction back
            detail = _json_detail(ev)
            now = stored_timestamp(self._clock())
            values = {
                "recorded_at": now,
                "run_id": self.run_id,
                "sink": ev.sink,
                "logical": ev.logical,
                "hash_alias": ev.hash_alias,
                "event": str(ev.kind),
                "state_before": str(current.state),
                "state_after": str(after.state),
                "serving_generation": after.serving_generation,
                "target_generation": after.target_generation,
                "op_id": after.op_id,
                "detail": json.dumps(detail, sort_keys=True),
            }
            event_id = conn.execute(insert(lifecycle_events).values(**values)).inserted_primary_key[
                0
            ]
            state_values = {
                "logical": ev.logical,
                "state": str(after.state),
                "serving_generation": after.serving_generation,
                "target_generation": after.target_generation,
                "op_id": after.op_id,
                "pending_request": after.pending_request,
                "configured": after.configured,
                "last_event_id": event_id,
                "updated_at": now,
            }
            upsert = sqlite_insert(lifecycle_state).values(
                sink=ev.sink, hash_alias=ev.hash_alias, **state_values
            )
            conn.execute(
                upsert.on_conflict_do_update(
                    index_elements=["sink", "hash_alias"], set_=state_values
                )
            )
        return _record({"event_id": event_id, **values})

    def _current(self, sink: str, hash_alias: str) -> JournalRow | None:
        with self._reading() as conn:
            row = conn.execute(
                select(lifecycle_state).where(
                    lifecycle_state.c.sink == sink, lifecycle_state.c.hash_alias == hash_alias
                )
            ).first()
        return _row(row) if row is not None else None

    def _all_current(self) -> list[JournalRow]:
        with self._reading() as conn:
            rows = conn.execute(
                select(lifecycle_state).order_by(
                    lifecycle_state.c.sink, lifecycle_state.c.hash_alias
                )
            ).all()
        return [_row(r) for r in rows]

    def _events(
        self, sink: str | None, hash_alias: str | None, op_id: str | None, after_id: int
    ) -> list[JournalRecord]:
        query = select(lifecycle_events).where(lifecycle_events.c.event_id > after_id)
        if sink is not None:
            query = query.where(lifecycle_events.c.sink == sink)
        if hash_alias is not None:
            query = query.where(lifecycle_events.c.hash_alias == hash_alias)
        if op_id is not None:
            query = query.where(lifecycle_events.c.op_id == op_id)
        with self._reading() as conn:
            rows = conn.execute(query.order_by(lifecycle_events.c.event_id)).all()
        return [_record(dict(r._mapping)) for r in rows]

    def _reading(self) -> Connection:
        return self._engine.connect().execution_options(sqlite_begin="DEFERRED")


def _json_detail(ev: LifecycleEvent) -> dict[str, Any]:
    try:
        return event_detail(ev)
    except ValueError as exc:
        raise JournalError(str(exc)) from exc


def _lifecycle(row: Row[Any]) -> LifecycleState:
    m = row._mapping
    return LifecycleState(
        state=State(m["state"]),
        serving_generation=m["serving_generation"],
        target_generation=m["target_generation"],
        op_id=m["op_id"],
        pending_request=bool(m["pending_request"]),
        configured=bool(m["configured"]),
    )


def _row(row: Row[Any]) -> JournalRow:
    m = row._mapping
    return JournalRow(
        sink=m["sink"],
        logical=m["logical"],
        hash_alias=m["hash_alias"],
        lifecycle=_lifecycle(row),
        last_event_id=m["last_event_id"],
        updated_at=m["updated_at"],
    )


def _record(m: dict[str, Any]) -> JournalRecord:
    return JournalRecord(
        event_id=m["event_id"],
        recorded_at=m["recorded_at"],
        run_id=m["run_id"],
        sink=m["sink"],
        logical=m["logical"],
        hash_alias=m["hash_alias"],
        event=EventKind(m["event"]),
        state_before=State(m["state_before"]),
        state_after=State(m["state_after"]),
        serving_generation=m["serving_generation"],
        target_generation=m["target_generation"],
        op_id=m["op_id"],
        detail=json.loads(m["detail"]),
    )
