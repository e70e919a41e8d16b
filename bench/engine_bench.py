"""Engine bench: backfill docs/s and live changes/s through the real pipeline, in-process.

    .venv/bin/python -m bench.engine_bench --users 20000

Starts a ThrowawayPostgres, loads a deterministic users → orders → items dataset,
and runs PostgresChangeCapture + PostgresDocumentBuilder + SyncPipeline into a sink
that only counts. It times the backfill (snapshot → documents) and a burst of live
changes (root updates and two-hop child updates), and counts the SQL statements
the builder sends (each one a round trip) per 1,000 documents. Prints a table, exits.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from devstack.postgres import ThrowawayPostgres

from flusso.adapters.opensearch.codec import ORJSON_CODEC
from flusso.adapters.postgres.builder import PostgresDocumentBuilder
from flusso.adapters.postgres.capture import PostgresChangeCapture
from flusso.app.pipeline.engine import BACKFILL_MAX_CHANGES, SyncPipeline
from flusso.app.ports import BatchStats, FlushReport
from flusso.app.status import NullObserver
from flusso.domain.config.model import (
    Aggregate,
    ColumnSource,
    Deployment,
    Field,
    ForeignKey,
    HasMany,
    IndexConfig,
    IndexSchema,
    Join,
    OrderBy,
    SourceConfig,
)
from flusso.domain.documents.change import DocumentOp, Upsert
from flusso.domain.documents.render import render_document
from flusso.domain.types import IndexMapping

ORDERS_PER_USER = 3
ITEMS_PER_ORDER = 2

SCHEMA_SQL = """
CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, tier text NOT NULL,
                    bio text, logins int NOT NULL);
CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint NOT NULL, total numeric(10,2) NOT NULL,
                     status text NOT NULL, placed_at timestamptz NOT NULL);
CREATE TABLE order_items (id bigint PRIMARY KEY, order_id bigint NOT NULL, sku text NOT NULL,
                          qty int NOT NULL);
CREATE INDEX ON orders (user_id);
CREATE INDEX ON order_items (order_id);
"""

LOAD_SQL = """
INSERT INTO users
SELECT g, 'user' || g || '@example.com', (ARRAY['free','pro','team'])[1 + g % 3],
       CASE WHEN g % 4 = 0 THEN NULL ELSE 'bio of ' || g END, g % 97
FROM generate_series(1, {users}) g;
INSERT INTO orders
SELECT g, 1 + (g - 1) / {orders_per_user}, ((g * 37) % 10000) / 100.0,
       (ARRAY['paid','shipped','cancelled'])[1 + g % 3],
       timestamptz '2024-01-01 00:00:00Z' + (g % 1000) * interval '1 hour'
FROM generate_series(1, {users} * {orders_per_user}) g;
INSERT INTO order_items
SELECT g, 1 + (g - 1) / {items_per_order}, 'sku-' || (g % 500), 1 + g % 4
FROM generate_series(1, {users} * {orders_per_user} * {items_per_order}) g;
ANALYZE;
"""


def _column(name: str, type_: str, **extra: Any) -> Field:
    return Field(name, ColumnSource(column=name, type=type_, nullable=True, **extra))


def bench_deployment() -> Deployment:
    """One index, `users`, with orders and their items nested, and two aggregates."""
    items = Join(
        table="order_items", kind=HasMany(foreign_key="order_id"), primary_key="id",
        nullable=False, fields=(_column("sku", "keyword"), _column("qty", "integer")),
        order_by=(OrderBy("id"),),
    )
    orders = Join(
        table="orders", kind=HasMany(foreign_key="user_id"), primary_key="id", nullable=False,
        fields=(_column("id", "long"), _column("total", "decimal"), _column("status", "keyword"),
                Field("items", items)),
        order_by=(OrderBy("placed_at", "desc"),),
    )
    schema = IndexSchema(
        table="users", primary_key="id",
        fields=(
            _column("id", "long"),
            _column("email", "keyword", transforms=("lowercase",)),
            _column("tier", "keyword"),
            _column("bio", "text", default="(none)"),
            Field("orders", orders),
            Field("orderCount", Aggregate("orders", "count", ForeignKey("user_id"))),
            Field("spent", Aggregate("orders", "sum", ForeignKey("user_id"), column="total",
                                     value_type="decimal")),
        ),
    )
    return Deployment(source=SourceConfig(), indexes=(IndexConfig("users", True, schema),))


class CountingSink:
    """A Sink that keeps nothing: it renders each upsert as the OpenSearch sink would (the
    per-document JSON work stays in the figures), then counts upserts, deletes and flushes."""

    def __init__(self) -> None:
        self.upserts = 0
        self.deletes = 0
        self.flushes = 0

    async def ensure_index(self, mapping: IndexMapping) -> None:
        return None

    async def write(self, ops: Sequence[DocumentOp]) -> None:
        for op in ops:
            if isinstance(op, Upsert):
                render_document(op.document, ORJSON_CODEC)
                self.upserts += 1
            else:
                self.deletes += 1

    async def flush(self, caught_up: bool) -> FlushReport:
        self.flushes += 1
        return FlushReport()

    async def is_seeded(self, index: str) -> bool:
        return False

    async def mark_seeded(self, index: str) -> None:
        return None

    async def reindex(self, mapping: IndexMapping) -> None:
        return None

    async def close(self) -> None:
        return None


class CountingBuilder(PostgresDocumentBuilder):
    """The real builder, counting every SQL statement its queries send (one round trip each)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.statements = 0
        self.documents = 0

    async def _fetch(  # type: ignore[override]
        self, conn: psycopg.AsyncConnection, sql: str, params: Sequence[Any], what: str
    ) -> list[tuple[Any, ...]]:
        self.statements += 1
        return await PostgresDocumentBuilder._fetch(conn, sql, params, what)

    async def build_many(self, ids: Sequence[Any]) -> list[DocumentOp]:
        self.documents += len(ids)
        return await super().build_many(ids)


