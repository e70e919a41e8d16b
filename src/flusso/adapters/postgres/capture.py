"""`PostgresChangeCapture`: the logical replication stream (pgoutput) behind the ChangeCapture port.

All replication I/O runs on one task (libpq is not thread-safe). That task keeps
reading keepalives and sending standby status updates even while the consumer
is slow: when the ready buffer is full it stops reading WAL, never feedback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import pq

from flusso.adapters.postgres import pgoutput
from flusso.adapters.postgres.connection import (
    connect_admin,
    connect_replication,
    parse_conninfo,
    translate,
)
from flusso.adapters.postgres.publication import Coverage, ensure_publication, quote_ident
from flusso.adapters.postgres.snapshot import primary_key, snapshot_changes
from flusso.adapters.postgres.watermark import AckWatermark
from flusso.app.ports import Change, SourceError, SourceUnavailableError
from flusso.domain.config.model import Deployment
from flusso.domain.documents.change import ChangeEvent, RowKey, TableRef
from flusso.domain.documents.keys import canonical_key_value
from flusso.domain.documents.tables import required_tables, root_keys

logger = logging.getLogger(__name__)

_SLOT_NAME = re.compile(r"^[a-z0-9_]{1,63}$")
_DRAIN_TIMEOUT = 5.0
_SLOT_RELEASE_GRACE = 2.0

LAG_SQL = (
    "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint AS lag "
    "FROM pg_replication_slots WHERE slot_name = %s"
)


class PostgresChangeCapture:
    """Changes of the tables the deployment reads, from a pgoutput replication slot."""

    def __init__(
        self,
        url: str,
        deployment: Deployment,
        *,
        slot: str = "flusso",
        publication: str = "flusso",
        manage_publication: bool | None = None,
        status_interval: float = 10.0,
        buffer_capacity: int = 4096,
    ) -> None:
        self._url = url
        self._deployment = deployment
        self.slot = slot
        self.publication = publication
        self._manage = (
            deployment.source.manage_publication
            if manage_publication is None
            else manage_publication
        )
        self._status_interval = status_interval
        self._capacity = max(1, buffer_capacity)
        self._required = frozenset(required_tables(deployment))
        self._roots = root_keys(deployment)
        self._params: dict[str, Any] | None = None
        self._admin: psycopg.AsyncConnection[Any] | None = None
        self._catalog_keys: dict[TableRef, list[tuple[str, int]] | None] = {}
        self._stream: _ReplicationStream | None = None
        self.coverage: Coverage | None = None

    # -- connections -------------------------------------------------------

    def _conninfo(self) -> dict[str, Any]:
        if self._params is None:
            self._params = parse_conninfo(self._url)
        return self._params

    async def _admin_conn(self) -> psycopg.AsyncConnection[Any]:
        if self._admin is None or self._admin.closed:
            self._admin = await connect_admin(self._conninfo())
        return self._admin

    # -- port --------------------------------------------------------------

    async def prepare(self) -> None:
        """Ensure publication coverage, then the slot (R-1)."""
        _check_slot_name(self.slot)  # before anything is created under a bad name
        conn = await self._admin_conn()
        await self._refuse_active_slot(conn)
        self.coverage = await ensure_publication(
            conn, self.publication, sorted(self._required), self._manage
        )
        await self._ensure_slot(conn)

    async def _refuse_active_slot(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Fail before any backfill when another process is streaming from the slot.

        A consumer that just disconnected may hold the slot a moment longer, so the
        slot is polled for a short grace period before giving up.
        """
        deadline = time.monotonic() + _SLOT_RELEASE_GRACE
        while True:
            try:
                row = await (
                    await conn.execute(
                        "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s",
                        (self.slot,),
                    )
                ).fetchone()
            except psycopg.Error as exc:
                raise translate(exc, f"cannot inspect replication slot '{self.slot}'") from exc
            if row is None or row[0] is None:
                return
            if time.monotonic() >= deadline:
                raise SourceError(
                    f"replication slot '{self.slot}' is active for PID {row[0]}: another "
                    "process is already streaming from it",
                    hint="a slot serves one consumer at a time: stop the other `flusso run`, "
                    "or give this deployment its own --slot / FLUSSO_SLOT "
                    "(and --publication)",
                )
            await asyncio.sleep(0.2)

    async def _ensure_slot(self, conn: psycopg.AsyncConnection[Any]) -> None:
        _check_slot_name(self.slot)
        try:
            row = await (
                await conn.execute(
                    "SELECT plugin, database, current_database() FROM pg_replication_slots "
                    "WHERE slot_name = %s",
                    (self.slot,),
                )
            ).fetchone()
            if row is None:
                await conn.execute(
                    "SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (self.slot,)
                )
                logger.info("created replication slot '%s' (pgoutput)", self.slot)
                return
        except psycopg.Error as exc:
            raise translate(exc, f"cannot create replication slot '{self.slot}'") from exc
        plugin, database, current = row
        if plugin != "pgoutput":
            raise SourceError(
                f"replication slot '{self.slot}' exists but uses plugin "
                f"'{plugin if plugin is not None else 'none (physical slot)'}', "
                "expected 'pgoutput'",
                hint=f"drop it (SELECT pg_drop_replication_slot('{self.slot}')) "
                "or choose another name with --slot",
            )
        if database != current:
            raise SourceError(
                f"replication slot '{self.slot}' belongs to database '{database}', "
                f"not '{current}'",
                hint="choose another slot name with --slot, or connect to that database",
            )

    def live(self) -> AsyncIterator[Change]:
        return self._live()

    async def _live(self) -> AsyncIterator[Change]:
        _check_slot_name(self.slot)
        stream = _ReplicationStream(
            params=self._conninfo(),
            slot=self.slot,
            publication=self.publication,
            status_interval=self._status_interval,
            capacity=self._capacity,
            key_columns=self._key_columns,
            is_read=self._required.__contains__,
        )
        self._stream = stream
        try:
            await stream.start()
            async for change in stream.changes():
                yield change
        finally:
            await stream.abort()
            if self._stream is stream:
                self._stream = None

    def snapshot(self, tables: Sequence[TableRef]) -> AsyncIterator[Change]:
        return snapshot_changes(self._conninfo(), list(tables))

    async def lag(self) -> int | None:
        conn = await self._admin_conn()
        try:
            row = await (await conn.execute(LAG_SQL, (self.slot,))).fetchone()
        except psycopg.Error as exc:
            raise translate(exc, f"cannot read the lag of slot '{self.slot}'") from exc
        if row is None or row[0] is None:
            return None
        return max(0, int(row[0]))

    async def stop(self) -> None:
        stream = self._stream
        if stream is not None:
            await stream.stop()

    async def close(self) -> None:
        stream = self._stream
        if stream is not None:
            await stream.stop()
            await stream.abort()
        if self._admin is not None:
            await self._admin.close()
            self._admin = None

    # -- keys --------------------------------------------------------------

    @property
    def confirmed_lsn(self) -> int | None:
        """The watermark of the running stream (diagnostics and tests)."""
        return self._stream.watermark.confirmed if self._stream is not None else None

    async def _key_columns(self, table: TableRef, relation: pgoutput.Relation) -> tuple[str, ...]:
        """R-8: the declared root key, else the catalog primary key, else the identity columns."""
        declared = self._roots.get(table)
        if declared:
            return (declared,)
        if table not in self._catalog_keys:
            conn = await self._admin_conn()
            try:
                self._catalog_keys[table] = await primary_key(conn, table)
            except psycopg.Error as exc:
                raise translate(exc, f"cannot read the primary key of {table}") from exc
        catalog = self._catalog_keys[table]
        if catalog:
            return tuple(name for name, _ in catalog)
        return tuple(c.name for c in relation.columns if c.is_identity)


