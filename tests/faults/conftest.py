"""The fault suite's report: every scenario's result, printed as one table at the end.

Workers (pytest-xdist) append results to one JSON-lines file; the controlling process
prints them. `FLUSSO_FAULTS_REPORT` names the file (default `.faults/results.jsonl`).
"""

from __future__ import annotations

import json

import pytest
from tests.faults.report import report_path


def pytest_sessionstart(session: pytest.Session) -> None:
    if hasattr(session.config, "workerinput"):
        return
    path = report_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} s"


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    path = report_path()
    if not path.exists():
        return
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        return
    rows.sort(key=lambda row: row["order"])
    write = terminalreporter.write_line
    terminalreporter.section("faults")
    header = f"{'fault':<34} {'detection':>10} {'recovery':>10} {'documents':>10} {'wrong':>6} {'exits':>6}  result"
    write(header)
    write("-" * len(header))
    for row in rows:
        verdict = "pass" if row["passed"] else "FAIL: " + "; ".join(row["failures"])
        write(
            f"{row['fault']:<34} {_seconds(row['detection_s']):>10} "
            f"{_seconds(row['recovery_s']):>10} {row['compared']:>10} {row['wrong']:>6} "
            f"{row['exits']:>6}  {verdict}"
        )
        for note in row["notes"]:
            write(f"{'':<36}{note}")
