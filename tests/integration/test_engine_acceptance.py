"""Engine spec §10 acceptance cases through the real stack: PostgresChangeCapture +
PostgresDocumentBuilder + SyncPipeline into an in-memory sink, on a throwaway Postgres.

Each case starts from the seeded §10 fixture (A2) unless it says otherwise. Where
upstream differs, the port's behaviour (R-n) is asserted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator

import pytest
from engine_harness import (
    REBUILT,
    Engine,
    RecordingSink,
    eventually,
    insert_lsn,
    plain,
    scalar,
    slot_confirmed,
    sql,
)
from fixtures_store import SEEDED_DOCUMENTS, STORE_SQL, column, store_deployment
from tests.conftest import unique_name

from flusso.adapters.postgres.check_catalog import open_postgres_catalog
from flusso.app.ports import DocumentsRejectedError, SinkWriteError, SourceError
from flusso.app.services.check import require_referenced_objects
from flusso.domain.config.model import (
    Aggregate,
    Deployment,
    Field,
    ForeignKey,
    IndexConfig,
    IndexSchema,
    SoftDelete,
    SourceConfig,
)
from flusso.domain.documents.change import Upsert

REQUIRED_TABLES = '"public"."order_items", "public"."orders", "public"."orgs", "public"."tags", ' \
    '"public"."user_tags", "public"."users"'


def seeded(*keys: str) -> dict[str, object]:
    return {key: SEEDED_DOCUMENTS[key] for key in keys}


@pytest.fixture
async def store(pg_url: str) -> str:
    await sql(pg_url, STORE_SQL)
    return pg_url


@pytest.fixture
async def engine(store: str) -> AsyncIterator[Engine]:
    eng = await Engine(store, store_deployment()).start()
    try:
        yield eng
    finally:
        await eng.close()


def index(name: str, table: str, *fields, **schema) -> IndexConfig:  # type: ignore[no-untyped-def]
    return IndexConfig(name, True, IndexSchema(table=table, primary_key="id", fields=fields,
                                               **schema))


# ---------------------------------------------------------------------------
# A. Setup and backfill
# ---------------------------------------------------------------------------


async def test_a1_first_run_creates_the_publication_before_the_slot(store, caplog):
    caplog.set_level(logging.INFO, logger="flusso")
    eng = await Engine(store, store_deployment(), publication="flusso").start()
    try:
        assert eng.capture is not None and eng.capture.inner.coverage is not None
        assert eng.capture.inner.coverage.remediation == (
            f'CREATE PUBLICATION "flusso" FOR TABLE {REQUIRED_TABLES};',
        )
        tables = await sql(store, "SELECT tablename FROM pg_publication_tables "
                                  "WHERE pubname = 'flusso' ORDER BY 1")
        assert [t for (t,) in tables] == [
            "order_items", "orders", "orgs", "tags", "user_tags", "users"]
        slot = await sql(store, "SELECT plugin, temporary FROM pg_replication_slots "
                                "WHERE slot_name = %s", (eng.slot,))
        assert slot == [("pgoutput", False)]
        messages = [r.getMessage() for r in caplog.records]
        published = next(i for i, m in enumerate(messages) if 'publication "flusso": added' in m)
        slotted = next(i for i, m in enumerate(messages) if "created replication slot" in m)
        assert published < slotted
    finally:
        await eng.close()


async def test_a2_backfill_seeds_both_indexes_with_deletes_for_filtered_rows(engine):
    sink = engine.sink
    assert sink.seeded_queries == ["orders", "users"]
    assert sink.seeded_marks == ["orders", "users"]
    ops = engine.last_ops_since(0)
    await engine.check(ops, {**seeded(*SEEDED_DOCUMENTS), "users/3": None, "users/4": None})
    assert sink.flushes[-1][1] is True
    assert engine.status.snapshot()["indexes"] == {"orders": "seeded", "users": "seeded"}
    assert engine.status.phase == "live"


async def test_a3_a_restart_with_both_indexes_seeded_takes_no_snapshot(engine):
    await engine.stop()
    mark, marks = engine.mark(), list(engine.sink.seeded_marks)
    await engine.start()
    await engine.settle()
    assert engine.ops_since(mark) == []
    assert engine.sink.seeded_marks == marks
    assert engine.sink.seeded_queries[-2:] == ["orders", "users"]
    assert [event for event, _ in engine.recorder.probes].count("backfill_started") == 1
    assert engine.status.phase == "live"


async def test_a4_skip_backfill_never_asks_or_marks_seeded(store):
    eng = await Engine(store, store_deployment(), skip_backfill=True).start()
    try:
        await eng.settle()
        assert eng.sink.seeded_queries == [] and eng.sink.seeded_marks == []
        assert eng.sink.flushes == []
        assert eng.status.snapshot()["indexes"] == {"orders": "seeded", "users": "seeded"}
    finally:
        await eng.close()


async def test_a5_only_the_unseeded_index_is_backfilled(store):
    eng = await Engine(store, store_deployment(), sink=RecordingSink(seeded=("users",))).start()
    try:
        ops = eng.last_ops_since(0)
        await eng.check(ops, seeded("orders/10", "orders/11", "orders/12"))
        assert eng.sink.seeded_marks == ["orders"]
    finally:
        await eng.close()


async def test_a6_a_root_table_without_a_usable_key_stops_the_run_with_the_fix(store):
    """Deliberately stricter than upstream, which skips the table and marks its index
    seeded: that leaves an index empty for good with nothing but a log line to say why."""
    await sql(store, "CREATE TABLE nopk (id int, name text); INSERT INTO nopk VALUES (1, 'x')")
    schema = IndexSchema(table="nopk", fields=(column("id", "integer"), column("name", "text")))
    deployment = store_deployment(IndexConfig("nopk", True, schema))
    # run's preflight refuses before anything is created, naming both fixes.
    async with open_postgres_catalog(store) as catalog:
        with pytest.raises(SourceError) as refused:
            await require_referenced_objects(deployment, catalog)
    assert ("public.nopk: table public.nopk has no primary key and index nopk declares none"
            in str(refused.value))
    assert 'ALTER TABLE "public"."nopk" ADD PRIMARY KEY' in (refused.value.hint or "")
    assert 'ALTER TABLE "public"."nopk" REPLICA IDENTITY FULL;' in (refused.value.hint or "")
    # Past the preflight (a publication made by hand), the backfill stops rather than
    # marking the index seeded with no documents.
    publication = unique_name("pub")
    await sql(store, f"CREATE PUBLICATION {publication} FOR ALL TABLES")
    eng = Engine(store, deployment, publication=publication)
    await eng.start(wait_live=False)
    error = await eng.failure()
    assert isinstance(error, SourceError)
    assert "table public.nopk has no primary key and its schema declares none" in str(error)
    assert "primary_key" in (error.hint or "") and 'ALTER TABLE "public"."nopk"' in (error.hint or "")
    assert eng.sink.documents("nopk") == {}
    assert "nopk" not in eng.sink.seeded_marks


async def test_a6_a_keyless_root_with_a_declared_unique_key_is_backfilled_and_followed(store):
    await sql(store, "CREATE TABLE nopk (id int NOT NULL, name text); "
                     "CREATE UNIQUE INDEX nopk_id ON nopk (id); "
                     "ALTER TABLE nopk REPLICA IDENTITY USING INDEX nopk_id; "
                     "INSERT INTO nopk VALUES (1, 'x')")
    schema = IndexSchema(table="nopk", primary_key="id",
                         fields=(column("id", "integer"), column("name", "text", nullable=True)))
    eng = await Engine(store, store_deployment(IndexConfig("nopk", True, schema))).start()
    try:
        await eng.settle()
        assert plain(eng.sink.documents("nopk")) == {"1": {"id": 1, "name": "x"}}
        await sql(store, "UPDATE nopk SET name = 'y' WHERE id = 1; INSERT INTO nopk VALUES (2, 'z')")
        await sql(store, "DELETE FROM nopk WHERE id = 1")
        await eng.settle()
        assert plain(eng.sink.documents("nopk")) == {"2": {"id": 2, "name": "z"}}
    finally:
        await eng.close()


async def test_a7_a_row_inserted_during_the_first_snapshot_is_not_lost(store):
    eng = Engine(store, store_deployment())
    inserted = False

    async def insert_once(count: int) -> None:
        nonlocal inserted
        if not inserted:
            inserted = True
            await sql(store, "INSERT INTO users VALUES (7,'g@x.io',NULL,'active',false,NULL)")

    await eng.start(wait_live=False)
    assert eng.capture is not None
    eng.capture.on_snapshot_change = insert_once
    try:
        await eng.wait_live()
        await eng.settle()
        assert inserted
        assert eng.sink.documents("users")["7"]["email"] == "g@x.io"
        # It came through the slot: the snapshot had started before the insert.
        assert [t.change.event.key for t in eng.capture.delivered] == [(("id", 7),)]
    finally:
        await eng.close()


async def test_a8_a_slot_with_another_plugin_stops_the_start(store):
    slot = unique_name("slot")
    await scalar(store, "SELECT pg_create_logical_replication_slot(%s, 'test_decoding')", (slot,))
    eng = await Engine(store, store_deployment(), slot=slot).start(wait_live=False)
    error = await eng.failure()
    assert isinstance(error, SourceError)
    assert "uses plugin 'test_decoding', expected 'pgoutput'" in str(error)
    assert eng.sink.flushes == []
    await eng.close()


async def test_a9_an_unmanageable_publication_warns_and_the_run_continues(store, postgres_server,
                                                                          caplog):
    role = unique_name("r")
    await sql(postgres_server.url, f"CREATE ROLE {role} LOGIN REPLICATION")
    await sql(store, "CREATE PUBLICATION flusso FOR TABLE orgs, users, orders, order_items, "
                     f"user_tags; GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    url = store.replace("postgres@", f"{role}@", 1)
    caplog.set_level(logging.WARNING, logger="flusso")
    eng = await Engine(url, store_deployment(), publication="flusso").start()
    try:
        coverage = eng.capture.inner.coverage  # type: ignore[union-attr]
        assert coverage is not None
        assert "; ".join(coverage.blockers) == (
            'role does not own table public.tags; role does not own publication "flusso"')
        assert coverage.remediation == ('ALTER PUBLICATION "flusso" ADD TABLE "public"."tags";',)
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
                    and "publication" in r.getMessage()]
        assert len(warnings) == 1
        assert 'ALTER PUBLICATION "flusso" ADD TABLE "public"."tags";' in warnings[0]
        assert "role does not own table public.tags" in warnings[0]
        mark = eng.mark()
        await sql(store, "UPDATE tags SET label='crimson' WHERE id=1")
        await eng.settle()
        assert eng.ops_since(mark) == []
        assert not eng.task.done()  # type: ignore[union-attr]
    finally:
        await eng.close()
        await sql(store, f"DROP OWNED BY {role}")
        await sql(postgres_server.url, f"DROP ROLE {role}")


# ---------------------------------------------------------------------------
# B. Root rows
# ---------------------------------------------------------------------------


async def test_b10_an_inserted_user_is_upserted(engine):
    ops = await engine.apply("INSERT INTO users VALUES (5,' Eve@X.io',2,'active',false,NULL)")
    await engine.check(ops, {"users/5": {
        "id": 5, "email": "eve@x.io", "bio": "(none)", "org": {"name": "Globex"},
        "orders": [], "tags": [], "orderCount": 0, "spent": None}})


async def test_b11_an_updated_user_is_rebuilt_with_its_orders(engine):
    ops = await engine.apply("UPDATE users SET bio='new' WHERE id=1")
    await engine.check(ops, {"users/1": REBUILT, "orders/10": REBUILT, "orders/11": REBUILT})
    assert ops["users/1"].document["bio"] == "new"  # type: ignore[union-attr]
    assert plain(ops["orders/10"].document) == SEEDED_DOCUMENTS["orders/10"]  # type: ignore[union-attr]


async def test_b12_a_deleted_user_is_deleted_and_its_orders_lose_the_buyer(engine):
    ops = await engine.apply("DELETE FROM users WHERE id=2")
    await engine.check(ops, {"users/2": None, "orders/12": {**SEEDED_DOCUMENTS["orders/12"],
                                                            "buyer": None}})


async def test_b13_a_primary_key_change_deletes_the_old_document(engine):
    ops = await engine.apply("UPDATE users SET id=6 WHERE id=2")
    await engine.check(ops, {
        "users/2": None,
        "users/6": {"id": 6, "email": "bob@x.io", "bio": "hi", "org": {"name": "Globex"},
                    "orders": [], "tags": [], "orderCount": 0, "spent": None},
        "orders/12": {**SEEDED_DOCUMENTS["orders/12"], "buyer": None},
    })


async def test_b14_b15_soft_delete_set_and_cleared(engine):
    ops = await engine.apply("UPDATE users SET deleted=true WHERE id=1")
    await engine.check(ops, {"users/1": None, **seeded("orders/10", "orders/11")})
    ops = await engine.apply("UPDATE users SET deleted=false WHERE id=1")
    await engine.check(ops, seeded("users/1", "orders/10", "orders/11"))


async def test_b16_a_timestamp_soft_delete_marker(store):
    await sql(store, "CREATE TABLE soft_ts (id int PRIMARY KEY, name text, deleted_at timestamptz)")
    soft = index("soft_ts", "soft_ts", column("id", "integer"), column("name", "text"),
                 soft_delete=SoftDelete(kind="column", name="deleted_at"))
    eng = await Engine(store, store_deployment(soft)).start()
    try:
        ops = await eng.apply("INSERT INTO soft_ts VALUES (1, 'alive')")
        await eng.check(ops, {"soft_ts/1": {"id": 1, "name": "alive"}})
        ops = await eng.apply("UPDATE soft_ts SET deleted_at = now() WHERE id=1")
        await eng.check(ops, {"soft_ts/1": None})
        ops = await eng.apply("UPDATE soft_ts SET deleted_at = NULL WHERE id=1")
        await eng.check(ops, {"soft_ts/1": {"id": 1, "name": "alive"}})
    finally:
        await eng.close()


async def test_b17_a_user_leaving_the_root_filter_is_deleted(engine):
    ops = await engine.apply("UPDATE users SET status='banned' WHERE id=2")
    await engine.check(ops, {"users/2": None, **seeded("orders/12")})


async def test_b18_a_user_entering_the_root_filter_is_upserted(engine):
    ops = await engine.apply("UPDATE users SET status='active' WHERE id=3")
    await engine.check(ops, {"users/3": {
        "id": 3, "email": "cy@x.io", "bio": "(none)", "org": None, "orders": [], "tags": [],
        "orderCount": 0, "spent": None}})


async def test_b19_a_change_outside_the_filter_deletes_without_rejection(engine):
    ops = await engine.apply("UPDATE users SET bio='x' WHERE id=3")
    await engine.check(ops, {"users/3": None})
    assert engine.recorder.quarantined == [] and not engine.task.done()  # type: ignore[union-attr]


async def test_b20_key_matrix_updates_are_upserts_never_deletes(pg_url):
    types = {"by_uuid": "uuid", "by_int": "int", "by_bigint": "bigint", "by_text": "text"}
    keys = {"by_uuid": "095b7d61-cbbc-49d6-842c-231d06b81e7a", "by_int": "7",
            "by_bigint": "8", "by_text": "sku-9"}
    await sql(pg_url, "; ".join(
        f"CREATE TABLE {t} (id {ty} PRIMARY KEY, name text)" for t, ty in types.items()))
    field_types = {"uuid": "uuid", "int": "integer", "bigint": "long", "text": "keyword"}
    deployment = Deployment(source=SourceConfig(), indexes=tuple(
        index(t, t, column("id", field_types[ty]), column("name", "text"))
        for t, ty in types.items()))
    eng = await Engine(pg_url, deployment).start()
    try:
        for table, key in keys.items():
            ops = await eng.apply(f"INSERT INTO {table} VALUES ('{key}', 'first')")
            await eng.check(ops, {f"{table}/{key}": REBUILT})
            assert ops[f"{table}/{key}"].document["name"] == "first"  # type: ignore[union-attr]
            ops = await eng.apply(f"UPDATE {table} SET name='second' WHERE id='{key}'")
            await eng.check(ops, {f"{table}/{key}": REBUILT})
            assert ops[f"{table}/{key}"].document["name"] == "second"  # type: ignore[union-attr]
            ops = await eng.apply(f"DELETE FROM {table} WHERE id='{key}'")
            await eng.check(ops, {f"{table}/{key}": None})
    finally:
        await eng.close()


async def test_b21_an_unchanged_toasted_value_is_read_back_whole(engine):
    await engine.apply("UPDATE users SET bio=(SELECT string_agg(md5(g::text),'') "
                       "FROM generate_series(1,400) g) WHERE id=2")
    ops = await engine.apply("UPDATE users SET email='BOB2@x.io' WHERE id=2")
    await engine.check(ops, {"users/2": REBUILT, "orders/12": REBUILT})
    body = ops["users/2"].document  # type: ignore[union-attr]
    assert len(body["bio"]) == 12800 and body["email"] == "bob2@x.io"
    assert ops["orders/12"].document["buyer"] == {"email": "BOB2@x.io"}  # type: ignore[union-attr]


async def test_b22_one_transaction_is_one_batch_with_one_write_per_document(engine):
    mark = await engine.run_sql(
        "BEGIN; UPDATE users SET bio='a' WHERE id=1; UPDATE users SET bio='b' WHERE id=1; "
        "INSERT INTO order_items VALUES (102,10,'sku-c',5); COMMIT;")
    await engine.settle()
    flushes = [ops for ops, _ in engine.sink.flushes[mark:] if ops]
    assert len(flushes) == 1
    keys = sorted(f"{op.id.index}/{op.id.render()}" for op in flushes[0])
    assert keys == ["orders/10", "orders/11", "users/1"]
    ops = engine.last_ops_since(mark)
    await engine.check(ops, {"users/1": REBUILT, "orders/10": REBUILT, "orders/11": REBUILT})
    users = ops["users/1"].document  # type: ignore[union-attr]
    assert users["bio"] == "b" and [i["sku"] for i in users["orders"][0]["items"]] == [
        "sku-a", "sku-b", "sku-c"]
    assert ops["orders/10"].document["itemCount"] == 3  # type: ignore[union-attr]
    tracked = engine.capture.delivered[-3:]  # type: ignore[union-attr]
    assert all(t.confirmed and t.confirmed_at_flush == mark + 1 for t in tracked)
    assert engine.recorder.batches[-1].changes == 3


# ---------------------------------------------------------------------------
# C. Related rows
# ---------------------------------------------------------------------------


async def test_c23_a_new_order_rebuilds_its_user_and_is_upserted(engine):
    ops = await engine.apply("INSERT INTO orders VALUES (13,1,3.00,'paid','2024-04-01Z')")
    await engine.check(ops, {"users/1": REBUILT, "orders/13": {
        "id": 13, "total": 3.0, "status": "paid", "buyer": {"email": "  Ada@X.io "},
        "itemCount": 0}})
    users = plain(ops["users/1"].document)  # type: ignore[union-attr]
    assert [o["id"] for o in users["orders"]] == [13, 10]
    assert users["orderCount"] == 3 and users["spent"] == 27.99


async def test_c24_an_order_total_change_rebuilds_user_and_order(engine):
    ops = await engine.apply("UPDATE orders SET total=20.00 WHERE id=10")
    await engine.check(ops, {"users/1": REBUILT, "orders/10": REBUILT})
    users = plain(ops["users/1"].document)  # type: ignore[union-attr]
    assert users["orders"][0]["total"] == 20.0 and users["spent"] == 25.0


async def test_c25_an_order_leaving_the_join_filter(engine):
    ops = await engine.apply("UPDATE orders SET status='cancelled' WHERE id=10")
    await engine.check(ops, {"users/1": REBUILT, "orders/10": REBUILT})
    users = plain(ops["users/1"].document)  # type: ignore[union-attr]
    assert users["orders"] == [] and users["orderCount"] == 2 and users["spent"] == 24.99


async def test_c26_fk_move_with_default_identity_rebuilds_only_the_new_parent(engine):
    ops = await engine.apply("UPDATE orders SET user_id=1 WHERE id=12")
    await engine.check(ops, {"users/1": REBUILT, "orders/12": REBUILT})
    users = plain(ops["users/1"].document)  # type: ignore[union-attr]
    assert [o["id"] for o in users["orders"]] == [12, 10]
    assert users["orderCount"] == 3 and users["spent"] == 32.49
    assert ops["orders/12"].document["buyer"] == {"email": "  Ada@X.io "}  # type: ignore[union-attr]


async def test_c26_fk_move_with_full_identity_also_rebuilds_the_old_parent(engine):
    await engine.apply("ALTER TABLE orders REPLICA IDENTITY FULL")
    ops = await engine.apply("UPDATE orders SET user_id=1 WHERE id=12")
    await engine.check(ops, {"users/1": REBUILT, "users/2": REBUILT, "orders/12": REBUILT})
    old = plain(ops["users/2"].document)  # type: ignore[union-attr]
    assert old["orders"] == [] and old["orderCount"] == 0 and old["spent"] is None


async def test_c27_order_delete_with_default_identity_leaves_the_user_stale(engine):
    ops = await engine.apply("DELETE FROM orders WHERE id=12")
    await engine.check(ops, {"orders/12": None})


async def test_c27_order_delete_with_full_identity_rebuilds_the_user(engine):
    await engine.apply("ALTER TABLE orders REPLICA IDENTITY FULL")
    ops = await engine.apply("DELETE FROM orders WHERE id=12")
    await engine.check(ops, {"orders/12": None, "users/2": REBUILT})
    old = plain(ops["users/2"].document)  # type: ignore[union-attr]
    assert old["orders"] == [] and old["orderCount"] == 0 and old["spent"] is None


async def test_c28_a_new_item_two_hops_down(engine):
    ops = await engine.apply("INSERT INTO order_items VALUES (102,10,'sku-c',5)")
    await engine.check(ops, {"users/1": REBUILT, "orders/10": REBUILT})
    users = ops["users/1"].document  # type: ignore[union-attr]
    assert [i["sku"] for i in users["orders"][0]["items"]] == ["sku-a", "sku-b", "sku-c"]
    assert ops["orders/10"].document["itemCount"] == 3  # type: ignore[union-attr]


async def test_c29_an_item_update(engine):
    ops = await engine.apply("UPDATE order_items SET qty=3 WHERE id=100")
    await engine.check(ops, {"users/1": REBUILT, "orders/10": REBUILT})
    assert ops["users/1"].document["orders"][0]["items"][0]["qty"] == 3  # type: ignore[union-attr]


async def test_c30_an_org_rename_rebuilds_referrers_and_deletes_soft_deleted_ones(engine):
    ops = await engine.apply("UPDATE orgs SET name='Acme Corp' WHERE id=1")
    await engine.check(ops, {"users/1": REBUILT, "users/4": None})
    assert ops["users/1"].document["org"] == {"name": "Acme Corp"}  # type: ignore[union-attr]


async def test_c31_an_org_delete_nulls_the_object(engine):
    ops = await engine.apply("DELETE FROM orgs WHERE id=2")
    await engine.check(ops, {"users/2": {**SEEDED_DOCUMENTS["users/2"], "org": None}})


async def test_c32_re_pointing_the_users_org(engine):
    ops = await engine.apply("UPDATE users SET org_id=2 WHERE id=1")
    await engine.check(ops, {"users/1": REBUILT, "orders/10": REBUILT, "orders/11": REBUILT})
    assert ops["users/1"].document["org"] == {"name": "Globex"}  # type: ignore[union-attr]


async def test_c33_a_new_junction_row(engine):
    ops = await engine.apply("INSERT INTO user_tags VALUES (2,2)")
    await engine.check(ops, {"users/2": REBUILT})
    assert ops["users/2"].document["tags"] == [{"label": "blue"}, {"label": "red"}]  # type: ignore[union-attr]


async def test_c34_a_deleted_junction_row_resolves_by_its_key(engine):
    ops = await engine.apply("DELETE FROM user_tags WHERE user_id=1 AND tag_id=1")
    await engine.check(ops, {"users/1": REBUILT})
    assert ops["users/1"].document["tags"] == [{"label": "blue"}]  # type: ignore[union-attr]


async def test_c35_a_far_row_change_rebuilds_every_linked_user(engine):
    ops = await engine.apply("UPDATE tags SET label='crimson' WHERE id=1")
    await engine.check(ops, {"users/1": REBUILT, "users/2": REBUILT})
    assert ops["users/1"].document["tags"] == [{"label": "blue"}, {"label": "crimson"}]  # type: ignore[union-attr]
    assert ops["users/2"].document["tags"] == [{"label": "crimson"}]  # type: ignore[union-attr]


async def test_c36_a_published_table_no_index_reads_is_confirmed_without_writes(store):
    publication = unique_name("pub")
    await sql(store, "CREATE TABLE audit (id int PRIMARY KEY, note text); "
                     f"CREATE PUBLICATION {publication} FOR TABLE orgs, users, orders, "
                     "order_items, tags, user_tags, audit")
    eng = await Engine(store, store_deployment(), publication=publication).start()
    try:
        mark = await eng.run_sql("INSERT INTO audit VALUES (1, 'x')")
        target = await insert_lsn(store)
        await eng.settle()
        assert eng.ops_since(mark) == []
        await eventually_async(lambda: slot_confirmed(store, eng.slot), target)
    finally:
        await eng.close()


async def eventually_async(read, target: int, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await read()
        if value is not None and value >= target:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{value} did not reach {target} within {timeout}s")
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------------------
# D. Capture protocol
# ---------------------------------------------------------------------------


async def test_d37_truncate_writes_nothing_and_warns_once(engine, caplog):
    caplog.set_level(logging.WARNING, logger="flusso")
    mark = await engine.run_sql("TRUNCATE order_items")
    await engine.settle()
    assert engine.ops_since(mark) == []
    warnings = [r.getMessage() for r in caplog.records if "TRUNCATE" in r.getMessage()]
    assert len(warnings) == 1 and "public.order_items" in warnings[0]
    ops = await engine.apply("UPDATE users SET bio='z' WHERE id=1")
    await engine.check(ops, {"users/1": REBUILT, "orders/10": REBUILT, "orders/11": REBUILT})


async def test_d38_a_keyless_table_nobody_reads_is_ignored(store):
    publication = unique_name("pub")
    await sql(store, "CREATE TABLE nokey (a int, b text); "
                     f"CREATE PUBLICATION {publication} FOR TABLE orgs, users, orders, "
                     "order_items, tags, user_tags, nokey")
    eng = await Engine(store, store_deployment(), publication=publication).start()
    try:
        mark = await eng.run_sql("INSERT INTO nokey VALUES (1, 'x')")
        await eng.settle()
        assert eng.ops_since(mark) == [] and not eng.task.done()  # type: ignore[union-attr]
    finally:
        await eng.close()


async def test_d38_a_keyless_table_an_index_reads_stops_the_run(store):
    publication = unique_name("pub")
    await sql(store, "CREATE TABLE nokey (a int, b text); "
                     f"CREATE PUBLICATION {publication} FOR TABLE orgs, users, orders, "
                     "order_items, tags, user_tags, nokey")
    reader = index("orgs_nk", "orgs", column("id", "integer"),
                   Field("nokeys", Aggregate("nokey", "count", ForeignKey("a"))))
    eng = await Engine(store, store_deployment(reader), publication=publication,
                       skip_backfill=True).start()
    await sql(store, "INSERT INTO nokey VALUES (1, 'x')")
    error = await eng.failure()
    assert isinstance(error, SourceError) and "carries no key columns" in str(error)
    await eng.close()


async def test_d39_logical_messages_and_replication_origins_are_harmless(engine):
    origin = unique_name("origin")
    mark = await engine.run_sql("SELECT pg_logical_emit_message(true, 'p', 'x')")
    await sql(engine.url, f"SELECT pg_replication_origin_create('{origin}')")
    try:
        await sql(engine.url,
                  f"SELECT pg_replication_origin_session_setup('{origin}'); "
                  "INSERT INTO orgs VALUES (3, 'Initech'); "
                  "SELECT pg_replication_origin_session_reset();")
        await engine.settle()
        assert engine.ops_since(mark) == [] and not engine.task.done()  # type: ignore[union-attr]
    finally:
        await sql(engine.url, f"SELECT pg_replication_origin_drop('{origin}')")
    ops = await engine.apply("UPDATE users SET bio='after' WHERE id=2")
    await engine.check(ops, {"users/2": REBUILT, "orders/12": REBUILT})


async def test_d40_keepalive_replies_keep_the_stream_past_wal_sender_timeout(store):
    url = f"{store}?options=-c%20wal_sender_timeout%3D1500ms"
    eng = await Engine(url, store_deployment(), status_interval=30.0).start()
    try:
        pid = await scalar(store, "SELECT active_pid FROM pg_replication_slots "
                                  "WHERE slot_name = %s", (eng.slot,))
        stream = eng.capture.inner._stream  # type: ignore[union-attr]
        sent = stream.statuses_sent
        await asyncio.sleep(4.0)  # well past the 1.5 s timeout, far before our own interval
        assert stream.statuses_sent > sent  # answered reply-requested keepalives
        assert not eng.task.done()  # type: ignore[union-attr]
        assert await scalar(store, "SELECT active_pid FROM pg_replication_slots "
                                   "WHERE slot_name = %s", (eng.slot,)) == pid
        ops = await eng.apply("UPDATE users SET bio='still here' WHERE id=1")
        await eng.check(ops, {"users/1": REBUILT, "orders/10": REBUILT, "orders/11": REBUILT})
    finally:
        await eng.close()


async def test_d41_idle_wal_on_unpublished_tables_does_not_pin_the_slot(engine):
    await sql(engine.url, "CREATE TABLE noise (id serial PRIMARY KEY, v int)")
    import psycopg

    async with await psycopg.AsyncConnection.connect(engine.url, autocommit=True) as conn:
        for i in range(1000):
            await conn.execute("INSERT INTO noise (v) VALUES (%s)", (i,))
    target = await insert_lsn(engine.url)
    await eventually_async(lambda: slot_confirmed(engine.url, engine.slot), target, timeout=5.0)

    def lag_reported_near_zero() -> bool:
        lag = engine.status.snapshot()["slot_lag_bytes"]
        return lag is not None and lag < 16384

    await eventually(lag_reported_near_zero, timeout=5.0, what="the lag poll to report ~0")
    lag = await engine.capture.lag()  # type: ignore[union-attr]
    assert lag is not None and lag < 16384


async def test_d42_the_slot_reaches_the_last_commit_on_an_idle_server(engine):
    await engine.run_sql("UPDATE users SET bio='idle' WHERE id=1")
    target = await insert_lsn(engine.url)
    await eventually_async(lambda: slot_confirmed(engine.url, engine.slot), target)


# ---------------------------------------------------------------------------
# E. Delivery guarantees
# ---------------------------------------------------------------------------


async def server_settled(eng: Engine) -> int:
    """Wait until the server's slot position reaches everything committed; return it."""
    target = await insert_lsn(eng.url)
    await eventually_async(lambda: slot_confirmed(eng.url, eng.slot), target)
    value = await slot_confirmed(eng.url, eng.slot)
    assert value is not None
    return value


