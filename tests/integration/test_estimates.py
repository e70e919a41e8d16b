"""Row estimates for backfill progress come from `pg_class.reltuples`, without scanning."""

from __future__ import annotations

import psycopg

from flusso.adapters.postgres.estimates import IndexRowEstimator, estimate_rows
from flusso.domain.documents.change import TableRef


def setup(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute('CREATE SCHEMA "Shop"')
        conn.execute('CREATE TABLE "Shop"."Users" (id int primary key)')
        conn.execute('INSERT INTO "Shop"."Users" SELECT generate_series(1, 500)')
        conn.execute('ANALYZE "Shop"."Users"')
        conn.execute("CREATE TABLE public.fresh (id int primary key)")


async def test_an_analysed_table_reports_its_row_count_and_others_none(pg_url: str) -> None:
    setup(pg_url)
    users, fresh, missing = (
        TableRef("Shop", "Users"),
        TableRef("public", "fresh"),
        TableRef("public", "missing"),
    )
    estimates = await estimate_rows(pg_url, [users, fresh, missing])
    assert estimates == {users: 500, fresh: None, missing: None}


async def test_an_open_connection_can_be_reused(pg_url: str) -> None:
    setup(pg_url)
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        estimates = await estimate_rows(conn, [TableRef("Shop", "Users")])
        assert estimates == {TableRef("Shop", "Users"): 500}
        assert not conn.closed


async def test_the_progress_estimator_maps_indexes_to_their_root_tables(pg_url: str) -> None:
    setup(pg_url)
    estimate = IndexRowEstimator(
        lambda: pg_url,
        {"users": TableRef("Shop", "Users"), "accounts": TableRef("Shop", "Users")},
    )
    assert await estimate(["users", "accounts", "unknown"]) == {"users": 500, "accounts": 500}