def _check_slot_name(slot: str) -> None:
    if not _SLOT_NAME.match(slot):
        raise SourceError(
            f"invalid replication slot name '{slot}'",
            hint="slot names use lowercase letters, digits and underscores (at most 63)",
        )


# ---------------------------------------------------------------------------
# WAL messages → change events (pure)
# ---------------------------------------------------------------------------


class UnkeyableChangeError(SourceError):
    def __init__(self, table: TableRef) -> None:
        super().__init__(
            f"relation {table} carries no key columns; "
            "set REPLICA IDENTITY so changes can be addressed"
        )


def _cell_text(cell: pgoutput.Cell) -> str | None:
    if isinstance(cell, bytes):
        return cell.decode("utf-8", "replace")
    if isinstance(cell, str):
        return cell
    return None


def tuple_values(
    relation: pgoutput.Relation, cells: Sequence[pgoutput.Cell], *, identity_only: bool = False
) -> dict[str, Any]:
    """Column → canonical value for the cells a WAL tuple carried (R-9).

    Unchanged TOAST cells are omitted; in a `'K'` tuple only identity columns are
    real (the others are sent as null).
    """
    if len(cells) != len(relation.columns):
        raise SourceError(
            f"malformed replication data: relation {relation.namespace}.{relation.name} has "
            f"{len(relation.columns)} column(s) but a tuple carried {len(cells)}"
        )
    values: dict[str, Any] = {}
    for column, cell in zip(relation.columns, cells, strict=True):
        if cell is pgoutput.UNCHANGED or (identity_only and not column.is_identity):
            continue
        values[column.name] = canonical_key_value(column.type_oid, _cell_text(cell))
    return values


