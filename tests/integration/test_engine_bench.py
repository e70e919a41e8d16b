"""Smoke run of `bench.engine_bench` on a tiny dataset, so the script does not rot."""

from __future__ import annotations

import pytest
from bench.engine_bench import main


@pytest.mark.bench
def test_the_engine_bench_prints_rates_and_round_trips_per_thousand_documents(capsys):
    assert main(["--users", "300", "--live-changes", "200"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("engine bench: 300 users, 900 orders, 1,800 items")
    backfill = lines[2].split()
    live = lines[3].split()
    assert backfill[:3] == ["backfill", "300", "300"]
    assert live[:2] == ["live", "200"]
    # Batched builds: far fewer statements than documents.
    assert float(backfill[-1]) < 10 and float(live[-1]) < 100