async def test_e43_a_failed_flush_stops_the_run_and_the_changes_come_back(engine):
    await server_settled(engine)
    engine.sink.fail_next(1)
    await sql(engine.url, "UPDATE users SET bio='retried' WHERE id=1")
    error = await engine.failure()
    assert isinstance(error, SinkWriteError)
    end = engine.capture.delivered[-1].end_lsn  # type: ignore[union-attr]
    assert (await slot_confirmed(engine.url, engine.slot) or 0) < end
    assert engine.sink.documents("users")["1"]["bio"] == "(none)"
    await engine.start()
    await engine.assert_converged()
    assert engine.sink.documents("users")["1"]["bio"] == "retried"


async def test_e44_a_split_transaction_is_not_confirmed_until_all_of_it_is_flushed(store):
    eng = await Engine(store, store_deployment(), max_changes=256).start()
    try:
        await server_settled(eng)
        flushes = 0

        async def fail_second(pending: object) -> None:
            nonlocal flushes
            flushes += 1
            if flushes == 2:
                stream = eng.capture.inner._stream  # type: ignore[union-attr]
                sent = stream.statuses_sent
                await eventually(lambda: stream.statuses_sent >= sent + 2, timeout=5.0,
                                 what="status updates after the first batch")
                eng.sink.fail_next(1)

        eng.sink.before_flush = fail_second
        await sql(store, "INSERT INTO orders SELECT 1000 + g, 1, 1.00, 'paid', '2024-05-01Z' "
                         "FROM generate_series(0, 299) g")
        error = await eng.failure()
        assert isinstance(error, SinkWriteError)
        delivered = eng.capture.delivered  # type: ignore[union-attr]
        assert sum(t.confirmed for t in delivered) == 256
        end = delivered[-1].end_lsn
        assert (await slot_confirmed(store, eng.slot) or 0) < end
        eng.sink.before_flush = None
        await eng.start()
        await eng.assert_converged()
        assert len(eng.sink.documents("orders")) == 303
    finally:
        await eng.close()


