"""Engine spec §10 cases that test_engine_acceptance.py proves only below the HTTP surface.

Case 50 asks for `/readyz` answers; the acceptance file asserts `LiveStatus.is_ready()`.
Here the public app is served over the engine's own `LiveStatus` while the real stack
(PostgresChangeCapture + PostgresDocumentBuilder + SyncPipeline) backfills, goes live
and stops on a fatal error.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from engine_harness import Engine, sql
from fixtures_store import STORE_SQL, store_deployment

from flusso.app.ports import SinkWriteError
from flusso.entrypoints.http.public import create_public_app
from flusso.entrypoints.metrics import PrometheusObserver


async def test_e50_readyz_is_200_backfilling_and_live_then_503_after_a_fatal_error(pg_url):
    await sql(pg_url, STORE_SQL)
    eng = Engine(pg_url, store_deployment())
    app = create_public_app(eng.status, PrometheusObserver(eng.status.in_flight, ["orders", "users"]))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://flusso") as client:

        async def answers() -> tuple[int, dict[str, Any]]:
            ready = await client.get("/readyz")
            status = (await client.get("/status")).json()
            return ready.status_code, status

        during: list[tuple[int, dict[str, Any]]] = []

        async def probe_once(count: int) -> None:
            if not during:
                during.append(await answers())

        await eng.start(wait_live=False)
        assert eng.capture is not None
        eng.capture.on_snapshot_change = probe_once
        try:
            await eng.wait_live()
            await eng.settle()
            ((code, status),) = during
            assert code == 200
            assert status["phase"] == "backfilling"
            assert status["indexes"] == {"orders": "backfilling", "users": "backfilling"}

            code, status = await answers()
            assert code == 200
            assert status["phase"] == "live" and status["changes_in_flight"] == 0
            assert status["indexes"] == {"orders": "seeded", "users": "seeded"}

            eng.sink.fail_next(1)
            await sql(pg_url, "UPDATE users SET bio='fatal' WHERE id=1")
            assert eng.task is not None
            await asyncio.wait({eng.task}, timeout=15)
            assert isinstance(eng.task.exception(), SinkWriteError)
            # Asked before the harness ends the run: the pipeline's own error report
            # is what turns readiness off.
            code, status = await answers()
            assert code == 503
            assert status["phase"] == "stopped" and status["errors"] == 1
        finally:
            await eng.close()
