"""Postgres column types users have: each maps to a field type, or `check` says what to use instead."""

from __future__ import annotations

import pytest
from tests.integration.engine_harness import plain, sql
from tests.integration.test_postgres_shapes import one_index

from flusso.adapters.postgres.builder import PostgresDocumentBuilder
from flusso.adapters.postgres.check_catalog import open_postgres_catalog
from flusso.app.services.check import validate_deployment
from flusso.domain.documents.change import DocumentId, Upsert

pytestmark = pytest.mark.asyncio

TYPES_SQL = """
CREATE EXTENSION IF NOT EXISTS citext;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN email_address AS citext CHECK (VALUE LIKE '%@%');
CREATE DOMAIN positive AS integer CHECK (VALUE > 0);
CREATE TABLE things (
  id int PRIMARY KEY,
  m mood NOT NULL,
  moods mood[] NOT NULL,
  email email_address NOT NULL,
  qty positive NOT NULL,
  handle citext NOT NULL,
  doc jsonb NOT NULL,
  raw json NOT NULL,
  price numeric(10,2) NOT NULL,
  ratio numeric NOT NULL,
  token uuid NOT NULL,
  blob bytea NOT NULL,
  tags text[] NOT NULL,
  scores int[] NOT NULL,
  a int NOT NULL,
  b int NOT NULL,
  total int GENERATED ALWAYS AS (a * b) STORED,
  wait interval NOT NULL,
  ip inet NOT NULL,
  spot point NOT NULL,
  span int4range NOT NULL
);
INSERT INTO things (id, m, moods, email, qty, handle, doc, raw, price, ratio, token, blob, tags,
                    scores, a, b, wait, ip, spot, span)
VALUES (1, 'ok', '{happy,sad}', 'Ada@X.io', 3, 'MiXeD', '{"k": [1, 2]}', '{"r": true}', 19.90,
        1.5, '6f1c1f8e-2b3a-4c5d-8e9f-0a1b2c3d4e5f', '\\x0102ff', '{red,blue}', '{1,2}', 6, 7,
        '1 day 02:00:00', '10.0.0.1', '(9.19,45.46)', '[1,5)');
"""

SUPPORTED = """
version: 1
table: things
primary_key: id
fields:
  - integer: id
    required: true
  - enum: m
    required: true
  - enum: moods
    required: true
  - keyword: email
    required: true
  - integer: qty
    required: true
  - text: handle
    required: true
  - json: doc
    required: true
  - json: raw
    required: true
  - decimal: price
    required: true
  - decimal: ratio
    required: true
  - uuid: token
    required: true
  - binary: blob
    required: true
  - keyword: tags
    required: true
  - integer: scores
    required: true
  - integer: total
    required: false
"""


async def diagnostics(url: str, schema: str, *, with_fix: bool = False) -> list[str]:
    deployment = one_index("things", schema)
    async with open_postgres_catalog(url) as catalog:
        found = await validate_deployment(deployment, catalog)
    return [
        f"{d.severity} {d.field}: {d.message}" + (f" => {d.fix}" if with_fix else "")
        for d in found
    ]


async def test_every_supported_type_passes_check_and_builds_its_document(pg_url):
    await sql(pg_url, TYPES_SQL)
    assert await diagnostics(pg_url, SUPPORTED) == []
    builder = PostgresDocumentBuilder(pg_url, one_index("things", SUPPORTED))
    try:
        [op] = await builder.build_many([DocumentId("things", (1,))])
    finally:
        await builder.close()
    assert isinstance(op, Upsert)
    assert plain(op.document) == {
        "id": 1, "m": "ok", "moods": ["happy", "sad"], "email": "Ada@X.io", "qty": 3,
        "handle": "MiXeD", "doc": {"k": [1, 2]}, "raw": {"r": True}, "price": 19.9,
        "ratio": 1.5, "token": "6f1c1f8e-2b3a-4c5d-8e9f-0a1b2c3d4e5f", "blob": b"\x01\x02\xff",
        "tags": ["red", "blue"], "scores": [1, 2], "total": 42,
    }


UNSUPPORTED = """
version: 1
table: things
primary_key: id
fields:
  - keyword: wait
    required: true
  - keyword: ip
    required: true
  - keyword: spot
    required: true
  - keyword: span
    required: true
  - keyword: qty
    required: true
  - keyword: moods
    required: true
"""


async def test_a_type_no_field_reads_gets_an_error_with_the_supported_alternative(pg_url):
    await sql(pg_url, TYPES_SQL)
    found = await diagnostics(pg_url, UNSUPPORTED, with_fix=True)
    refused = "error {}: declared type does not accept the column's database type `{}` => "
    assert found == [
        refused.format("wait", "interval")
        + "no field type reads an interval: index its length in seconds with a `double` field on "
        'a generated column (ALTER TABLE "public"."things" ADD COLUMN "wait_seconds" double '
        'precision GENERATED ALWAYS AS (extract(epoch FROM "wait")) STORED;), or a `custom` '
        "field (`postgres: [interval]`, `opensearch: keyword`) indexes its text",
        refused.format("ip", "inet")
        + "no scalar field type reads inet: a `custom` field with `postgres: [inet]` and "
        "`opensearch: ip` indexes addresses (`ip_range` for networks)",
        refused.format("spot", "point")
        + "no field type reads a point: index it as a `geo` field with `lat:` and `lon:` on two "
        'generated columns (ALTER TABLE "public"."things" ADD COLUMN "spot_lat" double precision '
        'GENERATED ALWAYS AS ("spot"[1]) STORED; ALTER TABLE "public"."things" ADD COLUMN '
        '"spot_lon" double precision GENERATED ALWAYS AS ("spot"[0]) STORED;)',
        refused.format("span", "int4range")
        + "no field type reads a int4range: index its bounds on generated columns (ALTER TABLE "
        '"public"."things" ADD COLUMN "span_lower" integer GENERATED ALWAYS AS (lower("span")) '
        'STORED; ALTER TABLE "public"."things" ADD COLUMN "span_upper" integer GENERATED ALWAYS '
        'AS (upper("span")) STORED;), or a `custom` field (`postgres: [int4range]`, '
        "`opensearch: keyword`) indexes its text",
        refused.format("qty", "integer") + "declare one of `integer`",
        refused.format("moods", "mood[]") + "declare one of `enum`",
    ]


async def test_each_suggested_generated_column_is_accepted_by_postgres(pg_url):
    """The statements in the advice run as printed (their expressions are immutable)."""
    await sql(pg_url, TYPES_SQL)
    found = await diagnostics(pg_url, UNSUPPORTED, with_fix=True)
    statements = [
        part.strip() + ";"
        for line in found
        for part in line.split("(", 1)[-1].split(";")
        if part.strip().startswith("ALTER TABLE")
    ]
    assert len(statements) == 5
    for statement in statements:
        await sql(pg_url, statement)
    columns = await sql(pg_url, "SELECT wait_seconds, spot_lat, spot_lon, span_lower, span_upper "
                                "FROM things")
    assert columns == [(93600.0, 45.46, 9.19, 1, 5)]
