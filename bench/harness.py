"""flusso against PGSync and against the machine's limit, in one run.

    python -m bench.harness [--scale N] [--skip-pgsync] [--out bench/results/run.json]

One throwaway Postgres holds the shared dataset (bench/dataset.py); one
osmem-server and one null sink (bench/null_sink.py) receive the documents. For
each sink the harness runs flusso, the limit (bench/limit.py) and PGSync
(bench/pgsync_runner.py), each leg on a fresh slot and index, and measures
backfill, idle commit→searchable latency, live changes/s, peak RSS and CPU. A
fan-out case (bench/fanout.py) runs last on the null sink. It prints one table
and writes the same figures as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from devstack.opensearch import EmbeddedOpenSearch
from devstack.postgres import ThrowawayPostgres, free_port

from bench import dataset, pgsync_runner
from bench.fanout import run_fanout
from bench.flusso_runner import ROOT, FlussoProcess
from bench.limit import HttpJson, run_limit
from bench.procstat import ProcessTreeWatch

DATABASE = "bench"
# ThrowawayPostgres turns synchronous_commit off for speed; then a commit reaches the WAL
# (and so logical decoding) only at the WAL writer's next round, every wal_writer_delay
# (200 ms), which would put ~200 ms into every commit→searchable figure. A default
# production server commits synchronously; so does the benchmark's.
POSTGRES_SETTINGS = {"synchronous_commit": "on"}
SINKS = ("null", "osmem")


def say(text: str) -> None:
    sys.stderr.write(f"[bench] {text}\n")
    sys.stderr.flush()


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[rank]


class NullSinkProcess:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.null_sink", "--port", str(self.port)], cwd=ROOT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                HttpJson(self.url, timeout=1).call("GET", "/")
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("the null sink did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


class Probe:
    """How the harness sees a sink: document counts and 'is this token searchable yet'."""

    def __init__(self, kind: str, url: str) -> None:
        self.kind = kind
        self.url = url
        self.http = HttpJson(url)

    def count(self, index: str) -> int:
        with contextlib.suppress(OSError):
            if self.kind == "osmem":
                self.http.call("POST", f"/{index}/_refresh")
            status, reply = self.http.call("GET", f"/{index}/_count")
            if status == 200 and isinstance(reply, dict):
                return int(reply.get("count", 0))
        return 0

    def expect(self, token: str, count: int = 1) -> None:
        if self.kind == "null":
            self.http.call("POST", f"/_bench/watch?token={token}&count={count}")

    def wait_seen(self, token: str, index: str, doc_id: str, committed: float,
                  timeout: float) -> float | None:
        """Seconds from `committed` (time.monotonic) until the token is searchable."""
        if self.kind == "null":
            _, seen = self.http.call("GET", f"/_bench/wait?token={token}&timeout={timeout}")
            if isinstance(seen, dict) and seen.get("complete"):
                return float(seen["last"]) - committed
            return None
        query = {"query": {"ids": {"values": [doc_id]}}}
        deadline = committed + timeout
        while time.monotonic() < deadline:
            _, reply = self.http.call("POST", f"/{index}/_search", query)
            if token in json.dumps(reply):
                return time.monotonic() - committed
            time.sleep(0.002)
        return None

    def index_body_of(self, index: str) -> dict[str, Any] | None:
        """The mappings and analysis settings flusso created `index` with, to create the
        limit's index alike: the analysis must come along, or the mapping's analyzers are
        undefined and the sink refuses it (the limit then fell back to a dynamic mapping)."""
        status, reply = self.http.call("GET", f"/{index}")
        if status != 200 or not isinstance(reply, dict) or not reply:
            return None
        definition = next(iter(reply.values()))
        mappings = definition.get("mappings")
        if not mappings:
            return None
        body: dict[str, Any] = {"mappings": mappings}
        analysis = ((definition.get("settings") or {}).get("index") or {}).get("analysis")
        if analysis:
            body["settings"] = {"index": {"analysis": analysis}}
        return body


# -- the workloads -------------------------------------------------------------------------


def wait_count(probe: Probe, index: str, expected: int, started: float, timeout: float,
               alive: Callable[[], None]) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        alive()
        if probe.count(index) >= expected:
            return time.perf_counter() - started
        time.sleep(0.02 if probe.kind == "null" else 0.25)
    raise TimeoutError(f"{index}: fewer than {expected} documents after {timeout:.0f}s")


def latency_trials(conn: psycopg.Connection, probe: Probe, index: str, users: int,
                   trials: int, timeout: float) -> dict[str, Any]:
    """Idle commit→searchable: one small update at a time, each waited for."""
    seconds: list[float] = []
    misses = 0
    for trial in range(trials):
        user = (trial * 7919) % users + 1
        token = f"lat{uuid.uuid4().hex[:12]}"
        probe.expect(token)
        time.sleep(0.2)  # idle between trials
        conn.execute("UPDATE users SET full_name = %s WHERE id = %s", (token, user))
        committed = time.monotonic()
        took = probe.wait_seen(token, index, str(user), committed, timeout)
        if took is None:
            misses += 1
        else:
            seconds.append(took)
    return {
        "trials": trials,
        "missed": misses,
        "p50_ms": round(percentile(seconds, 0.5) * 1000, 1) if seconds else None,
        "p95_ms": round(percentile(seconds, 0.95) * 1000, 1) if seconds else None,
        "max_ms": round(max(seconds) * 1000, 1) if seconds else None,
    }


WRITERS = 4


def _apply_updates(db_url: str, size: dataset.DatasetSize, numbers: range) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        for n in numbers:
            kind = n % 3
            if kind == 0:
                conn.execute("UPDATE users SET login_count = login_count + 1 WHERE id = %s",
                             ((n * 7919) % size.users + 1,))
            elif kind == 1:
                conn.execute(
                    "UPDATE orders SET status = (ARRAY['pending','paid','shipped','delivered'])"
                    "[1 + (%s %% 4)] WHERE id = %s", (n, (n * 104729) % size.orders + 1),
                )
            else:
                conn.execute("UPDATE order_items SET quantity = quantity + 1 WHERE id = %s",
                             ((n * 15485863) % size.items + 1,))


def live_updates(conn: psycopg.Connection, db_url: str, probe: Probe, index: str,
                 size: dataset.DatasetSize, count: int, timeout: float) -> dict[str, Any]:
    """`count` one-row update transactions at full speed from `WRITERS` connections, over
    users, orders and order items, then a sentinel; changes/s runs from the first commit
    until the sentinel is searchable."""
    token = f"live{uuid.uuid4().hex[:12]}"
    probe.expect(token)
    writers = [
        threading.Thread(target=_apply_updates, args=(db_url, size, range(w, count, WRITERS)))
        for w in range(WRITERS)
    ]
    started = time.monotonic()
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    conn.execute("UPDATE users SET full_name = %s WHERE id = 1", (token,))
    committed = time.monotonic()
    writes_s = committed - started
    took = probe.wait_seen(token, index, "1", committed, timeout)
    if took is None:
        return {"transactions": count + 1, "error": f"sentinel not searchable in {timeout:.0f}s",
                "writer_tx_per_s": round((count + 1) / writes_s, 1)}
    total = writes_s + took
    return {
        "transactions": count + 1,
        "writers": WRITERS,
        "seconds": round(total, 3),
        "changes_per_s": round((count + 1) / total, 1),
        "writer_tx_per_s": round((count + 1) / writes_s, 1),
        "drain_after_writes_s": round(took, 3),
    }


class PySpy:
    """`py-spy record` attached to a pid for one phase; collapsed stacks to `out` (raw format)."""

    def __init__(self, pid: int, out: Path) -> None:
        binary = Path(sys.executable).with_name("py-spy")
        self.process = subprocess.Popen(
            [str(binary), "record", "--pid", str(pid), "--rate", "200", "--format", "raw",
             "--output", str(out), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        time.sleep(0.3)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(2)  # SIGINT: py-spy writes its output and exits
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def summarize_profile(path: Path, top: int = 12) -> dict[str, list[tuple[str, float]]]:
    """Self and inclusive shares of samples per function from py-spy's raw collapsed stacks."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1]
                  + ")" if " (" in f else f for f in stack.split(";")]
        own[frames[-1]] = own.get(frames[-1], 0) + samples
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + samples

    def ranked(table: dict[str, int]) -> list[tuple[str, float]]:
        best = sorted(table.items(), key=lambda kv: -kv[1])[:top]
        return [(name, round(100 * n / total, 1)) for name, n in best] if total else []

    return {"samples": [("total", total)], "self_pct": ranked(own),
            "inclusive_pct": ranked(inclusive)}


