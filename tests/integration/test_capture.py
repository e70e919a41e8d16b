"""PostgresChangeCapture against a throwaway Postgres: the stream, keys, feedback and the watermark."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable

import psycopg
import pytest
from tests.conftest import unique_name

from flusso.adapters.postgres.capture import PostgresChangeCapture
from flusso.adapters.postgres.pgoutput import parse_lsn
from flusso.app.ports import Change, SourceError, SourceUnavailableError
from flusso.domain.config.model import (
    Aggregate,
    BelongsTo,
    ColumnSource,
    Deployment,
    Field,
    ForeignKey,
    HasMany,
    IndexConfig,
    IndexSchema,
    Join,
    ManyToMany,
    SourceConfig,
    Through,
)
from flusso.domain.documents.change import TableRef

FIXTURE_SQL = """
CREATE TABLE orgs (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL, org_id int, status text NOT NULL,
                    deleted boolean NOT NULL DEFAULT false, bio text);
CREATE TABLE orders (id bigint PRIMARY KEY, user_id int, total numeric(10,2) NOT NULL,
                     status text NOT NULL, placed_at timestamptz NOT NULL);
CREATE TABLE order_items (id int PRIMARY KEY, order_id bigint NOT NULL, sku text NOT NULL,
                          qty int NOT NULL);
