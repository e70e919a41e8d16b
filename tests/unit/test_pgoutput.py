"""The pgoutput decoder: known layouts decode exactly, arbitrary bytes only ever raise DecodeError."""

from __future__ import annotations

import struct
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flusso.adapters.postgres import pgoutput
from flusso.adapters.postgres.dispatch import UnkeyableChangeError, plan_events
from flusso.adapters.postgres.pgoutput import (
    UNCHANGED,
    Begin,
    Column,
    Commit,
    DecodeError,
    Delete,
    Insert,
    LogicalMessage,
    Origin,
    PrimaryKeepalive,
    Relation,
    Truncate,
    TypeInfo,
    Unknown,
    Update,
    XLogData,
    decode_copy_data,
    decode_pgoutput,
)
from flusso.domain.documents.change import TableRef

# ---------------------------------------------------------------------------
# Test-side encoders (the layout the server sends)
# ---------------------------------------------------------------------------


def cstr(text: str) -> bytes:
    return text.encode() + b"\x00"


def enc_tuple(cells: tuple[pgoutput.Cell, ...]) -> bytes:
    out = struct.pack(">h", len(cells))
    for cell in cells:
        if cell is None:
            out += b"n"
        elif cell is UNCHANGED:
            out += b"u"
        elif isinstance(cell, str):
            raw = cell.encode()
            out += b"t" + struct.pack(">i", len(raw)) + raw
        else:
            assert isinstance(cell, bytes)
            out += b"b" + struct.pack(">i", len(cell)) + cell
    return out


def encode(message: pgoutput.PgOutputMessage) -> bytes:
    if isinstance(message, Begin):
        return b"B" + struct.pack(">QqI", message.final_lsn, message.commit_time, message.xid)
    if isinstance(message, Commit):
        return b"C" + struct.pack(
            ">BQQq", message.flags, message.commit_lsn, message.end_lsn, message.commit_time
        )
    if isinstance(message, Relation):
        out = b"R" + struct.pack(">I", message.oid) + cstr(message.namespace) + cstr(message.name)
        out += message.replica_identity.encode() + struct.pack(">h", len(message.columns))
        for c in message.columns:
            out += bytes([c.flags]) + cstr(c.name) + struct.pack(">Ii", c.type_oid, c.type_modifier)
        return out
    if isinstance(message, TypeInfo):
        return b"Y" + struct.pack(">I", message.oid) + cstr(message.namespace) + cstr(message.name)
    if isinstance(message, Origin):
        return b"O" + struct.pack(">Q", message.commit_lsn) + cstr(message.name)
    if isinstance(message, Insert):
        return b"I" + struct.pack(">I", message.relation_oid) + b"N" + enc_tuple(message.new)
    if isinstance(message, Update):
        out = b"U" + struct.pack(">I", message.relation_oid)
        if message.old is not None:
            assert message.old_kind is not None
            out += message.old_kind.encode() + enc_tuple(message.old)
        return out + b"N" + enc_tuple(message.new)
    if isinstance(message, Delete):
        return (
            b"D" + struct.pack(">I", message.relation_oid) + message.old_kind.encode()
            + enc_tuple(message.old)
        )
    if isinstance(message, Truncate):
        out = b"T" + struct.pack(">iB", len(message.relation_oids), message.options)
        return out + b"".join(struct.pack(">I", oid) for oid in message.relation_oids)
    if isinstance(message, LogicalMessage):
        return (
            b"M" + struct.pack(">BQ", message.flags, message.lsn) + cstr(message.prefix)
            + struct.pack(">i", len(message.content)) + message.content
        )
    raise AssertionError(message)


# ---------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------

u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
names = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=20)
cells = st.one_of(
    st.none(),
    st.just(UNCHANGED),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=30),
    st.binary(max_size=30),
)
tuples = st.lists(cells, max_size=8).map(tuple)
columns = st.builds(Column, st.integers(0, 255), names, u32, st.integers(-(2**31), 2**31 - 1))

messages = st.one_of(
    st.builds(Begin, u64, i64, u32),
    st.builds(Commit, st.integers(0, 255), u64, u64, i64),
    st.builds(
        Relation, u32, names, names, st.sampled_from("dnfi"),
        st.lists(columns, max_size=6).map(tuple),
    ),
    st.builds(TypeInfo, u32, names, names),
    st.builds(Origin, u64, names),
    st.builds(Insert, u32, tuples),
    st.builds(Update, u32, st.just(None), st.just(None), tuples),
    st.builds(lambda oid, kind, old, new: Update(oid, kind, old, new),
              u32, st.sampled_from("KO"), tuples, tuples),
    st.builds(Delete, u32, st.sampled_from("KO"), tuples),
    st.builds(Truncate, st.integers(0, 3), st.lists(u32, max_size=10).map(tuple)),
    st.builds(LogicalMessage, st.integers(0, 1), u64, names, st.binary(max_size=40)),
)


@settings(max_examples=600, deadline=None)
@given(messages)
def test_every_pgoutput_message_decodes_back_to_itself(message):
    assert decode_pgoutput(encode(message)) == message


@settings(max_examples=300, deadline=None)
@given(messages, st.data())
def test_a_truncated_message_is_a_decode_error(message, data):
    raw = encode(message)
    cut = data.draw(st.integers(1, len(raw) - 1)) if len(raw) > 1 else None
    if cut is None:
        return
    with pytest.raises(DecodeError):
        decode_pgoutput(raw[:cut])