class Progress(NullObserver):
    def __init__(self) -> None:
        self.changes = 0
        self.live_at: float | None = None
        self.live = asyncio.Event()
        self.errors: list[str] = []

    def on_live_started(self) -> None:
        self.live_at = time.perf_counter()
        self.live.set()

    def on_batch_committed(self, stats: BatchStats) -> None:
        self.changes += stats.changes

    def on_error(self, message: str) -> None:
        self.errors.append(message)
        self.live.set()


@dataclass
class Phase:
    name: str
    seconds: float
    changes: int
    documents: int
    statements: int

    def row(self) -> list[str]:
        per_thousand = 1000 * self.statements / self.documents if self.documents else 0.0
        return [
            self.name, f"{self.changes:,}", f"{self.documents:,}", f"{self.seconds:.2f}",
            f"{self.changes / self.seconds:,.0f}", f"{self.documents / self.seconds:,.0f}",
            f"{self.statements:,}", f"{per_thousand:.2f}",
        ]


async def _wait_for(predicate: Any, timeout: float, progress: Progress) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if progress.errors:
            raise RuntimeError(f"the pipeline stopped: {progress.errors[0]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no progress within {timeout}s")
        await asyncio.sleep(0.005)


async def run_bench(url: str, *, users: int, live_changes: int, max_changes: int,
                    timeout: float) -> list[Phase]:
    deployment = bench_deployment()
    sink = CountingSink()
    progress = Progress()
    builder = CountingBuilder(url, deployment)
    capture = PostgresChangeCapture(url, deployment, slot="flusso_bench",
                                    publication="flusso_bench")
    await builder.open()
    pipeline = SyncPipeline(capture, builder, sink, progress, on_error=lambda _: "stop",
                            max_changes=max_changes)
    started = time.perf_counter()
    task = asyncio.create_task(pipeline.run())
    try:
        await asyncio.wait_for(progress.live.wait(), timeout)
        if progress.errors or progress.live_at is None:
            raise RuntimeError(f"the pipeline stopped: {progress.errors}")
        backfill = Phase("backfill", progress.live_at - started, progress.changes,
                         builder.documents, builder.statements)
        if sink.upserts != users:
            raise RuntimeError(f"backfill wrote {sink.upserts} documents, expected {users}")

        # Live: half root updates, half two-hop child updates (item → order → user).
        roots = live_changes // 2
        children = live_changes - roots
        base_changes, base_docs = progress.changes, builder.documents
        base_statements = builder.statements
        began = time.perf_counter()
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute("UPDATE users SET logins = logins + 1 WHERE id <= %s", (roots,))
            await conn.execute(
                "UPDATE order_items SET qty = qty + 1 WHERE id <= %s", (children,))
        await _wait_for(lambda: progress.changes - base_changes >= live_changes, timeout,
                        progress)
        live = Phase("live", time.perf_counter() - began, progress.changes - base_changes,
                     builder.documents - base_docs, builder.statements - base_statements)
        return [backfill, live]
    finally:
        await pipeline.stop(graceful=True)
        await asyncio.gather(task, return_exceptions=True)
        await capture.close()
        await builder.close()


def print_table(phases: Sequence[Phase], header: str) -> None:
    columns = ["phase", "changes", "documents", "seconds", "changes/s", "docs/s",
               "SQL round trips", "per 1,000 docs"]
    rows = [columns, *(p.row() for p in phases)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
    print(header)
    for n, row in enumerate(rows):
        print("  ".join(cell.rjust(w) if n and i else cell.ljust(w)
                        for i, (cell, w) in enumerate(zip(row, widths, strict=True))))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.engine_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20_000, help="root rows (default 20000)")
    parser.add_argument("--live-changes", type=int, default=10_000,
                        help="live changes to replay (default 10000)")
    parser.add_argument("--max-changes", type=int, default=256,
                        help="pipeline batch size in changes (default 256)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per phase")
    args = parser.parse_args(argv)
    users = max(1, args.users)
    live_changes = max(2, min(args.live_changes, 2 * users))
    with ThrowawayPostgres() as server:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench")
        url = server.url_for("bench")
        loaded = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SCHEMA_SQL.encode())
            conn.execute(LOAD_SQL.format(users=users, orders_per_user=ORDERS_PER_USER,
                                         items_per_order=ITEMS_PER_ORDER).encode())
        load_seconds = time.perf_counter() - loaded
        phases = asyncio.run(run_bench(url, users=users, live_changes=live_changes,
                                       max_changes=args.max_changes, timeout=args.timeout))
    orders = users * ORDERS_PER_USER
    print_table(phases, (
        f"engine bench: {users:,} users, {orders:,} orders, {orders * ITEMS_PER_ORDER:,} items "
        f"(loaded in {load_seconds:.1f}s); batches of {args.max_changes} live changes "
        f"and {BACKFILL_MAX_CHANGES:,} snapshot changes; "
        "in-process pipeline into a counting sink"
    ))
    return 0


if __name__ == "__main__":
    sys.exit(main())
