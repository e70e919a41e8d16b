"""The faults: each injects one failure into a running flusso under a live write workload,
watches the surfaces while it lasts, heals the cause (or does nothing, when flusso must heal
by itself), then compares every document with the database.

A scenario returns a `FaultResult`; the test asserts it passed and the session prints
every result as one table (see conftest.py).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from tests.faults.stack import FaultStack, Sample, is_unready, state_of

RECOVERY_TIMEOUT = 150.0


@dataclass
class FaultResult:
    fault: str
    detection_s: float | None = None
    recovery_s: float | None = None
    compared: int = 0
    wrong: int = 0
    exits: int = 0
    allowed_exits: int = 0
    checks: dict[str, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return (
            self.recovery_s is not None
            and self.wrong == 0
            and self.exits <= self.allowed_exits
            and all(self.checks.values())
        )

    def failures(self) -> list[str]:
        out = [name for name, ok in self.checks.items() if not ok]
        if self.recovery_s is None or self.wrong:
            out.append(f"index differs from the database ({self.wrong} of {self.compared})")
        if self.exits > self.allowed_exits:
            out.append(f"{self.exits} process exit(s)")
        return out

    def as_row(self) -> dict[str, Any]:
        return {
            "fault": self.fault,
            "detection_s": self.detection_s,
            "recovery_s": self.recovery_s,
            "compared": self.compared,
            "wrong": self.wrong,
            "exits": self.exits,
            "passed": self.passed,
            "failures": self.failures(),
            "notes": self.notes,
        }


Scenario = Callable[[FaultStack], FaultResult]


@dataclass(frozen=True)
class Fault:
    name: str
    run: Scenario
    quick: bool = False  # part of the default test suite
    stack: dict[str, Any] = field(default_factory=dict)  # FaultStack keyword arguments


# ---------------------------------------------------------------------------
# Shared steps
# ---------------------------------------------------------------------------


def _live_with_workload(stack: FaultStack, warmup: float = 3.0) -> None:
    assert stack.flusso is not None and stack.workload is not None
    stack.flusso.start()
    stack.wait_live()
    stack.workload.start()
    time.sleep(warmup)


def _finish(stack: FaultStack, result: FaultResult, healed_at: float, since: float) -> FaultResult:
    """Quiesce the workload, wait for the index to equal the database, fill the result."""
    assert stack.workload is not None and stack.flusso is not None
    with stack.workload.paused():
        took, comparison = stack.converge(RECOVERY_TIMEOUT)
        if took is not None:
            result.recovery_s = round(time.monotonic() - healed_at, 1)
    result.compared = comparison.compared
    result.wrong = comparison.wrong if comparison.error is None else comparison.compared or 1
    if not comparison.equal:
        result.notes.append(comparison.describe())
    result.exits = len(stack.flusso.unexpected_exits(since))
    if result.exits:
        codes = sorted({e.code for e in stack.flusso.unexpected_exits(since)})
        result.notes.append(f"exit codes {codes}")
    result.notes.append(
        f"workload committed {stack.workload.committed}, failed {stack.workload.failed}"
    )
    return result


def _detect(stack: FaultStack, result: FaultResult, injected: float, until: float,
            *, names: tuple[str, ...] = ()) -> None:
    """Detection: the first `/readyz` 503 after the injection; the outage checks."""
    assert stack.watcher is not None
    outage = stack.watcher.between(injected, until)
    first = next((s for s in outage if is_unready(s)), None)
    result.detection_s = None if first is None else round(first.at - injected, 1)
    result.checks["/readyz 503 during the outage"] = first is not None
    named = [s for s in outage if _names_cause(s, names)]
    result.checks[f"/status state names {'/'.join(names) or 'the cause'}"] = bool(named)
    if named:
        result.notes.append(f"status: {_cause(named[-1])}")
    elif outage:
        last = next((s for s in reversed(outage) if s.status), None)
        if last is not None and last.status is not None:
            shown = {k: last.status.get(k) for k in ("phase", "state", "last_error")}
            result.notes.append(f"status during the outage: {shown}")


def _cause(sample: Sample) -> str:
    status = sample.status or {}
    return str({k: status.get(k) for k in ("state", "component", "reason")})


def _names_cause(sample: Sample, names: tuple[str, ...]) -> bool:
    state = state_of(sample)
    if state in (None, "live"):
        return False
    text = str(sample.status).lower()
    return all(name.lower() in text for name in names)


def _wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


# ---------------------------------------------------------------------------
# flusso killed
# ---------------------------------------------------------------------------


def kill9_during_backfill(stack: FaultStack) -> FaultResult:
    assert stack.flusso is not None and stack.workload is not None
    result = FaultResult("kill -9 during backfill")
    stack.workload.start()
    stack.flusso.start()
    since = time.monotonic()

    def backfilling() -> bool:
        status = stack.flusso.status() if stack.flusso else None
        return bool(status and status.get("phase") == "backfilling")

    _wait_until(backfilling, 120, 0.05)
    time.sleep(1.0)  # a batch or two into the snapshot
    result.checks["killed while backfilling"] = backfilling()
    stack.flusso.kill9()
    time.sleep(2)
    healed = time.monotonic()
    stack.flusso.start()
    return _finish(stack, result, healed, since)


def kill9_during_live(stack: FaultStack) -> FaultResult:
    assert stack.flusso is not None
    result = FaultResult("kill -9 during live sync")
    _live_with_workload(stack)
    since = time.monotonic()
    stack.flusso.kill9()
    time.sleep(2)
    healed = time.monotonic()
    stack.flusso.start()
    return _finish(stack, result, healed, since)


# ---------------------------------------------------------------------------
# Postgres restarted
# ---------------------------------------------------------------------------


def _pg_ctl(stack: FaultStack, *args: str) -> None:
    pg = stack.postgres
    done = pg._run("pg_ctl", "-D", str(pg.data_dir), "-l", str(pg.data_dir / "server.log"),
                   "-w", "-t", "60", *args)
    if done.returncode != 0:
        raise RuntimeError(f"pg_ctl {' '.join(args)} failed: {done.stderr or done.stdout}")


def _postgres_restart(mode: str) -> Scenario:
    def scenario(stack: FaultStack) -> FaultResult:
        result = FaultResult(f"Postgres restart -m {mode}")
        _live_with_workload(stack)
        since = injected = time.monotonic()
        _pg_ctl(stack, "-m", mode, "stop")
        time.sleep(8)
        _pg_ctl(stack, "start")
        healed = time.monotonic()
        time.sleep(1)
        _detect(stack, result, injected, healed + 0.5, names=("postgres",))
        return _finish(stack, result, healed, since)

    return scenario


# ---------------------------------------------------------------------------
# The sink
# ---------------------------------------------------------------------------


def sink_stopped(stack: FaultStack) -> FaultResult:
    assert stack.proxy is not None
    result = FaultResult("sink stopped 30 s")
    _live_with_workload(stack)
    since = injected = time.monotonic()
    stack.proxy.down()
    time.sleep(30)
    stack.proxy.up()
    healed = time.monotonic()
    _detect(stack, result, injected, healed, names=("sink",))
    return _finish(stack, result, healed, since)


def sink_restarted_empty(stack: FaultStack) -> FaultResult:
    assert stack.proxy is not None
    result = FaultResult("sink restarted empty")
    _live_with_workload(stack)
    since = injected = time.monotonic()
    stack.proxy.down()
    stack.osmem.stop()
    stack.osmem.start()
    stack.proxy.retarget(int(stack.osmem.url.rsplit(":", 1)[1]))
    time.sleep(3)
    stack.proxy.up()
    healed = time.monotonic()
    # flusso must notice the empty cluster by itself: watch for it a while.
    time.sleep(40)
    _detect(stack, result, injected, time.monotonic(), names=("sink",))
    return _finish(stack, result, healed, since)


def sink_stall(stack: FaultStack) -> FaultResult:
    process = stack.osmem.process
    assert process is not None
    result = FaultResult("sink stall 30 s")
    _live_with_workload(stack)
    since = injected = time.monotonic()
    os.kill(process.pid, signal.SIGSTOP)
    try:
        time.sleep(30)
    finally:
        os.kill(process.pid, signal.SIGCONT)
    healed = time.monotonic()
    _detect(stack, result, injected, healed, names=("sink",))
    return _finish(stack, result, healed, since)


def index_deleted(stack: FaultStack) -> FaultResult:
    result = FaultResult("index deleted by hand")
    _live_with_workload(stack)
    since = injected = time.monotonic()
    holders = httpx.get(f"{stack.sink_url}/_alias/{stack.alias('users')}", timeout=10).json()
    for generation in holders:
        httpx.delete(f"{stack.sink_url}/{generation}", timeout=10).raise_for_status()
    result.notes.append(f"deleted {', '.join(holders)}")
    time.sleep(45)
    _detect(stack, result, injected, time.monotonic(), names=("users",))
    return _finish(stack, result, injected, since)


# ---------------------------------------------------------------------------
# The replication slot
# ---------------------------------------------------------------------------


def slot_dropped(stack: FaultStack) -> FaultResult:
    assert stack.flusso is not None
    result = FaultResult("slot dropped while stopped")
    _live_with_workload(stack)
    since = time.monotonic()
    stack.flusso.stop()
    time.sleep(5)  # changes made while flusso is down
    stack.sql("SELECT pg_drop_replication_slot(%s)", (stack.slot,))
    time.sleep(2)
    healed = time.monotonic()
    stack.flusso.start()
    finished = _finish(stack, result, healed, since)
    _slot_logged(stack, finished)
    return finished


def slot_invalidated(stack: FaultStack) -> FaultResult:
    assert stack.flusso is not None
    result = FaultResult("slot invalidated while stopped")
    _live_with_workload(stack)
    since = time.monotonic()
    stack.flusso.stop()
    stack.sql("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'")
    stack.sql("SELECT pg_reload_conf()")

    def lost() -> bool:
        stack.sql("CREATE TABLE IF NOT EXISTS wal_filler (x text)")
        stack.sql("INSERT INTO wal_filler SELECT repeat('x', 1000) FROM generate_series(1, 2000)")
        stack.sql("SELECT pg_switch_wal()")
        stack.sql("CHECKPOINT")
        rows = stack.sql(
            "SELECT wal_status FROM pg_replication_slots WHERE slot_name = %s", (stack.slot,)
        )
        return bool(rows) and rows[0][0] == "lost"

    result.checks["slot reported wal_status = lost"] = _wait_until(lost, 60, 0.1)
    stack.sql("ALTER SYSTEM RESET max_slot_wal_keep_size")
    stack.sql("SELECT pg_reload_conf()")
    stack.sql("DROP TABLE IF EXISTS wal_filler")
    healed = time.monotonic()
    stack.flusso.start()
    finished = _finish(stack, result, healed, since)
    _slot_logged(stack, finished)
    return finished


def _slot_logged(stack: FaultStack, result: FaultResult) -> None:
    assert stack.flusso is not None
    lines = [
        line for line in stack.flusso.log_text().splitlines()
        if stack.slot in line and "WARNING" in line.upper() and "slot" in line.lower()
    ]
    result.checks["a warning names the slot and why"] = bool(lines)
    if lines:
        result.notes.append(lines[0][-200:])


# ---------------------------------------------------------------------------
# TRUNCATE
# ---------------------------------------------------------------------------


def _truncate(table: str) -> Scenario:
    def scenario(stack: FaultStack) -> FaultResult:
        result = FaultResult(f"TRUNCATE {table}")
        _live_with_workload(stack)
        since = injected = time.monotonic()
        with stack.workload.paused():  # type: ignore[union-attr]
            stack.sql(f"TRUNCATE {table}")
        time.sleep(5)
        return _finish(stack, result, injected, since)

    return scenario


# ---------------------------------------------------------------------------
# DDL that breaks a schema
# ---------------------------------------------------------------------------


def _ddl(label: str, table: str, column: str, break_sql: str, restore_sql: str) -> Scenario:
    def scenario(stack: FaultStack) -> FaultResult:
        result = FaultResult(f"column {label}")
        _live_with_workload(stack)
        since = injected = time.monotonic()
        stack.sql(break_sql)
        time.sleep(15)
        stack.sql(restore_sql)
        healed = time.monotonic()
        _detect(stack, result, injected, healed, names=(table, column))
        return _finish(stack, result, healed, since)

    return scenario


# ---------------------------------------------------------------------------
# Bad data
# ---------------------------------------------------------------------------

BAD_USER = 7


def bad_row_stop(stack: FaultStack) -> FaultResult:
    result = FaultResult("bad row, on_error = stop")
    _live_with_workload(stack)
    since = injected = time.monotonic()
    stack.sql("UPDATE users SET last_lat = 95 WHERE id = %s", (BAD_USER,))
    time.sleep(12)
    stack.sql("UPDATE users SET last_lat = 45 WHERE id = %s", (BAD_USER,))
    healed = time.monotonic()
    _detect(stack, result, injected, healed, names=("users", str(BAD_USER)))
    return _finish(stack, result, healed, since)


def bad_row_skip(stack: FaultStack) -> FaultResult:
    assert stack.flusso is not None
    result = FaultResult("bad row, on_error = skip")
    _live_with_workload(stack)
    since = injected = time.monotonic()
    stack.sql("UPDATE users SET last_lat = 95, full_name = 'Bad Row' WHERE id = %s", (BAD_USER,))
    time.sleep(8)
    served = _served(stack, "users", str(BAD_USER))
    result.checks["the old version is not served"] = served is None
    if served is not None:
        result.notes.append(f"served users/{BAD_USER}: fullName={served.get('fullName')!r}")
    try:
        reply = stack.flusso.private_get("/errors")
        listed = reply.json() if reply.status_code == 200 else []
    except (httpx.HTTPError, ValueError):
        listed = []
    entry = [e for e in listed if isinstance(e, dict) and str(e.get("id")) == str(BAD_USER)]
    result.checks["GET /errors lists the dead letter"] = bool(entry)
    stack.sql("UPDATE users SET last_lat = 45 WHERE id = %s", (BAD_USER,))
    healed = time.monotonic()
    finished = _finish(stack, result, healed, since)
    try:
        reply = stack.flusso.private_get("/errors")
        cleared = reply.status_code == 200 and not [
            e for e in reply.json() if str(e.get("id")) == str(BAD_USER)
        ]
    except (httpx.HTTPError, ValueError):
        cleared = False
    finished.checks["the dead letter clears once the row is fixed"] = cleared
    del injected
    return finished


def _served(stack: FaultStack, index: str, key: str) -> dict[str, Any] | None:
    reply = httpx.get(f"{stack.sink_url}/{stack.alias(index)}/_doc/{key}", timeout=10)
    if reply.status_code != 200:
        return None
    body = reply.json()
    return body.get("_source") if body.get("found") else None


# ---------------------------------------------------------------------------
# The catalogue
# ---------------------------------------------------------------------------

FAULTS: tuple[Fault, ...] = (
    Fault("kill9_backfill", kill9_during_backfill, stack={"scale": 3}),
    Fault("kill9_live", kill9_during_live, quick=True),
    Fault("pg_restart_fast", _postgres_restart("fast")),
    Fault("pg_restart_immediate", _postgres_restart("immediate")),
    Fault("sink_stopped", sink_stopped),
    Fault("sink_restarted_empty", sink_restarted_empty),
    Fault("sink_stall", sink_stall),
    Fault("index_deleted", index_deleted),
    Fault("slot_dropped", slot_dropped),
    Fault("slot_invalidated", slot_invalidated),
    Fault("truncate_joined", _truncate("order_items")),
    Fault("truncate_root", _truncate("orders")),
    Fault("column_dropped", _ddl(
        "dropped", "profiles", "bio",
        "ALTER TABLE profiles DROP COLUMN bio",
        "ALTER TABLE profiles ADD COLUMN bio text")),
    Fault("column_renamed", _ddl(
        "renamed", "addresses", "city",
        "ALTER TABLE addresses RENAME COLUMN city TO town",
        "ALTER TABLE addresses RENAME COLUMN town TO city")),
    Fault("column_retyped", _ddl(
        "retyped", "reviews", "rating",
        "ALTER TABLE reviews ALTER COLUMN rating TYPE text",
        "ALTER TABLE reviews ALTER COLUMN rating TYPE smallint USING rating::smallint")),
    Fault("bad_row_stop", bad_row_stop),
    Fault("bad_row_skip", bad_row_skip, stack={"on_error": {"users": "skip"}}),
)

