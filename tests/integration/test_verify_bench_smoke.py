"""A tiny run of the verify bench (bench/verify_bench.py), so it cannot rot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench import verify_bench

pytestmark = pytest.mark.bench


def test_a_tiny_verify_bench_run_measures_every_leg(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "verify.json"
    verify_bench.main(["--scale", "0.01", "--sample", "50", "--out", str(out)])

    assert "vs backfill" in capsys.readouterr().out
    (result,) = json.loads(out.read_text())["results"]
    assert result["backfill"]["documents"] == 200
    verify = result["verify"]
    assert verify["exit"] == 0
    assert verify["report"] == {"index": "users", "checked": 200, "missing": 0, "stale": 0,
                                "orphaned": 0, "repaired": 0}
    # The time after start-up is read from verify's own log lines.
    assert 0 < verify["after_startup_seconds"] < verify["seconds"]
    assert verify["peak_rss_mb"] > 0
    repair = result["repair"]
    assert repair["counts_match"] and repair["exit"] == 0, repair
    assert result["after_repair"]["exit"] == 0
    assert result["after_repair"]["report"]["checked"] == 200
    assert result["sample"]["report"]["checked"] == 50
