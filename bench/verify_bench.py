"""`flusso verify` throughput and memory next to flusso's backfill, on the shared dataset.

    python -m bench.verify_bench --scale 1 --scale 5 [--out bench/results/verify.json]

Per scale: a throwaway Postgres gets the dataset (bench/dataset.py); `flusso run`
backfills the `users` index into the store sink (bench/store_sink.py, a null sink that
keeps documents and serves what verify reads) and is stopped once live; then, each as
its own process watched for peak RSS and CPU:

- **verify**: `flusso verify --json` over the whole index (every row built and compared,
  every served id checked against the rows);
- **repair**: the store sink deletes, alters and adds 1 % of the documents each, then
  `flusso verify --repair --json` (its counts are checked);
- **sample**: `flusso verify --sample 1000 --json`.

Seconds are wall-clock from process start; "after start-up" runs from the use case's
first log line (`verifying index`) to its last (`verified index`), as the harness's
backfill figure runs from `seeding indexes`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from devstack.postgres import ThrowawayPostgres, free_port

from bench import dataset
from bench.flusso_runner import ROOT, FlussoProcess
from bench.harness import DATABASE, POSTGRES_SETTINGS, Probe, say, wait_count
from bench.limit import HttpJson
from bench.procstat import ProcessTreeWatch


class StoreSinkProcess:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.store_sink", "--port", str(self.port)], cwd=ROOT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                HttpJson(self.url, timeout=1).call("GET", "/")
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("the store sink did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def _log_span(text: str) -> float | None:
    """Seconds from the first `verifying index` line to the last `verified index` line."""
    began = ended = None
    for line in text.splitlines():
        stamp = line.split(maxsplit=1)[0].rstrip("Z") if line else ""
        if "verifying index" in line or "verified index" in line:
            try:
                moment = dt.datetime.fromisoformat(stamp).replace(tzinfo=dt.UTC).timestamp()
            except ValueError:
                continue
            if "verifying index" in line and began is None:
                began = moment
            if "verified index" in line:
                ended = moment
    return ended - began if began is not None and ended is not None else None


def run_verify(flusso: FlussoProcess, config: Path, *args: str) -> dict[str, Any]:
    argv = [sys.executable, "-m", "flusso", "verify", "-c", str(config),
            "--index-prefix", flusso.prefix, "--json", *args]
    env = {**flusso.env, "FLUSSO_LOG": "info"}
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env, cwd=flusso.workdir, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    watch = ProcessTreeWatch(process.pid, interval=0.05).start()
    stdout, stderr = process.communicate(timeout=3600)
    seconds = time.perf_counter() - started
    usage = watch.stop()
    result: dict[str, Any] = {"exit": process.returncode, "seconds": round(seconds, 3),
                              "peak_rss_mb": usage.peak_rss_mb, "cpu_seconds": usage.cpu_seconds}
    try:
        (entry,) = json.loads(stdout)["indexes"]
    except (ValueError, KeyError):
        result["error"] = (stderr or stdout)[-2000:]
        return result
    result["report"] = entry
    result["docs_per_s"] = round(entry["checked"] / seconds, 1)
    span = _log_span(stderr)
    if span:
        result["after_startup_seconds"] = round(span, 3)
        result["after_startup_docs_per_s"] = round(entry["checked"] / span, 1)
    return result


def run_scale(scale: float, workdir: Path, sample: int) -> dict[str, Any]:
    result: dict[str, Any] = {"scale": scale}
    pg = ThrowawayPostgres(settings=POSTGRES_SETTINGS)
    sink: StoreSinkProcess | None = None
    flusso: FlussoProcess | None = None
    try:
        pg.start()
        dataset.create_database(pg.url, DATABASE)
        size = dataset.load(pg.url_for(DATABASE), scale)
        result["dataset"] = size.as_dict()
        say(f"scale {scale}: {size.users:,} users, {size.orders:,} orders, {size.items:,} items")
        sink = StoreSinkProcess()
        probe = Probe("null", sink.url)
        config = dataset.write_flusso_config(workdir / "config")
        flusso = FlussoProcess(config=config, database_url=pg.url_for(DATABASE),
                               sink_url=sink.url, name="flverify", workdir=workdir / "flusso")
        started = time.perf_counter()
        process = flusso.start()
        watch = ProcessTreeWatch(process.pid).start()
        seconds = wait_count(probe, flusso.alias("users"), size.users, started,
                             max(300.0, size.users / 20), flusso.check_alive)
        finished_at = time.time()
        flusso.wait_live(60)
        usage = watch.stop()
        backfill: dict[str, Any] = {
            "documents": size.users, "seconds": round(seconds, 3),
            "docs_per_s": round(size.users / seconds, 1), "peak_rss_mb": usage.peak_rss_mb,
            "cpu_seconds": usage.cpu_seconds,
        }
        began = flusso.backfill_began_at()
        if began is not None and finished_at > began:
            backfill["after_startup_docs_per_s"] = round(size.users / (finished_at - began), 1)
        result["backfill"] = backfill
        say(f"scale {scale}: backfill {backfill}")
        flusso.stop()

        result["verify"] = run_verify(flusso, config)
        say(f"scale {scale}: verify {result['verify']}")

        tamper = max(1, size.users // 100)
        _, chosen = HttpJson(sink.url).call(
            "POST", f"/_bench/tamper?index={flusso.alias('users')}&missing={tamper}"
            f"&stale={tamper}&orphaned={tamper}",
        )
        repair = run_verify(flusso, config, "--repair", "--settle", "0.5")
        report = repair.get("report", {})
        repair["expected"] = {"missing": tamper, "stale": tamper, "orphaned": tamper,
                              "repaired": 3 * tamper}
        repair["counts_match"] = all(report.get(k) == v for k, v in repair["expected"].items())
        result["repair"] = repair
        say(f"scale {scale}: repair {repair}")
        result["after_repair"] = run_verify(flusso, config)

        result["sample"] = run_verify(flusso, config, "--sample", str(sample))
        say(f"scale {scale}: sample {result['sample']}")
    finally:
        if flusso is not None:
            flusso.stop()
        if sink is not None:
            sink.stop()
        pg.stop()
    return result


def render(results: list[dict[str, Any]]) -> str:
    rows = [("scale", "leg", "documents", "seconds", "docs/s", "after start-up docs/s",
             "peak RSS MB", "CPU s", "vs backfill")]
    for one in results:
        backfill = one.get("backfill", {})
        base = backfill.get("docs_per_s")
        rows.append((str(one["scale"]), "backfill", f"{backfill.get('documents', 0):,}",
                     str(backfill.get("seconds")), str(base),
                     str(backfill.get("after_startup_docs_per_s")),
                     str(backfill.get("peak_rss_mb")), str(backfill.get("cpu_seconds")), "1.00"))
        for leg in ("verify", "repair", "sample"):
            data = one.get(leg, {})
            checked = data.get("report", {}).get("checked", 0)
            ratio = (f"{data['docs_per_s'] / base:.2f}"
                     if base and data.get("docs_per_s") else "-")
            rows.append((str(one["scale"]), leg, f"{checked:,}", str(data.get("seconds")),
                         str(data.get("docs_per_s")), str(data.get("after_startup_docs_per_s")),
                         str(data.get("peak_rss_mb")), str(data.get("cpu_seconds")), ratio))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(prog="python -m bench.verify_bench", description=__doc__)
    parser.add_argument("--scale", type=float, action="append",
                        help="dataset scale (repeatable; default 1 and 5)")
    parser.add_argument("--sample", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    scales = args.scale or [1.0, 5.0]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = (args.out or ROOT / "bench" / "results" / f"verify-{stamp}.json").resolve()
    workdir = out.parent / f"work-verify-{stamp}-{uuid.uuid4().hex[:6]}"
    results = [run_scale(scale, workdir / f"scale-{scale:g}", args.sample) for scale in scales]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"started_at": stamp, "cpus": len(os.sched_getaffinity(0)),
                               "results": results}, indent=2))
    print(render(results))
    print(f"\nresults: {out}")
    return results


if __name__ == "__main__":
    main()