def reject_users_1(armed: dict[str, bool]):  # type: ignore[no-untyped-def]
    def reject(index: str, doc_id: str) -> str | None:
        if armed["on"] and (index, doc_id) == ("users", "1"):
            return "mapper_parsing_exception: failed to parse field [bio]"
        return None
    return reject


async def test_e45_a_rejection_under_stop_stops_without_confirming(store):
    armed = {"on": False}
    eng = await Engine(store, store_deployment(),
                       sink=RecordingSink(reject=reject_users_1(armed))).start()
    try:
        await server_settled(eng)
        armed["on"] = True
        await sql(store, "UPDATE users SET bio='rejected' WHERE id=1")
        error = await eng.failure()
        assert isinstance(error, DocumentsRejectedError) and error.count == 1
        assert "(e.g. users/1: mapper_parsing_exception" in str(error)
        rejected = eng.capture.delivered[-1]  # type: ignore[union-attr]
        assert not rejected.confirmed
        assert (await slot_confirmed(store, eng.slot) or 0) < rejected.end_lsn
        status = eng.status.snapshot()
        assert status["phase"] == "stopped" and status["errors"] == 1
        assert status["documents_quarantined"] == 0 and eng.recorder.quarantined == []
        assert not eng.status.is_ready()
    finally:
        await eng.close()


