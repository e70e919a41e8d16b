"""Loads the demo store (tables and deterministic rows) into a database."""

from __future__ import annotations

from importlib.resources import files

import psycopg


def store_sql(scale: int = 1) -> str:
    """The store's DDL and rows; `scale` multiplies every row count (1 → 100 users)."""
    if scale < 1:
        raise ValueError("scale must be at least 1")
    text = files("devstack").joinpath("store.sql").read_text()
    return text.replace(":scale", str(int(scale)))


def load_store(url: str, scale: int = 1) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(store_sql(scale).encode())
