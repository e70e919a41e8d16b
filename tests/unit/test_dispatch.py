"""The message dispatcher: pgoutput messages in, each transaction's changes out at its Commit."""

from __future__ import annotations

import logging

import pytest

from flusso.adapters.postgres.dispatch import MessageDispatcher, UnkeyableChangeError
from flusso.adapters.postgres.pgoutput import (
    Begin,
    Column,
    Commit,
    Delete,
    Insert,
    Origin,
    PgOutputMessage,
    Relation,
    Truncate,
    Update,
)
from flusso.adapters.postgres.watermark import AckWatermark
from flusso.app.ports import Change, SourceError
from flusso.domain.documents.change import TableRef

USERS = TableRef("public", "users")


def users_relation(oid: int = 10, namespace: str = "public") -> Relation:
    return Relation(
        oid, namespace, "users", "d",
        (Column(1, "id", 23, -1), Column(0, "email", 25, -1)),
    )


def keyless_relation(oid: int = 11, namespace: str = "public") -> Relation:
    return Relation(oid, namespace, "users", "n", (Column(0, "note", 25, -1),))


class World:
    """A dispatcher reading `public.users`, with the key lookups it made."""

    def __init__(self, read: frozenset[TableRef] = frozenset({USERS})) -> None:
        self.watermark = AckWatermark()
        self.lookups: list[TableRef] = []

        async def key_columns(table: TableRef, relation: Relation) -> tuple[str, ...]:
            self.lookups.append(table)
            return tuple(c.name for c in relation.columns if c.is_identity)

        self.dispatcher = MessageDispatcher(
            slot="s", watermark=self.watermark, key_columns=key_columns, is_read=read.__contains__
        )

    async def apply(self, *messages: PgOutputMessage) -> list[Change]:
        released: list[Change] = []
        for message in messages:
            released.extend(await self.dispatcher.apply(message))
        return released


def commit(end_lsn: int) -> Commit:
    return Commit(0, end_lsn - 8, end_lsn, 0)


async def test_a_transaction_is_released_whole_at_its_commit_with_its_xid():
    world = World()
    assert await world.apply(users_relation(), Begin(100, 0, 7), Insert(10, ("1", "a@x.io"))) == []
    released = await world.apply(Insert(10, ("2", "b@x.io")), commit(120))
    assert [(c.xid, c.event.kind, c.event.key) for c in released] == [
        (7, "upsert", (("id", 1),)), (7, "upsert", (("id", 2),)),
    ]
    assert released[1].event.new == {"id": 2, "email": "b@x.io"}


async def test_changes_keep_their_order_inside_a_transaction():
    world = World()
    changes = await world.apply(
        users_relation(), Begin(100, 0, 7),
        Insert(10, ("1", "a")), Update(10, None, None, ("1", "b")), Delete(10, "K", ("1", None)),
        commit(120),
    )
    assert [(c.event.kind, c.event.key) for c in changes] == [
        ("upsert", (("id", 1),)), ("upsert", (("id", 1),)), ("delete", (("id", 1),)),
    ]


async def test_the_slot_moves_past_a_transaction_only_when_all_its_changes_are_confirmed():
    world = World()
    first, second = await world.apply(
        users_relation(), Begin(100, 0, 7), Insert(10, ("1", "a")), Insert(10, ("2", "b")),
        commit(120),
    )
    first.ack.confirm()
    assert world.watermark.confirmed == 0
    second.ack.confirm()
    assert world.watermark.confirmed == 120


async def test_a_transaction_of_unread_tables_releases_nothing_and_is_confirmed_at_once():
    world = World()
    released = await world.apply(
        keyless_relation(11, "audit"), Begin(100, 0, 7), Insert(11, ("x",)),
        Update(11, None, None, ("y",)), commit(150),
    )
    assert released == []
    assert world.lookups == []
    assert world.watermark.confirmed == 150


async def test_a_table_is_matched_on_schema_and_name():
    world = World()
    released = await world.apply(
        users_relation(12, "audit"), Begin(100, 0, 7), Insert(12, ("1", "a")), commit(150),
    )
    assert released == []


async def test_key_columns_are_looked_up_once_per_relation_until_it_is_redefined():
    world = World()
    await world.apply(
        users_relation(), Begin(100, 0, 7), Insert(10, ("1", "a")), Insert(10, ("2", "b")),
        commit(120), Begin(130, 0, 8), users_relation(), Insert(10, ("3", "c")), commit(140),
    )
    assert world.lookups == [USERS, USERS]


async def test_a_keyless_change_of_a_read_table_stops_the_stream():
    world = World()
    with pytest.raises(UnkeyableChangeError, match="public.users carries no key columns"):
        await world.apply(keyless_relation(), Begin(100, 0, 7), Update(11, None, None, ("x",)))


async def test_a_change_for_an_unannounced_relation_is_malformed():
    world = World()
    with pytest.raises(SourceError, match="from slot 's': change for unknown relation oid 99"):
        await world.apply(Begin(100, 0, 7), Insert(99, ("1",)))


async def test_a_change_outside_a_transaction_is_malformed():
    world = World()
    with pytest.raises(SourceError, match="change of public.users outside a transaction"):
        await world.apply(users_relation(), Insert(10, ("1", "a")))


async def test_an_undecodable_payload_is_reported_as_malformed_data_from_the_slot():
    world = World()
    with pytest.raises(SourceError, match="malformed replication data from slot 's'"):
        await world.dispatcher.feed(b"B\x00")


async def test_a_truncate_of_a_read_table_is_not_applied_but_warned_about(caplog):
    world = World()
    with caplog.at_level(logging.WARNING, logger="flusso.adapters.postgres.dispatch"):
        released = await world.apply(
            users_relation(), keyless_relation(11, "audit"), Begin(100, 0, 7),
            Truncate(0, (10, 11, 99)), commit(120),
        )
    assert released == []
    assert world.watermark.confirmed == 120
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        "TRUNCATE of public.users was not applied: documents built from it may be stale "
        "until their index is reindexed"
    ]


async def test_messages_without_rows_release_nothing():
    world = World()
    assert await world.apply(users_relation(), Begin(100, 0, 7), Origin(90, "elsewhere")) == []
    assert world.watermark.outstanding_transactions == 0
    assert world.watermark.confirmed == 0  # the transaction is still open