def project_key(
    table: TableRef,
    key_columns: Sequence[str],
    values: Mapping[str, Any],
    fallback: Mapping[str, Any] | None = None,
) -> RowKey:
    """R-8: the key columns' values, taking a missing cell from `fallback` (the old tuple)."""
    if not key_columns:
        raise UnkeyableChangeError(table)
    key: list[tuple[str, Any]] = []
    for name in key_columns:
        value = values.get(name)
        if value is None and fallback is not None:
            value = fallback.get(name)
        if value is None:
            raise UnkeyableChangeError(table)
        key.append((name, value))
    return tuple(key)


def plan_events(
    table: TableRef,
    relation: pgoutput.Relation,
    key_columns: Sequence[str],
    message: pgoutput.Insert | pgoutput.Update | pgoutput.Delete,
) -> list[ChangeEvent]:
    """The thin events one DML message turns into (engine spec §3.8)."""
    if not any(c.is_identity for c in relation.columns) and (
        not isinstance(message, pgoutput.Insert) or not key_columns
    ):
        raise UnkeyableChangeError(table)
    if isinstance(message, pgoutput.Insert):
        new = tuple_values(relation, message.new)
        return [ChangeEvent("upsert", table, project_key(table, key_columns, new), new=new)]
    if isinstance(message, pgoutput.Delete):
        old = tuple_values(relation, message.old, identity_only=message.old_kind == "K")
        return [ChangeEvent("delete", table, project_key(table, key_columns, old), old=old)]
    new = tuple_values(relation, message.new)
    old: dict[str, Any] = {}
    if message.old is not None:
        old = tuple_values(relation, message.old, identity_only=message.old_kind == "K")
    new_key = project_key(table, key_columns, new, old)
    events: list[ChangeEvent] = []
    if old:
        try:
            old_key: RowKey | None = project_key(table, key_columns, old)
        except UnkeyableChangeError:
            old_key = None  # an identity index other than the key: the old key is not carried
        if old_key is not None and old_key != new_key:
            events.append(ChangeEvent("delete", table, old_key, old=old))
    events.append(ChangeEvent("upsert", table, new_key, old=old, new=new))
    return events


# ---------------------------------------------------------------------------
# The replication stream
# ---------------------------------------------------------------------------


class _End:
    """Marks the end of the ready buffer."""