CREATE TABLE tags (id int PRIMARY KEY, label text NOT NULL);
CREATE TABLE user_tags (user_id int NOT NULL, tag_id int NOT NULL, PRIMARY KEY (user_id, tag_id));
INSERT INTO orgs VALUES (1,'Acme'),(2,'Globex');
INSERT INTO users VALUES (1,'  Ada@X.io ',1,'active',false,NULL),(2,'bob@x.io',2,'active',false,'hi');
INSERT INTO orders VALUES (10,1,19.99,'paid','2024-01-01Z'),(12,2,7.50,'paid','2024-03-01Z');
"""


def col(name: str, type_: str = "integer") -> Field:
    return Field(name, ColumnSource(name, type_, True))


def index(name: str, table: str, *fields: Field, primary_key: str | None = "id") -> IndexConfig:
    return IndexConfig(name, True, IndexSchema(table=table, fields=fields, primary_key=primary_key))


def fixture_deployment(*extra: IndexConfig) -> Deployment:
    users = index(
        "users", "users", col("id"), col("email", "keyword"),
        Field("org", Join("orgs", BelongsTo("org_id"), "id", True, (col("name", "text"),))),
        Field("orders", Join("orders", HasMany("user_id"), "id", False, (
            col("id", "long"),
            Field("items", Join("order_items", HasMany("order_id"), "id", False,
                                (col("sku", "keyword"),))),
        ))),
        Field("tags", Join("tags", ManyToMany(Through("user_tags", "user_id", "tag_id")), "id",
                           False, (col("label", "keyword"),))),
        Field("orderCount", Aggregate("orders", "count", ForeignKey("user_id"))),
    )
    orders = index(
        "orders", "orders", col("id", "long"),
        Field("buyer", Join("users", BelongsTo("user_id"), "id", True, (col("email", "keyword"),))),
        Field("itemCount", Aggregate("order_items", "count", ForeignKey("order_id"))),
    )
    return Deployment(source=SourceConfig(), indexes=(orders, users, *extra))


def run(url: str, sql: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.encode())


def scalar(url: str, sql: str, params: tuple[object, ...] = ()) -> object:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(sql.encode(), params).fetchone()
        return row[0] if row else None


def slot_confirmed(url: str, slot: str) -> int:
    text = scalar(url, "SELECT confirmed_flush_lsn::text FROM pg_replication_slots "
                       "WHERE slot_name = %s", (slot,))
    assert isinstance(text, str)
    return parse_lsn(text)


def current_lsn(url: str) -> int:
    text = scalar(url, "SELECT pg_current_wal_lsn()::text")
    assert isinstance(text, str)
    return parse_lsn(text)


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


class Consumer:
    """Drives `live()` on a task, collecting changes for the test to take."""

    def __init__(self, capture: PostgresChangeCapture) -> None:
        self.capture = capture
        self.queue: asyncio.Queue[Change] = asyncio.Queue()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for change in self.capture.live():
            await self.queue.put(change)

    async def take(self, count: int = 1, timeout: float = 10.0) -> list[Change]:
        taken = []
        for _ in range(count):
            getter = asyncio.ensure_future(self.queue.get())
            done, _ = await asyncio.wait({getter, self.task}, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                if self.task in done:
                    self.task.result()
                raise AssertionError(f"no change within {timeout}s (got {len(taken)})")
            taken.append(getter.result())
        return taken


@pytest.fixture
async def fixture_db(pg_url: str) -> AsyncIterator[str]:
    run(pg_url, FIXTURE_SQL)
    yield pg_url


async def started(url: str, deployment: Deployment, **kwargs: object
                  ) -> tuple[PostgresChangeCapture, Consumer, str]:
    slot = unique_name("slot")
    capture = PostgresChangeCapture(
        url, deployment, slot=slot, publication=unique_name("pub"), **kwargs  # type: ignore[arg-type]
    )
    await capture.prepare()
    return capture, Consumer(capture), slot


@pytest.fixture
async def streaming(fixture_db: str) -> AsyncIterator[tuple[PostgresChangeCapture, Consumer, str]]:
    capture, consumer, slot = await started(fixture_db, fixture_deployment(), status_interval=0.2)
    yield capture, consumer, slot
    await capture.close()
    consumer.task.cancel()


USERS = TableRef("public", "users")
ORDERS = TableRef("public", "orders")


# ---------------------------------------------------------------------------
# Turning WAL into events
# ---------------------------------------------------------------------------


async def test_inserts_updates_and_deletes_become_keyed_events(streaming, fixture_db):
    capture, consumer, _ = streaming
    run(fixture_db, "INSERT INTO users VALUES (5,' Eve@X.io',2,'active',false,NULL)")
    run(fixture_db, "UPDATE users SET bio='new' WHERE id=1")
    run(fixture_db, "DELETE FROM users WHERE id=2")
    changes = await consumer.take(3)
    assert [(c.event.kind, c.event.table, c.event.key) for c in changes] == [
        ("upsert", USERS, (("id", 5),)),
        ("upsert", USERS, (("id", 1),)),
        ("delete", USERS, (("id", 2),)),
    ]
    assert changes[0].event.new["email"] == " Eve@X.io"


async def test_every_change_of_a_transaction_carries_its_transaction_id(streaming, fixture_db):
    _, consumer, _ = streaming
    with psycopg.connect(fixture_db) as conn:  # one transaction, two changes
        conn.execute("UPDATE users SET bio='a' WHERE id=1")
        conn.execute("UPDATE users SET bio='b' WHERE id=2")
        row = conn.execute("SELECT pg_current_xact_id()::text").fetchone()
        assert row is not None
        xid = int(row[0]) % 2**32  # pgoutput's Begin carries the 32-bit id
    run(fixture_db, "UPDATE users SET bio='c' WHERE id=1")
    changes = await consumer.take(3)
    assert [c.xid for c in changes[:2]] == [xid, xid]
    assert changes[2].xid not in (None, xid)


async def test_a_primary_key_update_is_a_delete_then_an_upsert(streaming, fixture_db):
    _, consumer, _ = streaming
    run(fixture_db, "UPDATE users SET id=6 WHERE id=2")
    changes = await consumer.take(2)
    assert [(c.event.kind, c.event.key) for c in changes] == [
        ("delete", (("id", 2),)), ("upsert", (("id", 6),)),
    ]


async def test_full_identity_keys_on_the_primary_key_and_carries_old_values(streaming, fixture_db):
    _, consumer, _ = streaming
    run(fixture_db, "ALTER TABLE orders REPLICA IDENTITY FULL")
    run(fixture_db, "UPDATE orders SET user_id=1 WHERE id=12")
    run(fixture_db, "DELETE FROM orders WHERE id=10")
    update, delete = await consumer.take(2)
    assert (update.event.kind, update.event.key) == ("upsert", (("id", 12),))
    assert update.event.old["user_id"] == 2
    assert update.event.new["user_id"] == 1
    assert (delete.event.kind, delete.event.key) == ("delete", (("id", 10),))
    assert delete.event.old["user_id"] == 1


async def test_key_values_are_canonical_for_uuid_int_bigint_and_text(fixture_db):
    run(fixture_db, """
        CREATE TABLE by_uuid (id uuid PRIMARY KEY, name text);
        CREATE TABLE by_int (id int PRIMARY KEY, name text);
        CREATE TABLE by_bigint (id bigint PRIMARY KEY, name text);
        CREATE TABLE by_text (id text PRIMARY KEY, name text);
    """)
    deployment = fixture_deployment(
        *(index(t, t, col("id"), col("name", "text")) for t in
          ("by_uuid", "by_int", "by_bigint", "by_text"))
    )
    capture, consumer, _ = await started(fixture_db, deployment, status_interval=0.2)
    try:
        expected = {
            "by_uuid": ("'095b7d61-cbbc-49d6-842c-231d06b81e7a'",
                        uuid.UUID("095b7d61-cbbc-49d6-842c-231d06b81e7a")),
            "by_int": ("7", 7),
            "by_bigint": ("8", 8),
            "by_text": ("'sku-9'", "sku-9"),
        }
        for table, (literal, value) in expected.items():
            run(fixture_db, f"INSERT INTO {table} VALUES ({literal}, 'first')")
            run(fixture_db, f"UPDATE {table} SET name='second' WHERE id={literal}")
            run(fixture_db, f"DELETE FROM {table} WHERE id={literal}")
            changes = await consumer.take(3)
            assert [(c.event.kind, c.event.key) for c in changes] == [
                ("upsert", (("id", value),)),
                ("upsert", (("id", value),)),
                ("delete", (("id", value),)),
            ]
            assert changes[1].event.new["name"] == "second"
    finally:
        await capture.close()


async def test_truncate_warns_about_the_table_and_the_stream_continues(
    streaming, fixture_db, caplog
):
    _, consumer, _ = streaming
    caplog.set_level(logging.WARNING)
    run(fixture_db, "TRUNCATE order_items")
    run(fixture_db, "UPDATE users SET bio='z' WHERE id=1")
    (change,) = await consumer.take(1)
    assert change.event.key == (("id", 1),)
    truncates = [r.getMessage() for r in caplog.records if "TRUNCATE" in r.getMessage()]
    assert len(truncates) == 1
    assert "public.order_items" in truncates[0]


async def test_changes_of_a_keyless_table_no_index_reads_are_ignored(fixture_db):
    run(fixture_db, "CREATE TABLE nokey (a int, b text)")
    capture, consumer, _ = await started(fixture_db, fixture_deployment(), status_interval=0.2)
    try:
        run(fixture_db, f'ALTER PUBLICATION "{capture.publication}" ADD TABLE nokey')
        run(fixture_db, "INSERT INTO nokey VALUES (1,'x')")
        run(fixture_db, "UPDATE users SET bio='after' WHERE id=1")
        (change,) = await consumer.take(1)
        assert change.event.table == USERS
    finally:
        await capture.close()


async def test_a_keyless_table_an_index_reads_stops_the_stream(fixture_db):
    run(fixture_db, "CREATE TABLE nokey (a int, b text)")
    deployment = fixture_deployment(index("nokeys", "nokey", col("a"), primary_key=None))
    publication = unique_name("pub")
    run(fixture_db, f'CREATE PUBLICATION "{publication}" FOR TABLE users, orders, orgs, '
                    "order_items, tags, user_tags, nokey WITH (publish = 'insert')")
    capture = PostgresChangeCapture(fixture_db, deployment, slot=unique_name("slot"),
                                    publication=publication, status_interval=0.2)
    await capture.prepare()
    consumer = Consumer(capture)
    try:
        run(fixture_db, "INSERT INTO nokey VALUES (1,'x')")
        with pytest.raises(SourceError, match="relation public.nokey carries no key columns"):
            await consumer.take(1)
    finally:
        await capture.close()


async def test_logical_messages_and_origin_transactions_are_ignored(streaming, fixture_db):
    _, consumer, _ = streaming
    run(fixture_db, "CREATE TABLE side (id int PRIMARY KEY)")
    run(fixture_db, "SELECT pg_logical_emit_message(true, 'p', 'x')")
    origin = unique_name("origin")
    with psycopg.connect(fixture_db, autocommit=True) as conn:
        conn.execute("SELECT pg_replication_origin_create(%s)", (origin,))
        conn.execute("SELECT pg_replication_origin_session_setup(%s)", (origin,))
        conn.execute("INSERT INTO orgs VALUES (3, 'Initech')")
        conn.execute("SELECT pg_replication_origin_session_reset()")
        conn.execute("SELECT pg_replication_origin_drop(%s)", (origin,))
    run(fixture_db, "UPDATE users SET bio='after' WHERE id=1")
    first, second = await consumer.take(2)
    assert (first.event.table, first.event.key) == (TableRef("public", "orgs"), (("id", 3),))
    assert (second.event.table, second.event.key) == (USERS, (("id", 1),))


# ---------------------------------------------------------------------------
# Feedback and the watermark
# ---------------------------------------------------------------------------


async def test_unpublished_activity_advances_the_slot_to_the_wal_end(streaming, fixture_db):
    capture, _, slot = streaming
    run(fixture_db, "CREATE TABLE unpublished (id serial PRIMARY KEY, v int)")
    with psycopg.connect(fixture_db, autocommit=True) as conn:
        for i in range(1000):
            conn.execute("INSERT INTO unpublished (v) VALUES (%s)", (i,))
    target = current_lsn(fixture_db)
    assert await eventually(lambda: slot_confirmed(fixture_db, slot) >= target)
    lag = await capture.lag()
    assert lag is not None and lag < 64 * 1024


async def test_the_slot_reaches_the_commit_end_only_after_the_ack(streaming, fixture_db):
    capture, consumer, slot = streaming
    run(fixture_db, "UPDATE users SET bio='acked' WHERE id=1")
    (change,) = await consumer.take(1)
    end_lsn = change.ack.end_lsn  # type: ignore[attr-defined]
    await asyncio.sleep(0.6)  # three feedback intervals
    assert slot_confirmed(fixture_db, slot) < end_lsn
    change.ack.confirm()
    assert await eventually(lambda: slot_confirmed(fixture_db, slot) >= end_lsn)


async def test_a_partly_confirmed_split_transaction_holds_the_slot_below_its_end(
    streaming, fixture_db
):
    capture, consumer, slot = streaming
    run(fixture_db, "INSERT INTO orders SELECT g, 1, 1.00, 'paid', now() "
                    "FROM generate_series(1000, 1299) g")
    changes = await consumer.take(300)
    end_lsn = changes[0].ack.end_lsn  # type: ignore[attr-defined]
    for change in changes[:256]:
        change.ack.confirm()
    await asyncio.sleep(0.6)
    assert slot_confirmed(fixture_db, slot) < end_lsn
    for change in changes[256:]:
        change.ack.confirm()
    assert await eventually(lambda: slot_confirmed(fixture_db, slot) >= end_lsn)


async def test_graceful_stop_sends_the_final_position_and_releases_the_slot(fixture_db):
    capture, consumer, slot = await started(fixture_db, fixture_deployment(), status_interval=60)
    try:
        run(fixture_db, "UPDATE users SET bio='last' WHERE id=2")
        (change,) = await consumer.take(1)
        change.ack.confirm()
        await capture.stop()
        await asyncio.wait_for(consumer.task, 5)
        assert slot_confirmed(fixture_db, slot) >= change.ack.end_lsn  # type: ignore[attr-defined]
        assert scalar(fixture_db, "SELECT active FROM pg_replication_slots WHERE slot_name = %s",
                      (slot,)) is False
    finally:
        await capture.close()


async def test_a_second_consumer_of_an_active_slot_is_refused(streaming, fixture_db):
    capture, consumer, slot = streaming
    run(fixture_db, "UPDATE users SET bio='x' WHERE id=1")
    await consumer.take(1)
    other = PostgresChangeCapture(fixture_db, fixture_deployment(), slot=slot,
                                  publication=capture.publication)
    try:
        with pytest.raises(SourceError, match="is active for PID"):
            await Consumer(other).take(1)
    finally:
        await other.close()


# ---------------------------------------------------------------------------
# Slot, snapshot, lag
# ---------------------------------------------------------------------------


async def test_a_slot_with_another_plugin_is_refused(fixture_db):
    slot = unique_name("slot")
    scalar(fixture_db, "SELECT pg_create_logical_replication_slot(%s, 'test_decoding')", (slot,))
    capture = PostgresChangeCapture(fixture_db, fixture_deployment(), slot=slot,
                                    publication=unique_name("pub"))
    try:
        with pytest.raises(SourceError) as raised:
            await capture.prepare()
        assert str(raised.value) == (
            f"replication slot '{slot}' exists but uses plugin 'test_decoding', "
            "expected 'pgoutput'"
        )
    finally:
        await capture.close()


async def test_prepare_creates_a_permanent_pgoutput_slot_once(fixture_db):
    slot = unique_name("slot")
    capture = PostgresChangeCapture(fixture_db, fixture_deployment(), slot=slot,
                                    publication=unique_name("pub"))
    try:
        assert await capture.lag() is None
        await capture.prepare()
        await capture.prepare()
        row = scalar(fixture_db, "SELECT (plugin, temporary, slot_type)::text "
                                 "FROM pg_replication_slots WHERE slot_name = %s", (slot,))
        assert row == "(pgoutput,f,logical)"
        lag = await capture.lag()
        assert lag is not None and lag >= 0
    finally:
        await capture.close()


async def test_the_snapshot_yields_one_canonical_upsert_per_row(fixture_db):
    run(fixture_db, "CREATE TABLE pairs (a int, b int, PRIMARY KEY (a, b));"
                    "INSERT INTO orders SELECT g, 1, 1.00, 'paid', now() "
                    "FROM generate_series(100, 2199) g")
    capture = PostgresChangeCapture(fixture_db, fixture_deployment())
    try:
        changes = [c async for c in capture.snapshot(
            [USERS, TableRef("public", "pairs"), ORDERS])]
    finally:
        await capture.close()
    users = sorted(c.event.key for c in changes if c.event.table == USERS)
    orders = {c.event.key[0][1] for c in changes if c.event.table == ORDERS}
    assert users == [(("id", 1),), (("id", 2),)]
    assert orders == {10, 12, *range(100, 2200)}
    assert {c.event.kind for c in changes} == {"upsert"}
    assert all(c.event.table != TableRef("public", "pairs") for c in changes)


async def test_feedback_keeps_flowing_while_the_consumer_is_stalled(fixture_db):
    slot = unique_name("slot")
    capture = PostgresChangeCapture(fixture_db, fixture_deployment(), slot=slot,
                                    publication=unique_name("pub"), status_interval=0.2,
                                    buffer_capacity=4)
    await capture.prepare()
    stream = capture.live()
    try:
        run(fixture_db, "INSERT INTO orders SELECT g, 1, 1.00, 'paid', now() "
                        "FROM generate_series(1000, 1199) g")
        with psycopg.connect(fixture_db, autocommit=True) as conn:
            for i in range(50):
                conn.execute("UPDATE users SET bio=%s WHERE id=1", (str(i),))
        await asyncio.wait_for(anext(stream), 10)  # then stall: the buffer fills and stays full

        def reply_age() -> float:
            age = scalar(fixture_db, "SELECT extract(epoch FROM now() - r.reply_time)::float8 "
                                     "FROM pg_stat_replication r JOIN pg_replication_slots s "
                                     "ON s.active_pid = r.pid WHERE s.slot_name = %s", (slot,))
            assert isinstance(age, float)
            return age

        assert scalar(fixture_db, "SELECT r.application_name FROM pg_stat_replication r "
                                  "JOIN pg_replication_slots s ON s.active_pid = r.pid "
                                  "WHERE s.slot_name = %s", (slot,)) == "flusso"
        await asyncio.sleep(1.0)
        assert reply_age() < 0.6
        await asyncio.sleep(0.5)
        assert reply_age() < 0.6
        drained = [await asyncio.wait_for(anext(stream), 10) for _ in range(199 + 50)]
        assert drained[-1].event.table == USERS
    finally:
        await stream.aclose()
        await capture.close()


async def test_a_slot_of_another_database_is_refused(fixture_db, postgres_server):
    slot = unique_name("slot")
    scalar(postgres_server.url, "SELECT pg_create_logical_replication_slot(%s, 'pgoutput')",
           (slot,))
    capture = PostgresChangeCapture(fixture_db, fixture_deployment(), slot=slot,
                                    publication=unique_name("pub"))
    try:
        with pytest.raises(SourceError, match=f"replication slot '{slot}' belongs to database "
                                              "'postgres'"):
            await capture.prepare()
    finally:
        await capture.close()
        scalar(postgres_server.url, "SELECT pg_drop_replication_slot(%s)", (slot,))


async def test_an_unreachable_server_is_a_transient_source_error():
    from devstack.postgres import free_port

    capture = PostgresChangeCapture(
        f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere?connect_timeout=2",
        fixture_deployment(),
    )
    with pytest.raises(SourceUnavailableError, match="cannot connect to Postgres at 127.0.0.1"):
        await capture.prepare()
    with pytest.raises(SourceUnavailableError):
        await anext(capture.live())