async def test_e46_a_rejection_under_skip_is_quarantined_and_confirmed(store):
    armed = {"on": False}
    deployment = dataclasses.replace(store_deployment(), on_error="skip")
    eng = await Engine(store, deployment, sink=RecordingSink(reject=reject_users_1(armed))).start()
    try:
        armed["on"] = True
        await eng.apply("UPDATE users SET bio='rejected' WHERE id=1")
        assert [(i, d) for i, d, _ in eng.recorder.quarantined] == [("users", "1")]
        assert eng.status.snapshot()["documents_quarantined"] == 1
        assert all(t.confirmed for t in eng.capture.delivered)  # type: ignore[union-attr]
    finally:
        await eng.close()


async def test_e46_a_per_index_stop_overrides_a_global_skip(store):
    armed = {"on": False}
    base = store_deployment()
    deployment = dataclasses.replace(base, on_error="skip", indexes=tuple(
        dataclasses.replace(i, on_error="stop") if i.name == "users" else i
        for i in base.indexes))
    eng = await Engine(store, deployment, sink=RecordingSink(reject=reject_users_1(armed))).start()
    try:
        armed["on"] = True
        await sql(store, "UPDATE users SET bio='rejected' WHERE id=1")
        error = await eng.failure()
        assert isinstance(error, DocumentsRejectedError) and eng.recorder.quarantined == []
    finally:
        await eng.close()


