"""Abrupt stops of the real engine: cancel without drain in the middle of a stream, restart,
and the sink ends equal to the database; the slot never confirms past an unflushed change.

A sampler polls the server's `confirmed_flush_lsn` the whole time and compares it
with the changes the pipeline has been handed but not yet confirmed (it confirms
them only after their flush): the server must never reach any of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator

import psycopg
import pytest
from engine_harness import Engine, TrackingCapture, eventually, slot_confirmed, sql
from fixtures_store import STORE_SQL, store_deployment

from flusso.adapters.postgres.pgoutput import parse_lsn

WORKLOAD_SEED = 7


class SlotSampler:
    """Checks, every few ms, that the slot is behind every delivered-but-unconfirmed change."""

    def __init__(self, eng: Engine) -> None:
        self.eng = eng
        self.samples = 0
        self.violations: list[str] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SlotSampler:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        async with await psycopg.AsyncConnection.connect(self.eng.url, autocommit=True) as conn:
            while True:
                # Read the server first, then the pending set: confirming is one-way,
                # so a change still unconfirmed afterwards was unconfirmed when the
                # server reported its value (reading in the other order races a
                # confirmation and its status update).
                row = await (await conn.execute(
                    "SELECT confirmed_flush_lsn::text FROM pg_replication_slots "
                    "WHERE slot_name = %s", (self.eng.slot,))).fetchone()
                capture = self.eng.capture
                lowest = capture.unconfirmed_min_lsn() if capture is not None else None
                self.samples += 1
                if row and row[0] and lowest is not None and parse_lsn(row[0]) >= lowest:
                    self.violations.append(f"slot at {row[0]} passed unflushed {lowest:X}")
                await asyncio.sleep(0.01)


async def write_workload(url: str, rng: random.Random, count: int, *, start_id: int) -> None:
    """`count` small transactions over the store fixture: orders in, out, moved; items; users."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for n in range(count):
            order = start_id + n
            user = rng.randint(1, 4)
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO orders VALUES (%s, %s, %s, 'paid', now())",
                    (order, user, rng.randint(100, 9999) / 100))
                await conn.execute(
                    "INSERT INTO order_items VALUES (%s, %s, 'sku', %s)",
                    (order, order - rng.randint(0, min(n, 5)), rng.randint(1, 4)))
                choice = rng.random()
                if choice < 0.3:
                    await conn.execute("UPDATE orders SET user_id = %s WHERE id = %s",
                                       (rng.randint(1, 4), order - rng.randint(0, min(n, 10))))
                elif choice < 0.45:
                    await conn.execute("DELETE FROM orders WHERE id = %s",
                                       (order - rng.randint(1, max(1, min(n, 10))),))
                elif choice < 0.6:
                    await conn.execute("UPDATE users SET bio = %s WHERE id = %s",
                                       (f"bio{n}", rng.randint(1, 4)))
            if n % 10 == 0:
                await asyncio.sleep(0.005)


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[str]:
    await sql(pg_url, STORE_SQL)
    await sql(pg_url, "ALTER TABLE orders REPLICA IDENTITY FULL; "
                      "ALTER TABLE order_items REPLICA IDENTITY FULL")
    yield pg_url


def abandoned(capture: TrackingCapture) -> list[tuple[int, object]]:
    return [(t.end_lsn, t.change.event.key) for t in capture.delivered if not t.confirmed]


async def test_an_abrupt_stop_mid_stream_loses_nothing_and_never_confirms_ahead(store):
    eng = await Engine(store, store_deployment(), max_changes=16).start()

    async def slow_flush(pending: object) -> None:
        await asyncio.sleep(0.02)  # a backlog builds up, so the stop lands mid-stream

    eng.sink.before_flush = slow_flush
    rng = random.Random(WORKLOAD_SEED)
    try:
        async with SlotSampler(eng) as sampler:
            writer = asyncio.create_task(write_workload(store, rng, 150, start_id=1000))
            first = eng.capture
            assert first is not None
            await eventually(lambda: len(first.delivered) > 60 and abandoned(first) != [],
                             timeout=20, what="a backlog of delivered, unflushed changes")
            await eng.crash()
            lost = abandoned(first)
            assert lost, "the stop should have abandoned unconfirmed changes"
            confirmed = await slot_confirmed(store, eng.slot)
            assert confirmed is not None and confirmed < min(lsn for lsn, _ in lost)

            await eng.start()
            await writer
            await write_workload(store, rng, 30, start_id=2000)
            await eng.assert_converged()
            second = eng.capture
            assert second is not None
            redelivered = {(t.end_lsn, t.change.event.key) for t in second.delivered}
            assert set(lost) <= redelivered
        assert sampler.samples > 20 and sampler.violations == []
    finally:
        await eng.close()


async def test_an_abrupt_stop_during_a_flush_redelivers_that_batch(store):
    eng = await Engine(store, store_deployment()).start()
    gate = asyncio.Event()
    entered = asyncio.Event()

    async def hold(pending: object) -> None:
        entered.set()
        await gate.wait()

    try:
        async with SlotSampler(eng) as sampler:
            eng.sink.before_flush = hold
            await sql(store, "BEGIN; UPDATE users SET bio='crash' WHERE id=1; "
                             "INSERT INTO order_items VALUES (500, 12, 'sku-z', 1); COMMIT;")
            await asyncio.wait_for(entered.wait(), 10)
            first = eng.capture
            assert first is not None
            await eng.crash()
            lost = abandoned(first)
            assert len(lost) == 2
            assert eng.sink.documents("users")["1"]["bio"] == "(none)"
            confirmed = await slot_confirmed(store, eng.slot)
            assert confirmed is not None and confirmed < lost[0][0]

            eng.sink.before_flush = None
            await eng.start()
            await eng.assert_converged()
            assert eng.sink.documents("users")["1"]["bio"] == "crash"
            redelivered = {(t.end_lsn, t.change.event.key) for t in eng.capture.delivered}  # type: ignore[union-attr]
            assert set(lost) <= redelivered
        assert sampler.violations == []
    finally:
        gate.set()
        await eng.close()


async def test_an_abrupt_stop_during_backfill_seeds_again_on_restart(store):
    eng = Engine(store, store_deployment())
    gate = asyncio.Event()

    async def hold(pending: object) -> None:
        await gate.wait()

    eng.sink.before_flush = hold
    await eng.start(wait_live=False)
    try:
        await eventually(lambda: eng.status.phase == "backfilling", what="the backfill")
        await asyncio.sleep(0.05)
        await eng.crash()
        assert eng.sink.seeded_marks == [] and eng.sink.flushes == []
        eng.sink.before_flush = None
        await eng.start()
        assert eng.sink.seeded_marks == ["orders", "users"]
        await eng.assert_converged()
    finally:
        gate.set()
        await eng.close()
