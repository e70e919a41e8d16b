"""Verification inside `flusso run`: on a schedule and on request, one at a time, the last result kept.

`VerifyRuns` decides when a verification starts and keeps what `/status` and the
metrics show; how one runs (which builder, rows and served indexes) is the
`RunOnce` the composition root hands in. A failed verification is recorded and
logged; it never stops live sync.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from flusso.app.services.verify import VerifyOptions, VerifyReport
from flusso.domain.errors import FlussoError

logger = logging.getLogger(__name__)

RunOnce = Callable[[Sequence[str], VerifyOptions], Awaitable[VerifyReport]]
"""Verify these indexes with these options and return the report."""

Outcome = Literal["started", "running"]


@dataclass(frozen=True)
class VerifyRequest:
    """One verification to run: which indexes (all enabled when empty) and how."""

    indexes: tuple[str, ...] = ()
    repair: bool = False
    sample: int | None = None
    reason: str = "request"


@dataclass(frozen=True)
class VerifyResult:
    """The last verification's outcome as `/status` shows it."""

    reason: str
    started_at: str
    finished_at: str
    seconds: float
    report: VerifyReport | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "reason": self.reason,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "seconds": round(self.seconds, 3),
        }
        if self.report is not None:
            data.update(
                sampled=self.report.sampled,
                repair=self.report.repair,
                drift_left=self.report.drift_left,
                **self.report.to_json(),
            )
        if self.error is not None:
            data["error"] = self.error
        return data


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class VerifyRuns:
    """Runs verifications one at a time: every `interval` seconds (when set) and on request.

    `request` never waits: it starts a verification once the daemon is ready (live), or
    answers "running" when one is already running or queued. `on_report` sees every
    finished report (the metrics); `snapshot` is the `/status` view.
    """

    def __init__(
        self,
        run_once: RunOnce,
        *,
        interval: float | None = None,
        scheduled: VerifyRequest = VerifyRequest(reason="schedule"),  # noqa: B008 - frozen
        on_report: Callable[[VerifyReport], None] | None = None,
        settle: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._run_once = run_once
        self._interval = interval
        self._scheduled = scheduled
        self._on_report = on_report
        self._settle = settle
        self._monotonic = monotonic
        self._pending: VerifyRequest | None = None
        self._wake = asyncio.Event()
        self._running: VerifyRequest | None = None
        self.last: VerifyResult | None = None

    @property
    def interval(self) -> float | None:
        return self._interval

    def request(self, request: VerifyRequest) -> Outcome:
        if self._running is not None or self._pending is not None:
            return "running"
        self._pending = request
        self._wake.set()
        return "started"

    def snapshot(self) -> dict[str, Any]:
        running = self._running or self._pending
        return {
            "running": running is not None,
            "interval_seconds": self._interval,
            "last": None if self.last is None else self.last.to_json(),
        }

    async def serve(self, ready: Callable[[], Awaitable[None]]) -> None:
        """Wait until `ready` returns, then run requested and scheduled verifications forever."""
        await ready()
        next_scheduled = (
            self._monotonic() + self._interval if self._interval is not None else None
        )
        while True:
            timeout = (
                None if next_scheduled is None else max(0.0, next_scheduled - self._monotonic())
            )
            with contextlib.suppress(TimeoutError):  # the schedule is due
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            request = self._pending
            self._pending = None
            if request is None:
                if next_scheduled is None or self._monotonic() < next_scheduled:
                    continue
                request = self._scheduled
            await self.run(request)
            if self._interval is not None and request.reason == "schedule":
                next_scheduled = self._monotonic() + self._interval

    async def run(self, request: VerifyRequest) -> VerifyResult:
        """Run one verification now and record its result."""
        self._running = request
        started, clock = _now(), self._monotonic()
        options = VerifyOptions(repair=request.repair, sample=request.sample, settle=self._settle)
        report: VerifyReport | None = None
        error: str | None = None
        logger.info(
            "verification started (%s)%s%s", request.reason,
            f", sample of {request.sample}" if request.sample else "",
            ", with repair" if request.repair else "",
        )
        try:
            report = await self._run_once(request.indexes, options)
        except FlussoError as exc:
            error = str(exc)
            logger.warning("verification failed: %s", exc)
        finally:
            self._running = None
        result = VerifyResult(
            request.reason, started, _now(), self._monotonic() - clock, report, error
        )
        self.last = result
        if report is not None:
            left = sum(d.left for d in report.drifts)
            found = sum(d.found for d in report.drifts)
            log = logger.warning if left else logger.info
            log("verification finished: %d document(s) of drift found, %d left", found, left)
            if self._on_report is not None:
                self._on_report(report)
        return result
