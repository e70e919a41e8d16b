"""The fan-out case: one author with many posts is renamed; how long until every post is rebuilt.

A `posts` index embeds its author (`belongs_to`). After flusso has seeded it and
gone live, one UPDATE renames author 1; the clock runs from that commit until
the sink has received the new name in every one of the author's posts (the null
sink counts the new name's bytes in the bulk bodies it receives).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from bench.dataset import (
    FANOUT_POSTS,
    POSTS_SCHEMA_YML,
    create_database,
    load_fanout,
    write_flusso_config,
)
from bench.flusso_runner import FlussoProcess
from bench.limit import HttpJson
from bench.procstat import ProcessTreeWatch


def run_fanout(admin_url: str, database_url: str, database: str, sink_url: str,
               workdir: Path, *, posts: int = FANOUT_POSTS, timeout: float = 300) -> dict[str, Any]:
    create_database(admin_url, database)
    load_fanout(database_url, posts)
    config = write_flusso_config(workdir / "config", index="posts", schema=POSTS_SCHEMA_YML)
    flusso = FlussoProcess(config=config, database_url=database_url, sink_url=sink_url,
                           name="flfanout", workdir=workdir)
    sink = HttpJson(sink_url)
    started = time.perf_counter()
    process = flusso.start()
    watch = ProcessTreeWatch(process.pid).start()
    try:
        flusso.wait_live(timeout)
        seeded_s = time.perf_counter() - started
        token = f"Renamed{uuid.uuid4().hex[:10]}"
        sink.call("POST", f"/_bench/watch?token={token}&count={posts}")
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("UPDATE authors SET name = %s WHERE id = 1", (token,))
            committed = time.monotonic()
        _, seen = sink.call("GET", f"/_bench/wait?token={token}&timeout={timeout}")
        usage = watch.stop()
        complete = bool(seen and seen.get("complete"))
        return {
            "posts": posts,
            "seed_seconds": round(seeded_s, 3),
            "rebuilt": seen.get("seen") if seen else 0,
            "complete": complete,
            "first_doc_seconds": round(seen["first"] - committed, 3) if seen.get("first") else None,
            "all_docs_seconds": round(seen["last"] - committed, 3) if complete else None,
            "peak_rss_mb": usage.peak_rss_mb,
            "cpu_seconds": usage.cpu_seconds,
        }
    finally:
        watch.stop()
        flusso.stop()
        sink.close()
