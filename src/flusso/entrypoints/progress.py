"""Backfill progress: rows done per index against the planner's row estimate, rate and ETA.

`BackfillProgress` is an Observer. It counts the documents each backfill batch built
per index (one per root row) and, when the backfill starts, fetches row estimates in
the background. A `ProgressDisplay` shows it: rich bars on an interactive terminal,
periodic log lines otherwise. `/status` carries the same numbers (`StatusWithProgress`).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from flusso.app.ports import BatchStats
from flusso.domain.config.model import Deployment
from flusso.domain.documents.change import TableRef
from flusso.domain.errors import FlussoError

logger = logging.getLogger("flusso.progress")

LOG_INTERVAL_SECS = 10.0

Estimator = Callable[[Sequence[str]], Awaitable[Mapping[str, int | None]]]


@dataclass
class IndexProgress:
    """One index being seeded; times come from the progress clock."""

    index: str
    started_at: float
    rows_done: int = 0
    rows_estimated: int | None = None
    seeded_at: float | None = None

    def rate(self, now: float) -> float:
        """Rows per second since the backfill started (frozen once seeded)."""
        elapsed = (self.seeded_at if self.seeded_at is not None else now) - self.started_at
        return self.rows_done / elapsed if elapsed > 0 else 0.0

    def total(self) -> int | None:
        """The bar's total: the estimate, never below what is done; exact once seeded."""
        if self.seeded_at is not None:
            return self.rows_done
        if self.rows_estimated is None:
            return None
        return max(self.rows_estimated, self.rows_done)

    def eta_seconds(self, now: float) -> float | None:
        if self.seeded_at is not None:
            return 0.0
        total, rate = self.total(), self.rate(now)
        if total is None or rate <= 0:
            return None
        return (total - self.rows_done) / rate

    def to_status(self, now: float) -> dict[str, Any]:
        eta = self.eta_seconds(now)
        return {
            "rows_done": self.rows_done,
            "rows_estimated": self.rows_estimated,
            "rows_per_second": round(self.rate(now), 1),
            "eta_seconds": None if eta is None else int(round(eta)),
            "seeded": self.seeded_at is not None,
        }


class ProgressDisplay(Protocol):
    def start(self, indexes: Sequence[IndexProgress]) -> None: ...

    def update(self, indexes: Sequence[IndexProgress], now: float) -> None: ...

    def stop(self, indexes: Sequence[IndexProgress], now: float) -> None: ...


class LogProgressDisplay:
    """For non-interactive runs: one `backfill progress` line per unseeded index every interval."""

    def __init__(self, interval: float = LOG_INTERVAL_SECS) -> None:
        self._interval = interval
        self._last: float | None = None

    def start(self, indexes: Sequence[IndexProgress]) -> None:
        self._last = min((p.started_at for p in indexes), default=None)

    def update(self, indexes: Sequence[IndexProgress], now: float) -> None:
        if self._last is not None and now - self._last < self._interval:
            return
        self._last = now
        for progress in indexes:
            if progress.seeded_at is None:
                _log_line(progress, now)

    def stop(self, indexes: Sequence[IndexProgress], now: float) -> None:
        self._last = None


def _log_line(progress: IndexProgress, now: float) -> None:
    status = progress.to_status(now)
    logger.info(
        "backfill progress",
        extra={
            "index": progress.index,
            "rows": status["rows_done"],
            "estimated": status["rows_estimated"],
            "rows_per_second": status["rows_per_second"],
            "eta_seconds": status["eta_seconds"],
        },
    )