async def test_e47_three_changes_to_one_document_build_and_write_it_once(engine):
    await engine.apply("INSERT INTO users VALUES (5,'e@x.io',NULL,'active',false,NULL)")
    batches = len(engine.recorder.batches)
    mark = await engine.run_sql("BEGIN; UPDATE users SET bio='a' WHERE id=5; "
                                "UPDATE users SET bio='b' WHERE id=5; "
                                "UPDATE users SET bio='c' WHERE id=5; COMMIT;")
    await engine.settle()
    written = [ops for ops, _ in engine.sink.flushes[mark:] if ops]
    assert len(written) == 1 and len(written[0]) == 1
    assert isinstance(written[0][0], Upsert) and written[0][0].document["bio"] == "c"
    stats = engine.recorder.batches[batches:]
    assert [(s.changes, s.documents) for s in stats] == [(3, 1)]
    assert all(t.confirmed for t in engine.capture.delivered[-3:])  # type: ignore[union-attr]


async def test_e48_small_batches_flush_caught_up_only_at_the_end(pg_url):
    await sql(pg_url, "CREATE TABLE five (id int PRIMARY KEY, name text); "
                      "INSERT INTO five SELECT g, 'n' || g FROM generate_series(1, 5) g")
    deployment = Deployment(source=SourceConfig(), indexes=(
        index("five", "five", column("id", "integer"), column("name", "text")),))
    # The snapshot batches by its own size (1,000 by default); the case sets both to 2.
    eng = await Engine(pg_url, deployment, max_changes=2, backfill_max_changes=2).start()
    try:
        assert [caught_up for _, caught_up in eng.sink.flushes] == [False, False, True]
        assert [s.changes for s in eng.recorder.batches] == [2, 2, 1]
        await eng.stop()
        # Live: five transactions queued in the slot, replayed two at a time.
        await sql(pg_url, "; ".join(f"UPDATE five SET name='x{i}' WHERE id={i}"
                                    for i in range(1, 6)))
        mark = eng.mark()
        await eng.start()
        await eng.settle()
        tracked = eng.capture.delivered  # type: ignore[union-attr]
        assert len(tracked) == 5 and all(t.confirmed for t in tracked)
        # Never confirmed before the flush that carried the change.
        assert all(t.confirmed_at_flush > t.delivered_at_flush for t in tracked)  # type: ignore[operator]
        assert max(s.changes for s in eng.recorder.batches[3:]) <= 2
        assert len(eng.sink.flushes) - mark >= 3
    finally:
        await eng.close()