class _ReplicationStream:
    """One START_REPLICATION session; the reader task owns every libpq call on it."""

    def __init__(
        self,
        *,
        params: dict[str, Any],
        slot: str,
        publication: str,
        status_interval: float,
        capacity: int,
        key_columns: Callable[[TableRef, pgoutput.Relation], Awaitable[tuple[str, ...]]],
        is_read: Callable[[TableRef], bool],
    ) -> None:
        self._params = params
        self._slot = slot
        self._publication = publication
        self._interval = status_interval
        self._capacity = capacity
        self._key_columns_of = key_columns
        self._is_read = is_read
        self.watermark = AckWatermark()
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready: deque[Change] = deque()
        self._ready_event = asyncio.Event()
        self._wake_future: asyncio.Future[None] | None = None
        self._stopping = False
        self._finished = False
        self._failure: BaseException | None = None
        self._relations: dict[int, pgoutput.Relation] = {}
        self._keys: dict[int, tuple[str, ...]] = {}
        self._txn: list[ChangeEvent] | None = None
        self._xid: int | None = None  # the open transaction's, from its Begin message
        self._last_status = 0.0
        self.statuses_sent = 0

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        self._conn = await connect_replication(self._params)
        pg = self._conn.pgconn
        publications = quote_ident(self._publication).replace("'", "''")
        command = (
            f"START_REPLICATION SLOT {self._slot} LOGICAL 0/0 "
            f"(proto_version '1', publication_names '{publications}')"
        )
        try:
            pg.send_query(command.encode())
            await self._flush()
            while True:
                pg.consume_input()
                if not pg.is_busy():
                    break
                await self._wait(readable=True, timeout=None)
        except psycopg.Error as exc:
            raise translate(exc, f"cannot start replication from slot '{self._slot}'") from exc
        result = pg.get_result()
        if result is None or result.status != pq.ExecStatus.COPY_BOTH:
            detail = _text(result.error_message if result is not None else pg.error_message)
            raise SourceError(
                f"cannot start replication from slot '{self._slot}': {detail}",
                hint="a slot serves one consumer at a time; is another flusso instance running?"
                if "is active for PID" in detail
                else None,
            )
        logger.info(
            "streaming changes from slot '%s' (publication \"%s\")", self._slot, self._publication
        )
        await self._send_status()
        self._task = asyncio.create_task(self._run(), name=f"flusso-replication-{self._slot}")

    async def changes(self) -> AsyncIterator[Change]:
        while True:
            if self._stopping:
                return
            if self._ready:
                change = self._ready.popleft()
                if len(self._ready) < self._capacity:
                    self._wake()
                yield change
                continue
            if self._failure is not None:
                raise self._failure
            if self._finished:
                return
            self._ready_event.clear()
            await self._ready_event.wait()

    async def stop(self) -> None:
        """R-2: stop taking changes, send the final position, end COPY and close."""
        self._stopping = True
        self._ready_event.set()
        self._wake()
        task = self._task
        if task is not None and not task.done():
            with contextlib.suppress(Exception):
                await task

    async def abort(self) -> None:
        task = self._task
        if task is not None and not task.done() and self._stopping:
            # A graceful stop is finishing on the reader task; let it send the final status.
            with contextlib.suppress(Exception):
                await asyncio.wait([task], timeout=_DRAIN_TIMEOUT + 1.0)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._conn is not None and not self._conn.closed:
            await self._conn.close()

    # -- reader task -------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._pump()
            await self._finish()
        except asyncio.CancelledError:
            raise
        except SourceError as exc:
            self._failure = exc
        except psycopg.Error as exc:
            self._failure = translate(exc, f"replication from slot '{self._slot}' failed")
            self._failure.__cause__ = exc
        except Exception as exc:  # a bug must still end the consumer, not hang it
            self._failure = SourceError(f"replication from slot '{self._slot}' failed: {exc}")
            self._failure.__cause__ = exc
        finally:
            self._finished = True
            self._ready_event.set()

    def _paused(self) -> bool:
        return len(self._ready) >= self._capacity

    async def _pump(self) -> None:
        assert self._conn is not None
        pg = self._conn.pgconn
        while not self._stopping:
            while not self._paused() and not self._stopping:
                n, buf = pg.get_copy_data(1)
                if n > 0:
                    await self._handle(bytes(buf))
                elif n == 0:
                    break
                elif n == -1:
                    raise self._server_ended()
                else:
                    raise SourceUnavailableError(
                        f"replication stream from slot '{self._slot}' failed: "
                        f"{_text(pg.error_message)}"
                    )
            if self._stopping:
                break
            due = self._last_status + self._interval - time.monotonic()
            if due <= 0:
                await self._send_status()
                continue
            await self._wait(readable=not self._paused(), timeout=due)
            if not self._paused():
                pg.consume_input()

    def _server_ended(self) -> SourceError:
        assert self._conn is not None
        pg = self._conn.pgconn
        result = pg.get_result()
        detail = _text(result.error_message) if result is not None else ""
        return SourceError(
            f"the server ended replication from slot '{self._slot}'"
            + (f": {detail}" if detail else "")
        )

    async def _finish(self) -> None:
        """Final status update, CopyDone, drain until the server ends COPY, close."""
        assert self._conn is not None
        pg = self._conn.pgconn
        await self._send_status()
        pg.put_copy_end()
        await self._flush()
        deadline = time.monotonic() + _DRAIN_TIMEOUT
        while time.monotonic() < deadline:
            n, _ = pg.get_copy_data(1)
            if n == -1:
                break
            if n == -2:
                break
            if n == 0:
                await self._wait(readable=True, timeout=deadline - time.monotonic())
                pg.consume_input()
        while time.monotonic() < deadline:
            pg.consume_input()
            if pg.is_busy():
                await self._wait(readable=True, timeout=deadline - time.monotonic())
                continue
            if pg.get_result() is None:
                break
        logger.info(
            "stopped streaming from slot '%s' at %s",
            self._slot,
            pgoutput.format_lsn(self.watermark.confirmed),
        )
        await self._conn.close()

    # -- messages ----------------------------------------------------------

    async def _handle(self, buf: bytes) -> None:
        try:
            frame = pgoutput.decode_copy_data(buf)
            if isinstance(frame, pgoutput.PrimaryKeepalive):
                self.watermark.observe_wal_end(frame.wal_end)
                if frame.reply_requested:
                    await self._send_status()
                return
            message = pgoutput.decode_pgoutput(frame.payload)
        except pgoutput.DecodeError as exc:
            raise SourceError(
                f"malformed replication data from slot '{self._slot}': {exc}"
            ) from exc
        await self._apply(message)

    async def _apply(self, message: pgoutput.PgOutputMessage) -> None:
        if isinstance(message, pgoutput.Begin):
            self._txn = []
            self._xid = message.xid
            self.watermark.begin()
        elif isinstance(message, pgoutput.Commit):
            events = self._txn or []
            self._txn = None
            acks = self.watermark.commit(message.end_lsn, len(events))
            xid = self._xid
            self._ready.extend(Change(e, a, xid) for e, a in zip(events, acks, strict=True))
            if events:
                self._ready_event.set()
        elif isinstance(message, pgoutput.Relation):
            self._relations[message.oid] = message
            self._keys.pop(message.oid, None)
        elif isinstance(message, pgoutput.Insert | pgoutput.Update | pgoutput.Delete):
            await self._apply_dml(message)
        elif isinstance(message, pgoutput.Truncate):
            for oid in message.relation_oids:
                relation = self._relations.get(oid)
                if relation is None:
                    continue
                table = TableRef(relation.namespace, relation.name)
                if self._is_read(table):
                    logger.warning(
                        "TRUNCATE of %s was not applied: documents built from it may be "
                        "stale until their index is reindexed",
                        table,
                    )
        # Type, Origin, logical messages and unknown tags carry nothing to index.

    async def _apply_dml(
        self, message: pgoutput.Insert | pgoutput.Update | pgoutput.Delete
    ) -> None:
        relation = self._relations.get(message.relation_oid)
        if relation is None:
            raise SourceError(
                f"malformed replication data from slot '{self._slot}': "
                f"change for unknown relation oid {message.relation_oid}"
            )
        table = TableRef(relation.namespace, relation.name)
        if not self._is_read(table):
            # no index reads it, so its changes (keyed or not) address nothing.
            logger.debug("ignoring a change of %s: no index reads it", table)
            return
        if self._txn is None:
            raise SourceError(
                f"malformed replication data from slot '{self._slot}': "
                f"change of {table} outside a transaction"
            )
        key_columns = self._keys.get(relation.oid)
        if key_columns is None:
            key_columns = await self._key_columns_of(table, relation)
            self._keys[relation.oid] = key_columns
        self._txn.extend(plan_events(table, relation, key_columns, message))

    # -- libpq I/O ---------------------------------------------------------

    async def _send_status(self) -> None:
        assert self._conn is not None
        pg = self._conn.pgconn
        # read the watermark at each send.
        lsn = self.watermark.confirmed
        payload = pgoutput.encode_standby_status(lsn, pgoutput.pg_clock(time.time()))
        if pg.put_copy_data(payload) != 1:
            raise SourceUnavailableError(
                f"cannot send feedback on slot '{self._slot}': {_text(pg.error_message)}"
            )
        await self._flush()
        self._last_status = time.monotonic()
        self.statuses_sent += 1
        logger.debug("slot '%s': confirmed %s", self._slot, pgoutput.format_lsn(lsn))

    async def _flush(self) -> None:
        assert self._conn is not None
        pg = self._conn.pgconn
        while pg.flush() == 1:
            await self._wait(readable=False, writable=True, timeout=1.0)

    def _wake(self) -> None:
        future = self._wake_future
        if future is not None and not future.done():
            future.set_result(None)

    async def _wait(
        self, *, readable: bool, timeout: float | None, writable: bool = False
    ) -> None:
        """Until the socket is ready, `_wake` is called, or `timeout` passes."""
        assert self._conn is not None
        loop = asyncio.get_running_loop()
        fd = self._conn.pgconn.socket
        future: asyncio.Future[None] = loop.create_future()
        self._wake_future = future
        if readable:
            loop.add_reader(fd, self._wake)
        if writable:
            loop.add_writer(fd, self._wake)
        try:
            await asyncio.wait([future], timeout=timeout)
        finally:
            if readable:
                loop.remove_reader(fd)
            if writable:
                loop.remove_writer(fd)
            self._wake_future = None


def _text(message: bytes | str | None) -> str:
    if message is None:
        return ""
    if isinstance(message, bytes):
        return message.decode("utf-8", "replace").strip()
    return message.strip()