def measure_tool(*, start: Callable[[], subprocess.Popen[bytes]],
                 stop: Callable[[], None], ready: Callable[[float], None],
                 alive: Callable[[], None], probe: Probe, index: str,
                 size: dataset.DatasetSize, db_url: str, args: argparse.Namespace,
                 profile_to: Path | None = None,
                 backfill_began: Callable[[], float | None] | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {}
    started = time.perf_counter()
    process = start()
    watch = ProcessTreeWatch(process.pid).start()
    spy = PySpy(process.pid, profile_to / "backfill.raw") if profile_to else None
    try:
        backfill_timeout = max(300.0, size.users / 20)
        seconds = wait_count(probe, index, size.users, started, backfill_timeout, alive)
        finished_at = time.time()
        if spy is not None:
            spy.stop()
        result["backfill"] = {"documents": size.users, "seconds": round(seconds, 3),
                              "docs_per_s": round(size.users / seconds, 1)}
        began_at = backfill_began() if backfill_began else None
        if began_at is not None and finished_at > began_at:
            phase = finished_at - began_at
            result["backfill"].update({
                "startup_seconds": round(seconds - phase, 3),
                "after_startup_seconds": round(phase, 3),
                "after_startup_docs_per_s": round(size.users / phase, 1),
            })
        ready(60)
        time.sleep(0.5)
        with psycopg.connect(db_url, autocommit=True) as conn:
            result["latency"] = latency_trials(conn, probe, index, size.users,
                                               args.latency_trials, timeout=30)
            spy = PySpy(process.pid, profile_to / "live.raw") if profile_to else None
            result["live"] = live_updates(conn, db_url, probe, index, size,
                                          args.live_updates,
                                          timeout=max(120.0, args.live_updates / 10))
            if spy is not None:
                spy.stop()
    except (TimeoutError, RuntimeError, OSError, psycopg.Error) as exc:
        result["error"] = str(exc)
    finally:
        if spy is not None:
            spy.stop()
        usage = watch.stop()
        result["peak_rss_mb"] = usage.peak_rss_mb
        result["cpu_seconds"] = usage.cpu_seconds
        stop()
    return result


def run_flusso(sink: str, sink_url: str, probe: Probe, pg: ThrowawayPostgres,
               size: dataset.DatasetSize, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    config = dataset.write_flusso_config(workdir / "config", batch_size=args.batch_size)
    flusso = FlussoProcess(config=config, database_url=pg.url_for(DATABASE), sink_url=sink_url,
                           name=f"fl{sink}", workdir=workdir / f"flusso-{sink}",
                           command=args.flusso_command)
    result = measure_tool(
        start=flusso.start, stop=flusso.stop, ready=lambda t: flusso.wait_live(t),
        alive=flusso.check_alive, probe=probe, index=flusso.alias("users"), size=size,
        db_url=pg.url_for(DATABASE), args=args,
        profile_to=args.profile if args.profile and sink == "null" else None,
        backfill_began=flusso.backfill_began_at,
    )
    if "error" in result:
        result["log"] = flusso.log_tail()
    result["index"] = flusso.alias("users")
    return result


def run_pgsync(sink: str, sink_url: str, probe: Probe, pg: ThrowawayPostgres,
               size: dataset.DatasetSize, setup: pgsync_runner.Setup, workdir: Path,
               args: argparse.Namespace) -> dict[str, Any]:
    index = f"pgsync_{sink}_users"
    redis = pgsync_runner.Redis(str(setup.redis_server), workdir / f"redis-{sink}")
    run = pgsync_runner.PgSyncRun(setup, pg_port=pg.port, database=DATABASE, index=index,
                                  sink_url=sink_url, redis_port=redis.port,
                                  workdir=workdir / f"pgsync-{sink}")
    try:
        bootstrap_s = run.bootstrap()

        def alive() -> None:
            if run.process is not None and run.process.poll() is not None:
                raise RuntimeError(f"pgsync exited with {run.process.returncode}: "
                                   f"{run.log_tail()}")

        result = measure_tool(start=run.start, stop=run.stop, ready=lambda t: None, alive=alive,
                              probe=probe, index=index, size=size,
                              db_url=pg.url_for(DATABASE), args=args)
        result["bootstrap_seconds"] = round(bootstrap_s, 3)
        if "error" in result:
            result["log"] = run.log_tail()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        result = {"error": str(exc)}
    finally:
        run.stop()
        with contextlib.suppress(Exception):
            run.teardown()
        redis.stop()
    result["index"] = index
    return result


# -- the table -------------------------------------------------------------------------------

ROWS = (
    ("backfill s", ("backfill", "seconds"), "low"),
    ("backfill docs/s", ("backfill", "docs_per_s"), "high"),
    ("  after start-up", ("backfill", "after_startup_docs_per_s"), "high"),
    ("live changes/s", ("live", "changes_per_s"), "high"),
    ("latency p50 ms", ("latency", "p50_ms"), "low"),
    ("latency p95 ms", ("latency", "p95_ms"), "low"),
    ("peak RSS MB", ("peak_rss_mb",), "low"),
    ("CPU s", ("cpu_seconds",), "low"),
)


def dig(data: dict[str, Any] | None, path: tuple[str, ...]) -> float | None:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data if isinstance(data, int | float) else None


def limit_as_tool(limit: dict[str, Any] | None) -> dict[str, Any] | None:
    if not limit or limit.get("docs_per_s") is None:
        return None
    # The limit has no start-up to leave out: its clock starts at its own SQL statement.
    return {"backfill": {"seconds": limit["seconds"], "docs_per_s": limit["docs_per_s"],
                         "after_startup_docs_per_s": limit["docs_per_s"]}}


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def build_table(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for sink in results["sinks"]:
        legs = results["legs"][sink]
        limit = limit_as_tool(legs.get("limit"))
        for label, path, better in ROWS:
            f = dig(legs.get("flusso"), path)
            p = dig(legs.get("pgsync"), path)
            lim = dig(limit, path)
            rows.append({"sink": sink, "metric": label, "better": better, "flusso": f,
                         "pgsync": p, "limit": lim, "flusso/pgsync": ratio(f, p),
                         "flusso/limit": ratio(f, lim)})
    return rows


def fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"


def render_table(rows: list[dict[str, Any]]) -> str:
    head = ("sink", "metric", "flusso", "PGSync", "limit", "flusso/PGSync", "flusso/limit")
    keys = ("sink", "metric", "flusso", "pgsync", "limit", "flusso/pgsync", "flusso/limit")
    body = [[r[k] if k in ("sink", "metric") else fmt(r[k]) for k in keys] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=False)]
    lines = [" | ".join(str(h).ljust(w) for h, w in zip(head, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    for row in body:
        lines.append(" | ".join(
            str(c).ljust(w) if i < 2 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ))
    return "\n".join(lines)


def check_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    legs = results["legs"]
    null, osm = legs.get("null", {}), legs.get("osmem", {})
    f_null = null.get("flusso")
    checks: list[tuple[str, float | None, float, str]] = []
    checks.append(("backfill ≥ 60% of the limit (null sink)",
                   ratio(dig(f_null, ("backfill", "docs_per_s")),
                         (null.get("limit") or {}).get("docs_per_s")), 0.6, "ge"))
    checks.append(("backfill after start-up ≥ 60% of the limit (null sink)",
                   ratio(dig(f_null, ("backfill", "after_startup_docs_per_s")),
                         (null.get("limit") or {}).get("docs_per_s")), 0.6, "ge"))
    checks.append(("live ≥ 1,000 changes/s (null sink)",
                   dig(f_null, ("live", "changes_per_s")), 1000, "ge"))
    checks.append(("live ≥ 3× PGSync (null sink)",
                   ratio(dig(f_null, ("live", "changes_per_s")),
                         dig(null.get("pgsync"), ("live", "changes_per_s"))), 3, "ge"))
    checks.append(("latency p50 ≤ 50 ms (osmem)",
                   dig(osm.get("flusso"), ("latency", "p50_ms")), 50, "le"))
    checks.append(("latency p95 ≤ 150 ms (osmem)",
                   dig(osm.get("flusso"), ("latency", "p95_ms")), 150, "le"))
    rss = [dig(legs[s].get("flusso"), ("peak_rss_mb",)) for s in results["sinks"]]
    rss_known = [r for r in rss if r is not None]
    checks.append(("peak RSS ≤ 150 MB", max(rss_known) if rss_known else None, 150, "le"))
    checks.append(("fan-out 10,000 docs ≤ 5 s",
                   dig(results.get("fanout"), ("all_docs_seconds",)), 5, "le"))
    out = []
    for name, value, bound, way in checks:
        met = None if value is None else (value >= bound if way == "ge" else value <= bound)
        out.append({"target": name, "value": value, "met": met})
    return out


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.harness",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="dataset size: 1 = 20,000 users, 100,000 orders, 300,000 items")
    parser.add_argument("--skip-pgsync", action="store_true",
                        help="do not install or run PGSync (no venv, no redis)")
    parser.add_argument("--sinks", default=",".join(SINKS),
                        help="comma list of sinks to run: null, osmem (default both)")
    parser.add_argument("--live-updates", type=int, default=5000,
                        help="small update transactions in the live test")
    parser.add_argument("--latency-trials", type=int, default=20,
                        help="idle commit→searchable trials")
    parser.add_argument("--fanout-posts", type=int, default=dataset.FANOUT_POSTS,
                        help="posts of the renamed author in the fan-out case (0 skips it)")
    parser.add_argument("--batch-size", type=int, default=1000, help="flusso's sink batch_size")
    parser.add_argument("--profile", type=Path, default=None,
                        help="directory for py-spy profiles (raw collapsed stacks) of flusso's "
                             "backfill and live phases on the null sink; needs py-spy in the venv")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON results (default bench/results/<timestamp>.json)")
    args = parser.parse_args(argv)
    args.sinks = [s.strip() for s in args.sinks.split(",") if s.strip()]
    unknown = [s for s in args.sinks if s not in SINKS]
    if unknown:
        parser.error(f"unknown sink(s) {', '.join(unknown)}; choose from {', '.join(SINKS)}")
    args.flusso_command = None
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = (args.out or ROOT / "bench" / "results" / f"{stamp}.json").resolve()
    workdir = out.parent / f"work-{stamp}-{uuid.uuid4().hex[:6]}"
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "started_at": stamp,
        "machine": {"cpus": _cpus(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                 if k != "flusso_command"},
        "sinks": args.sinks,
        "postgres_settings": POSTGRES_SETTINGS,
        "legs": {},
        "pgsync": {},
    }
    wall = time.perf_counter()
    pg = ThrowawayPostgres(settings=POSTGRES_SETTINGS)
    osmem = EmbeddedOpenSearch()
    null: NullSinkProcess | None = None
    try:
        say("starting a throwaway Postgres and loading the dataset …")
        pg.start()
        dataset.create_database(pg.url, DATABASE)
        started = time.perf_counter()
        size = dataset.load(pg.url_for(DATABASE), args.scale)
        results["dataset"] = {**size.as_dict(), "load_seconds": round(time.perf_counter() - started, 2)}
        say(f"dataset: {size.users:,} users, {size.orders:,} orders, {size.items:,} items")

        setup: pgsync_runner.Setup | None = None
        if args.skip_pgsync:
            results["pgsync"] = {"skipped": "--skip-pgsync"}
        else:
            setup = pgsync_runner.prepare(say)
            results["pgsync"] = {"version": setup.version, "skipped": setup.reason}
            if not setup.ok:
                say(f"PGSync columns skipped: {setup.reason}")
                setup = None

        urls: dict[str, str] = {}
        if "null" in args.sinks:
            null = NullSinkProcess()
            urls["null"] = null.url
        if "osmem" in args.sinks:
            osmem.start()
            urls["osmem"] = osmem.url

        for sink in args.sinks:
            probe = Probe(sink, urls[sink])
            legs: dict[str, Any] = {}
            results["legs"][sink] = legs
            say(f"[{sink}] flusso …")
            legs["flusso"] = run_flusso(sink, urls[sink], probe, pg, size, workdir, args)
            _report_leg(sink, "flusso", legs["flusso"])
            say(f"[{sink}] limit …")
            mapping = probe.index_body_of(legs["flusso"]["index"])
            legs["limit"] = run_limit(pg.url_for(DATABASE), urls[sink], f"limit_{sink}_users",
                                      mapping)
            say(f"[{sink}] limit: {legs['limit']['docs_per_s']} docs/s "
                f"(SQL alone {legs['limit']['sql_docs_per_s']} docs/s)")
            if setup is not None:
                say(f"[{sink}] PGSync …")
                legs["pgsync"] = run_pgsync(sink, urls[sink], probe, pg, size, setup, workdir,
                                            args)
                _report_leg(sink, "pgsync", legs["pgsync"])

        if args.fanout_posts > 0:
            fan_url = urls.get("null")
            if fan_url is None:
                null = NullSinkProcess()
                fan_url = null.url
            say(f"fan-out: renaming an author of {args.fanout_posts:,} posts …")
            try:
                results["fanout"] = run_fanout(pg.url, pg.url_for("fanout"), "fanout", fan_url,
                                               workdir / "fanout", posts=args.fanout_posts)
            except (TimeoutError, RuntimeError, OSError, psycopg.Error) as exc:
                results["fanout"] = {"error": str(exc)}
            say(f"fan-out: {results['fanout']}")
    finally:
        if null is not None:
            null.stop()
        osmem.stop()
        pg.stop()

    if args.profile is not None:
        results["profiles"] = {
            phase: summarize_profile(args.profile / f"{phase}.raw")
            for phase in ("backfill", "live") if (args.profile / f"{phase}.raw").exists()
        }
    results["wall_seconds"] = round(time.perf_counter() - wall, 1)
    results["table"] = build_table(results)
    results["targets"] = check_targets(results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(render_table(results["table"]))
    print()
    for target in results["targets"]:
        mark = {True: "met", False: "NOT met", None: "not measured"}[target["met"]]
        print(f"  {target['target']}: {fmt(target['value'])} — {mark}")
    if "fanout" in results:
        print(f"  fan-out detail: {json.dumps(results['fanout'])}")
    if results["pgsync"].get("skipped"):
        print(f"  PGSync not run: {results['pgsync']['skipped']}")
    print(f"\nresults: {out}  (wall {results['wall_seconds']} s)")
    return results


def _report_leg(sink: str, tool: str, leg: dict[str, Any]) -> None:
    if "error" in leg:
        say(f"[{sink}] {tool} FAILED: {leg['error']}")
    say(f"[{sink}] {tool}: backfill {dig(leg, ('backfill', 'docs_per_s'))} docs/s, "
        f"live {dig(leg, ('live', 'changes_per_s'))} changes/s, "
        f"latency p50 {dig(leg, ('latency', 'p50_ms'))} ms, rss {leg.get('peak_rss_mb')} MB")


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