@settings(max_examples=300, deadline=None)
@given(messages, st.binary(min_size=1, max_size=4))
def test_trailing_bytes_after_a_message_are_a_decode_error(message, extra):
    with pytest.raises(DecodeError):
        decode_pgoutput(encode(message) + extra)


PGOUTPUT_TYPES = (
    Begin, Commit, Relation, TypeInfo, Origin, Insert, Update, Delete, Truncate, LogicalMessage,
    Unknown,
)


# A one-second deadline per example doubles as the "never hangs" check.
@settings(
    max_examples=2500, deadline=timedelta(seconds=1),
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.one_of(
    st.binary(max_size=200),
    st.tuples(st.sampled_from(b"BCRYOIUDTMwk"), st.binary(max_size=120)).map(
        lambda t: bytes([t[0]]) + t[1]
    ),
))
def test_arbitrary_bytes_never_raise_anything_but_decode_error(raw):
    decoded = []
    for decode in (decode_pgoutput, decode_copy_data):
        try:
            decoded.append(decode(raw))
        except DecodeError:
            decoded.append(None)
    pgoutput_result, frame = decoded
    assert pgoutput_result is None or isinstance(pgoutput_result, PGOUTPUT_TYPES)
    assert frame is None or isinstance(frame, (XLogData, PrimaryKeepalive))


@settings(max_examples=300, deadline=None)
@given(u64, u64, i64, st.binary(max_size=50))
def test_xlogdata_frames_carry_their_payload(start, end, clock, payload):
    raw = b"w" + struct.pack(">QQq", start, end, clock) + payload
    assert decode_copy_data(raw) == XLogData(start, end, clock, payload)


@pytest.mark.parametrize("flag", [0, 1])
def test_keepalives_report_wal_end_and_the_reply_request(flag):
    raw = b"k" + struct.pack(">Qq", 0x1_0000_00A0, 5) + bytes([flag])
    assert decode_copy_data(raw) == PrimaryKeepalive(0x1_0000_00A0, 5, flag == 1)


def test_a_standby_status_update_is_34_bytes_with_the_lsn_three_times():
    raw = pgoutput.encode_standby_status(0x6996AA8, 42)
    assert len(raw) == 34
    assert raw[0:1] == b"r"
    assert struct.unpack(">QQQqB", raw[1:]) == (0x6996AA8, 0x6996AA8, 0x6996AA8, 42, 0)


def test_truncate_reads_a_32_bit_relation_count():
    raw = b"T" + struct.pack(">iB", 2, 1) + struct.pack(">II", 16384, 16390)
    assert decode_pgoutput(raw) == Truncate(1, (16384, 16390))


def test_an_unknown_tag_is_reported_not_rejected():
    assert decode_pgoutput(b"S\x00\x00") == Unknown(ord("S"))


@pytest.mark.parametrize(
    ("lsn", "text"), [(0, "0/0"), (0x6996AA8, "0/6996AA8"), (0x1_0000_0001, "1/1")]
)
def test_lsns_format_as_upper_and_lower_hex(lsn, text):
    assert pgoutput.format_lsn(lsn) == text
    assert pgoutput.parse_lsn(text) == lsn


# ---------------------------------------------------------------------------
# Messages → events (key projection, WAL tuple values)
# ---------------------------------------------------------------------------

ORDERS = TableRef("public", "orders")


def relation(identity: str) -> Relation:
    flag = {"d": (1, 0, 0), "f": (1, 1, 1)}[identity]
    return Relation(
        1, "public", "orders", identity,
        (Column(flag[0], "id", 23, -1), Column(flag[1], "user_id", 23, -1),
         Column(flag[2], "note", 25, -1)),
    )


def test_full_identity_updates_key_on_the_primary_key_only():
    events = plan_events(
        ORDERS, relation("f"), ("id",),
        Update(1, "O", ("12", "2", "x"), ("12", "1", UNCHANGED)),
    )
    assert [(e.kind, e.key) for e in events] == [("upsert", (("id", 12),))]
    assert events[0].old == {"id": 12, "user_id": 2, "note": "x"}
    assert events[0].new == {"id": 12, "user_id": 1}


def test_a_primary_key_change_is_a_delete_of_the_old_key_then_an_upsert():
    events = plan_events(
        ORDERS, relation("d"), ("id",), Update(1, "K", ("2", None, None), ("6", "1", "x"))
    )
    assert [(e.kind, e.key) for e in events] == [
        ("delete", (("id", 2),)), ("upsert", (("id", 6),)),
    ]
    assert events[0].old == {"id": 2}


def test_a_delete_under_default_identity_carries_only_the_key_columns():
    (event,) = plan_events(ORDERS, relation("d"), ("id",), Delete(1, "K", ("12", None, None)))
    assert (event.kind, event.key, dict(event.old)) == ("delete", (("id", 12),), {"id": 12})


def test_a_table_without_identity_columns_cannot_be_keyed():
    keyless = Relation(2, "public", "nokey", "d", (Column(0, "a", 23, -1),))
    with pytest.raises(UnkeyableChangeError, match="relation public.nokey carries no key columns"):
        plan_events(TableRef("public", "nokey"), keyless, (), Insert(2, ("1",)))
