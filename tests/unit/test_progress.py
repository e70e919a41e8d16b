"""Backfill progress (issue "Operating flusso", item 5): rows per index, rate, ETA, displays, /status."""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence

import pytest
from rich.console import Console

from flusso.app.ports import BatchStats, SourceError
from flusso.app.status import LiveStatus
from flusso.domain.config.model import Deployment, IndexConfig, IndexSchema, SourceConfig
from flusso.domain.documents.change import TableRef
from flusso.entrypoints.progress import (
    BackfillProgress,
    IndexProgress,
    LogProgressDisplay,
    RichProgressDisplay,
    StatusWithProgress,
    choose_display,
    index_roots,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def batch(**by_index: int) -> BatchStats:
    total = sum(by_index.values())
    return BatchStats(changes=total, documents=total, documents_by_index=by_index)


def test_rows_done_count_only_backfilled_indexes_while_the_backfill_runs() -> None:
    progress = BackfillProgress(clock=Clock())
    progress.on_batch_committed(batch(users=5))  # before any backfill: ignored
    progress.on_backfill_started(["orders", "users"])
    progress.on_batch_committed(batch(users=3, orders=2, audit=9))
    progress.on_batch_committed(batch(users=4))
    progress.on_backfill_completed()
    progress.on_batch_committed(batch(users=100))  # live traffic: not backfill rows

    snapshot = progress.snapshot()
    assert list(snapshot) == ["orders", "users"]
    assert snapshot["users"]["rows_done"] == 7
    assert snapshot["orders"]["rows_done"] == 2


async def test_estimates_arrive_in_the_background_and_give_rate_and_eta() -> None:
    clock = Clock()
    asked: list[Sequence[str]] = []

    async def estimate(indexes: Sequence[str]) -> Mapping[str, int | None]:
        asked.append(list(indexes))
        return {"users": 1000, "orders": None}

    progress = BackfillProgress(estimate=estimate, clock=clock)
    progress.on_backfill_started(["orders", "users"])
    await progress.settled()
    clock.now += 10
    progress.on_batch_committed(batch(users=250))

    assert asked == [["orders", "users"]]
    assert progress.snapshot()["users"] == {
        "rows_done": 250,
        "rows_estimated": 1000,
        "rows_per_second": 25.0,
        "eta_seconds": 30,
        "seeded": False,
    }
    assert progress.snapshot()["orders"]["rows_estimated"] is None
    assert progress.snapshot()["orders"]["eta_seconds"] is None


async def test_a_failed_estimate_warns_and_leaves_totals_unknown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def estimate(indexes: Sequence[str]) -> Mapping[str, int | None]:
        raise SourceError("cannot connect to Postgres at db:5432/app")

    progress = BackfillProgress(estimate=estimate, clock=Clock())
    with caplog.at_level(logging.WARNING, logger="flusso"):
        progress.on_backfill_started(["users"])
        await progress.settled()
    assert progress.snapshot()["users"]["rows_estimated"] is None
    [record] = caplog.records
    assert record.getMessage() == "could not estimate backfill sizes; progress shows rows done only"
    assert "db:5432/app" in record.error


def test_a_seeded_index_is_exact_and_its_rate_stops_moving() -> None:
    clock = Clock()
    progress = BackfillProgress(clock=clock)
    progress.on_backfill_started(["users"])
    progress.set_estimates({"users": 10})
    clock.now += 4
    progress.on_batch_committed(batch(users=12))  # the estimate was stale
    progress.on_index_seeded("users")
    clock.now += 100

    entry = progress.progress("users")
    assert entry is not None
    assert entry.total() == 12
    assert progress.snapshot()["users"] == {
        "rows_done": 12,
        "rows_estimated": 10,
        "rows_per_second": 3.0,
        "eta_seconds": 0,
        "seeded": True,
    }


def test_a_total_below_the_rows_done_grows_to_meet_them() -> None:
    entry = IndexProgress("users", started_at=0.0, rows_done=15, rows_estimated=10)
    assert entry.total() == 15
    assert entry.eta_seconds(5.0) == 0.0


def test_non_interactive_runs_log_a_line_per_index_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    progress = BackfillProgress(LogProgressDisplay(interval=10.0), clock=clock)
    with caplog.at_level(logging.INFO, logger="flusso"):
        progress.on_backfill_started(["orders", "users"])
        progress.set_estimates({"users": 100, "orders": 40})
        clock.now += 3
        progress.on_batch_committed(batch(users=10, orders=10))  # within the interval: silent
        clock.now += 7
        progress.on_batch_committed(batch(users=10))  # 10 s in: one line per index
        clock.now += 1
        progress.on_batch_committed(batch(users=10))  # silent again
        progress.on_index_seeded("orders")
        clock.now += 10
        progress.on_batch_committed(batch(users=10))  # orders is seeded: only users
        progress.on_backfill_completed()

    lines = [(r.getMessage(), r.index, r.rows, r.estimated) for r in caplog.records]
    assert lines == [
        ("backfill progress", "orders", 10, 40),
        ("backfill progress", "users", 20, 100),
        ("backfill progress", "users", 40, 100),
    ]
    eta_line = caplog.records[1]
    assert eta_line.rows_per_second == 2.0
    assert eta_line.eta_seconds == 40


def test_an_interactive_terminal_shows_a_bar_per_index_with_rate_and_eta() -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120, color_system=None)
    clock = Clock()
    progress = BackfillProgress(RichProgressDisplay(console, auto_refresh=False), clock=clock)
    progress.on_backfill_started(["orders", "users"])
    progress.set_estimates({"users": 100, "orders": 50})
    clock.now += 10
    progress.on_batch_committed(batch(users=50, orders=5))
    shown = screen.getvalue()
    assert "users" in shown
    assert "50/100" in shown
    assert "5/50" in shown
    assert "5 rows/s" in shown
    assert "ETA 0:00:10" in shown
    progress.on_index_seeded("users")
    progress.on_index_seeded("orders")
    progress.on_backfill_completed()
    assert "done" in screen.getvalue()


