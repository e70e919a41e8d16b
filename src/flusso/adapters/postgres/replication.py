"""One START_REPLICATION session: the COPY BOTH stream, keepalives and standby status updates.

All replication I/O runs on one reader task (libpq is not thread-safe). That task keeps
reading keepalives and sending standby status updates even while the consumer is slow:
when the ready buffer is full it stops reading WAL, never feedback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg import pq

from flusso.adapters.postgres import pgoutput
from flusso.adapters.postgres.connection import connect_replication, translate
from flusso.adapters.postgres.dispatch import MessageDispatcher, malformed
from flusso.adapters.postgres.quoting import quote_ident, quote_literal
from flusso.adapters.postgres.watermark import AckWatermark
from flusso.app.ports import Change, SourceError, SourceUnavailableError

logger = logging.getLogger(__name__)

_DRAIN_TIMEOUT = 5.0


class ReplicationStream:
    """One START_REPLICATION session; the reader task owns every libpq call on it.

    `watermark` is the position reported to the server: it is read afresh at every
    status update, so a confirmation reaches the slot with the next one.
    """

    def __init__(
        self,
        *,
        params: dict[str, Any],
        slot: str,
        publication: str,
        status_interval: float,
        capacity: int,
        watermark: AckWatermark,
        dispatcher: MessageDispatcher,
    ) -> None:
        self._params = params
        self._slot = slot
        self._publication = publication
        self._interval = status_interval
        self._capacity = capacity
        self.watermark = watermark
        self._dispatcher = dispatcher
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready: deque[Change] = deque()
        self._ready_event = asyncio.Event()
        self._wake_future: asyncio.Future[None] | None = None
        self._stopping = False
        self._finished = False
        self._failure: BaseException | None = None
        self._last_status = 0.0
        self.statuses_sent = 0

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        self._conn = await connect_replication(self._params)
        pg = self._conn.pgconn
        publications = quote_literal(quote_ident(self._publication))
        command = (
            f"START_REPLICATION SLOT {self._slot} LOGICAL 0/0 "
            f"(proto_version '1', publication_names {publications})"
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
        """Stop taking changes, send the final position, end COPY and close.

        The final status update spares the next run from replaying what this one
        already confirmed.
        """
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

    async def _handle(self, buf: bytes) -> None:
        """One CopyData message: a keepalive is answered here, WAL goes to the dispatcher."""
        try:
            frame = pgoutput.decode_copy_data(buf)
        except pgoutput.DecodeError as exc:
            raise malformed(self._slot, exc) from exc
        if isinstance(frame, pgoutput.PrimaryKeepalive):
            self.watermark.observe_wal_end(frame.wal_end)
            if frame.reply_requested:
                await self._send_status()
            return
        released = await self._dispatcher.feed(frame.payload)
        if released:
            self._ready.extend(released)
            self._ready_event.set()

    # -- libpq I/O ---------------------------------------------------------

    async def _send_status(self) -> None:
        assert self._conn is not None
        pg = self._conn.pgconn
        # Read the watermark at each send, so an idle server still learns the latest
        # confirmed position within one status interval.
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