async def test_e49_a_graceful_stop_commits_the_open_batch_and_reports_it(engine):
    gate = asyncio.Event()
    entered = asyncio.Event()

    async def hold(pending: object) -> None:
        entered.set()
        await gate.wait()

    engine.sink.before_flush = hold
    await sql(engine.url, "UPDATE users SET bio='drained' WHERE id=1")
    await asyncio.wait_for(entered.wait(), 10)
    stopping = asyncio.create_task(engine.stop(graceful=True))
    await asyncio.sleep(0.1)
    gate.set()
    await stopping
    engine.sink.before_flush = None
    assert engine.task.exception() is None  # type: ignore[union-attr]
    assert engine.sink.documents("users")["1"]["bio"] == "drained"
    tracked = engine.capture.delivered  # type: ignore[union-attr]
    assert tracked and all(t.confirmed for t in tracked)
    assert (await slot_confirmed(engine.url, engine.slot) or 0) >= tracked[-1].end_lsn
    mark = engine.mark()
    await engine.start()
    await engine.settle()
    assert engine.ops_since(mark) == []
    assert engine.capture.delivered == []  # type: ignore[union-attr]


async def test_e50_status_moves_from_backfilling_to_live(engine):
    probes = engine.recorder.probes
    started = next(s for event, s in probes if event == "backfill_started")
    assert started["phase"] == "backfilling"
    assert started["indexes"] == {"orders": "backfilling", "users": "backfilling"}
    during = [s for event, s in probes if event == "batch"]
    assert during and all(s["phase"] == "backfilling" for s in during)
    await engine.settle()
    status = engine.status.snapshot()
    assert status["phase"] == "live" and status["changes_in_flight"] == 0
    assert status["indexes"] == {"orders": "seeded", "users": "seeded"}
    assert engine.status.is_ready()