def test_the_display_is_rich_on_a_terminal_and_log_lines_otherwise() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(choose_display(io.StringIO()), LogProgressDisplay)
    assert isinstance(choose_display(Terminal()), RichProgressDisplay)


def test_status_carries_the_same_numbers_once_a_backfill_started() -> None:
    clock = Clock()
    status = LiveStatus(["users"], clock=clock)
    progress = BackfillProgress(clock=clock)
    view = StatusWithProgress(status, progress)
    assert list(view.snapshot()) == list(status.snapshot())  # exactly the documented keys

    status.on_backfill_started(["users"])
    progress.on_backfill_started(["users"])
    progress.set_estimates({"users": 8})
    clock.now += 2
    progress.on_batch_committed(batch(users=4))
    body = view.snapshot()
    assert list(body)[-1] == "backfill"
    assert body["backfill"] == progress.snapshot()
    assert body["backfill"]["users"]["eta_seconds"] == 2
    assert view.is_ready()


def test_an_error_ends_the_display_but_keeps_the_numbers() -> None:
    stops: list[int] = []

    class Recording(LogProgressDisplay):
        def stop(self, indexes: Sequence[IndexProgress], now: float) -> None:
            stops.append(sum(p.rows_done for p in indexes))

    progress = BackfillProgress(Recording(), clock=Clock())
    progress.on_backfill_started(["users"])
    progress.on_batch_committed(batch(users=3))
    progress.on_error("source went away")
    progress.on_backfill_completed()  # already stopped: not stopped twice
    assert stops == [3]
    assert progress.snapshot()["users"]["rows_done"] == 3


def test_each_enabled_index_maps_to_its_root_table() -> None:
    def index(name: str, table: str, enabled: bool = True) -> IndexConfig:
        return IndexConfig(
            name, enabled, IndexSchema(table=table, fields=(), db_schema="shop")
        )

    deployment = Deployment(
        source=SourceConfig(),
        indexes=(index("users", "users"), index("orders", "orders"), index("old", "x", False)),
    )
    assert index_roots(deployment) == {
        "users": TableRef("shop", "users"),
        "orders": TableRef("shop", "orders"),
    }