class RichProgressDisplay:
    """For a terminal: one rich bar per index (rows done / estimate, rate, ETA) on stderr.

    stdout is never redirected: the stdout sink writes documents there.
    """

    def __init__(self, console: Console | None = None, *, auto_refresh: bool = True) -> None:
        self._console = console if console is not None else Console(stderr=True)
        self._auto_refresh = auto_refresh
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}

    def start(self, indexes: Sequence[IndexProgress]) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[eta]}"),
            console=self._console,
            auto_refresh=self._auto_refresh,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._tasks = {
            p.index: self._progress.add_task(p.index, total=p.total(), rate="", eta="")
            for p in indexes
        }
        self._progress.start()

    def update(self, indexes: Sequence[IndexProgress], now: float) -> None:
        if self._progress is None:
            return
        for progress in indexes:
            task = self._tasks.get(progress.index)
            if task is None:
                continue
            eta = progress.eta_seconds(now)
            self._progress.update(
                task,
                completed=progress.rows_done,
                total=progress.total(),
                rate=f"{progress.rate(now):,.0f} rows/s",
                eta="done" if progress.seeded_at is not None else f"ETA {_clock(eta)}",
            )
        if not self._auto_refresh:
            self._progress.refresh()

    def stop(self, indexes: Sequence[IndexProgress], now: float) -> None:
        if self._progress is None:
            return
        self.update(indexes, now)
        self._progress.stop()
        self._progress = None
        self._tasks = {}


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-:--:--"
    whole = int(round(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def choose_display(stream: TextIO | None = None) -> ProgressDisplay:
    """Rich bars when `stream` (stderr by default) is an interactive terminal, else log lines."""
    stream = sys.stderr if stream is None else stream
    if stream.isatty():
        return RichProgressDisplay(Console(file=stream))
    return LogProgressDisplay()


class BackfillProgress:
    """An Observer tracking each backfill's rows per index; read by the display and `/status`.

    `estimate` (optional) is awaited in the background when a backfill starts; until it
    answers, or if it fails, totals are unknown. Events come from the pipeline's loop,
    `snapshot()` may be read from another thread, so both share one short lock.
    """

    def __init__(
        self,
        display: ProgressDisplay | None = None,
        estimate: Estimator | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._display = display
        self._estimate = estimate
        self._clock = clock
        self._lock = threading.Lock()
        self._indexes: dict[str, IndexProgress] = {}
        self._active = False
        self._pending: asyncio.Task[None] | None = None

    # -- reads --------------------------------------------------------------------

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """index → rows_done, rows_estimated, rows_per_second, eta_seconds, seeded (sorted)."""
        with self._lock:
            now = self._clock()
            return {name: self._indexes[name].to_status(now) for name in sorted(self._indexes)}

    def progress(self, index: str) -> IndexProgress | None:
        with self._lock:
            return self._indexes.get(index)

    async def settled(self) -> None:
        """Wait for the estimate requested by the last backfill start, if any."""
        pending = self._pending
        if pending is not None:
            await asyncio.gather(pending, return_exceptions=True)

    def set_estimates(self, estimates: Mapping[str, int | None]) -> None:
        with self._lock:
            for index, rows in estimates.items():
                if index in self._indexes:
                    self._indexes[index].rows_estimated = rows
        self._refresh()

    # -- display plumbing -------------------------------------------------------------

    def _entries(self) -> list[IndexProgress]:
        return [self._indexes[name] for name in sorted(self._indexes)]

    def _refresh(self) -> None:
        if self._display is not None and self._active:
            self._display.update(self._entries(), self._clock())

    def _finish(self) -> None:
        if not self._active:
            return
        self._active = False
        if self._display is not None:
            self._display.stop(self._entries(), self._clock())

    async def _load_estimates(self, indexes: Sequence[str]) -> None:
        if self._estimate is None:
            return
        try:
            estimates = await self._estimate(indexes)
        except FlussoError as exc:
            logger.warning(
                "could not estimate backfill sizes; progress shows rows done only",
                extra={"error": str(exc)},
            )
            return
        self.set_estimates(estimates)

    # -- Observer -----------------------------------------------------------------------

    def on_backfill_started(self, indexes: Sequence[str]) -> None:
        now = self._clock()
        with self._lock:
            self._indexes = {name: IndexProgress(name, started_at=now) for name in indexes}
            self._active = True
        if self._display is not None:
            self._display.start(self._entries())
        if self._estimate is not None and indexes:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop to fetch estimates on: totals stay unknown
            self._pending = loop.create_task(self._load_estimates(list(indexes)))

    def on_batch_committed(self, stats: BatchStats) -> None:
        if not self._active:
            return
        with self._lock:
            for index, count in stats.documents_by_index.items():
                entry = self._indexes.get(index)
                if entry is not None and entry.seeded_at is None:
                    entry.rows_done += count
        self._refresh()

    def on_index_seeded(self, index: str) -> None:
        with self._lock:
            entry = self._indexes.get(index)
            if entry is not None and entry.seeded_at is None:
                entry.seeded_at = self._clock()
        self._refresh()

    def on_backfill_completed(self) -> None:
        self._finish()

    def on_live_started(self) -> None:
        self._finish()

    def on_error(self, message: str) -> None:
        self._finish()

    def on_indexes_ensured(self, count: int) -> None: ...

    def on_change_captured(self) -> None: ...

    def on_slot_lag(self, lag_bytes: int) -> None: ...

    def on_document_quarantined(self, index: str, id: str, reason: str) -> None: ...

    def on_changes_discarded(self, count: int) -> None: ...


class _Status(Protocol):
    def is_ready(self) -> bool: ...

    def snapshot(self) -> dict[str, Any]: ...


class StatusWithProgress:
    """The public surface's status view: the live status plus a `backfill` key.

    The key comes after the documented `/status` keys, and only once a backfill has
    started in this process, so a process that never backfills serves exactly the
    documented body.
    """

    def __init__(self, status: _Status, progress: BackfillProgress) -> None:
        self._status = status
        self._progress = progress

    def is_ready(self) -> bool:
        return self._status.is_ready()

    def snapshot(self) -> dict[str, Any]:
        body = self._status.snapshot()
        backfill = self._progress.snapshot()
        if backfill:
            body["backfill"] = backfill
        return body


def index_roots(deployment: Deployment) -> dict[str, TableRef]:
    """Each enabled index's root table: a backfill reads one row of it per document."""
    return {
        index.name: TableRef(index.schema.db_schema, index.schema.table)
        for index in deployment.enabled_indexes()
    }
