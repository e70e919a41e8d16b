"""Verifications inside flusso run: one at a time, on request and on a schedule, results kept."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from flusso.app.services.verify import IndexDrift, VerifyOptions, VerifyReport
from flusso.app.services.verify_runs import VerifyRequest, VerifyRuns
from flusso.domain.errors import FlussoError


class Source:
    """A stand-in for one verification: records its calls, finishes when released."""

    def __init__(self, drift: int = 0) -> None:
        self.calls: list[tuple[tuple[str, ...], VerifyOptions]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.drift = drift
        self.fail: str | None = None

    async def __call__(self, indexes: Sequence[str], options: VerifyOptions) -> VerifyReport:
        self.calls.append((tuple(indexes), options))
        await self.release.wait()
        if self.fail is not None:
            raise FlussoError(self.fail)
        drift = IndexDrift("users", "primary", checked=10, stale=self.drift)
        if options.repair:
            drift.repaired = self.drift
        return VerifyReport((drift,), sampled=options.sample is not None, repair=options.repair)


async def ready() -> None:
    return None


async def settle_tasks() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_request_runs_one_verification_and_keeps_its_result() -> None:
    source = Source(drift=2)
    reports: list[VerifyReport] = []
    runs = VerifyRuns(source, on_report=reports.append, settle=0.5)
    task = asyncio.create_task(runs.serve(ready))
    try:
        assert runs.request(VerifyRequest(("users",), repair=True, sample=100)) == "started"
        await settle_tasks()
        assert source.calls == [(("users",), VerifyOptions(repair=True, sample=100, settle=0.5))]
        last = runs.snapshot()["last"]
        assert last["indexes"] == [{"index": "users", "checked": 10, "missing": 0, "stale": 2,
                                    "orphaned": 0, "repaired": 2}]
        assert (last["reason"], last["repair"], last["sampled"], last["drift_left"]) == (
            "request", True, True, False)
        assert runs.snapshot()["running"] is False
        assert len(reports) == 1
    finally:
        task.cancel()


async def test_a_request_while_one_runs_is_refused() -> None:
    source = Source()
    source.release.clear()
    runs = VerifyRuns(source)
    task = asyncio.create_task(runs.serve(ready))
    try:
        assert runs.request(VerifyRequest()) == "started"
        await settle_tasks()
        assert runs.snapshot()["running"] is True
        assert runs.request(VerifyRequest()) == "running"
        source.release.set()
        await settle_tasks()
        assert len(source.calls) == 1
        assert runs.request(VerifyRequest()) == "started"
        await settle_tasks()
        assert len(source.calls) == 2
    finally:
        task.cancel()


async def test_nothing_runs_before_the_daemon_is_ready() -> None:
    source = Source()
    live = asyncio.Event()

    async def until_live() -> None:
        await live.wait()

    runs = VerifyRuns(source)
    task = asyncio.create_task(runs.serve(until_live))
    try:
        assert runs.request(VerifyRequest()) == "started"
        await settle_tasks()
        assert source.calls == [] and runs.snapshot()["running"] is True
        live.set()
        await settle_tasks()
        assert len(source.calls) == 1
    finally:
        task.cancel()


async def test_the_schedule_runs_a_verification_every_interval() -> None:
    source = Source()
    runs = VerifyRuns(source, interval=0.05,
                      scheduled=VerifyRequest(sample=5, reason="schedule"))
    task = asyncio.create_task(runs.serve(ready))
    try:
        await asyncio.sleep(0.18)
        assert len(source.calls) >= 2
        assert all(options.sample == 5 for _, options in source.calls)
        assert runs.snapshot()["last"]["reason"] == "schedule"
        assert runs.snapshot()["interval_seconds"] == 0.05
    finally:
        task.cancel()


async def test_a_failed_verification_is_recorded_and_the_next_one_still_runs() -> None:
    source = Source()
    source.fail = "OpenSearch did not answer"
    runs = VerifyRuns(source)
    result = await runs.run(VerifyRequest())
    assert result.error == "OpenSearch did not answer"
    assert runs.snapshot()["last"]["error"] == "OpenSearch did not answer"
    assert "indexes" not in runs.snapshot()["last"]
    source.fail = None
    assert (await runs.run(VerifyRequest())).error is None
