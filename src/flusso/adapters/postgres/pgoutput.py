"""Pure decoder for the replication COPY BOTH framing and pgoutput protocol 1 messages.

Bytes in, frozen dataclasses out. No I/O, no state: anything malformed raises
`DecodeError` and nothing else (the stream carries arbitrary server bytes).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

PG_EPOCH_OFFSET_US: Final = 946_684_800_000_000
"""Microseconds between the Unix epoch and Postgres' epoch (2000-01-01 UTC)."""


class DecodeError(ValueError):
    """A replication or pgoutput payload that does not match protocol 1."""


# ---------------------------------------------------------------------------
# LSN helpers
# ---------------------------------------------------------------------------


def format_lsn(lsn: int) -> str:
    """`X/Y` with upper and lower 32 bits in hex, no leading zeros (e.g. `0/6996AA8`)."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    high, sep, low = text.partition("/")
    if not sep:
        raise DecodeError(f"not an LSN: {text!r}")
    try:
        return (int(high, 16) << 32) | int(low, 16)
    except ValueError as exc:
        raise DecodeError(f"not an LSN: {text!r}") from exc


# ---------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------


class _Unchanged:
    """An unchanged TOASTed value the server did not send (`'u'`)."""

    _instance: _Unchanged | None = None

    def __new__(cls) -> _Unchanged:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Final = _Unchanged()

Cell = None | _Unchanged | str | bytes
"""`None` null (`'n'`), UNCHANGED (`'u'`), `str` text (`'t'`), `bytes` binary (`'b'`)."""


@dataclass(frozen=True)
class Column:
    flags: int
    name: str
    type_oid: int
    type_modifier: int

    @property
    def is_identity(self) -> bool:
        return bool(self.flags & 1)


# ---------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class XLogData:
    wal_start: int
    wal_end: int
    server_clock: int
    payload: bytes


@dataclass(frozen=True)
class PrimaryKeepalive:
    wal_end: int
    server_clock: int
    reply_requested: bool


@dataclass(frozen=True)
class Begin:
    final_lsn: int
    commit_time: int
    xid: int


@dataclass(frozen=True)
class Commit:
    flags: int
    commit_lsn: int
    end_lsn: int
    commit_time: int


@dataclass(frozen=True)
class Relation:
    oid: int
    namespace: str
    name: str
    replica_identity: str
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class TypeInfo:
    oid: int
    namespace: str
    name: str


@dataclass(frozen=True)
class Origin:
    commit_lsn: int
    name: str


@dataclass(frozen=True)
class Insert:
    relation_oid: int
    new: tuple[Cell, ...]


@dataclass(frozen=True)
class Update:
    """`old_kind` is `'K'` (identity columns only), `'O'` (full old row) or None (no old tuple)."""

    relation_oid: int
    old_kind: str | None
    old: tuple[Cell, ...] | None
    new: tuple[Cell, ...]


@dataclass(frozen=True)
class Delete:
    relation_oid: int
    old_kind: str
    old: tuple[Cell, ...]


@dataclass(frozen=True)
class Truncate:
    options: int
    relation_oids: tuple[int, ...]


@dataclass(frozen=True)
class LogicalMessage:
    flags: int
    lsn: int
    prefix: str
    content: bytes


@dataclass(frozen=True)
class Unknown:
    """A tag protocol 1 never sends under flusso's options; ignored."""

    tag: int


PgOutputMessage = (
    Begin | Commit | Relation | TypeInfo | Origin | Insert | Update | Delete | Truncate
    | LogicalMessage | Unknown
)


# ---------------------------------------------------------------------------
# Reader
# ---------------------------------------------------------------------------

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")
_U64 = struct.Struct(">Q")


class _Reader:
    __slots__ = ("_buf", "_pos")

    def __init__(self, buf: bytes) -> None:
        self._buf = buf
        self._pos = 0

    def remaining(self) -> int:
        return len(self._buf) - self._pos

    def take(self, n: int) -> bytes:
        if n < 0 or self._pos + n > len(self._buf):
            raise DecodeError(
                f"message truncated: needed {n} byte(s) at offset {self._pos}, "
                f"{self.remaining()} left"
            )
        chunk = self._buf[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def i16(self) -> int:
        return int(_I16.unpack(self.take(2))[0])

    def i32(self) -> int:
        return int(_I32.unpack(self.take(4))[0])

    def u32(self) -> int:
        return int(_U32.unpack(self.take(4))[0])

    def i64(self) -> int:
        return int(_I64.unpack(self.take(8))[0])

    def u64(self) -> int:
        return int(_U64.unpack(self.take(8))[0])

    def cstr(self) -> str:
        end = self._buf.find(b"\x00", self._pos)
        if end < 0:
            raise DecodeError(f"unterminated string at offset {self._pos}")
        raw = self._buf[self._pos : end]
        self._pos = end + 1
        return _utf8(raw)

    def rest(self) -> bytes:
        return self.take(self.remaining())

    def done(self) -> None:
        if self.remaining():
            raise DecodeError(f"{self.remaining()} unexpected trailing byte(s)")


def _utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"invalid UTF-8 text: {exc}") from exc


# ---------------------------------------------------------------------------
# COPY BOTH framing
# ---------------------------------------------------------------------------


def decode_copy_data(buf: bytes) -> XLogData | PrimaryKeepalive:
    """One server CopyData payload: XLogData (`w`) or a primary keepalive (`k`)."""
    reader = _Reader(bytes(buf))
    tag = reader.u8()
    if tag == ord("w"):
        wal_start = reader.u64()
        wal_end = reader.u64()
        clock = reader.i64()
        return XLogData(wal_start, wal_end, clock, reader.rest())
    if tag == ord("k"):
        wal_end = reader.u64()
        clock = reader.i64()
        reply = reader.u8()
        reader.done()
        return PrimaryKeepalive(wal_end, clock, reply == 1)
    raise DecodeError(f"unknown replication message tag 0x{tag:02x}")


def encode_standby_status(lsn: int, clock_us: int, *, reply_requested: bool = False) -> bytes:
    """A 34-byte standby status update reporting `lsn` as written, flushed and applied."""
    return b"r" + struct.pack(">QQQqB", lsn, lsn, lsn, clock_us, 1 if reply_requested else 0)


def pg_clock(unix_seconds: float) -> int:
    """Microseconds since the Postgres epoch for a Unix time."""
    return int(unix_seconds * 1_000_000) - PG_EPOCH_OFFSET_US


# ---------------------------------------------------------------------------
# pgoutput
# ---------------------------------------------------------------------------


def _tuple(reader: _Reader) -> tuple[Cell, ...]:
    count = reader.i16()
    if count < 0:
        raise DecodeError(f"negative column count {count}")
    cells: list[Cell] = []
    for _ in range(count):
        kind = reader.u8()
        if kind == ord("n"):
            cells.append(None)
        elif kind == ord("u"):
            cells.append(UNCHANGED)
        elif kind == ord("t"):
            cells.append(_utf8(reader.take(reader.i32())))
        elif kind == ord("b"):
            cells.append(reader.take(reader.i32()))
        else:
            raise DecodeError(f"unknown tuple cell kind 0x{kind:02x}")
    return tuple(cells)


def _new_tuple(reader: _Reader) -> tuple[Cell, ...]:
    marker = reader.u8()
    if marker != ord("N"):
        raise DecodeError(f"expected new tuple marker 'N', got 0x{marker:02x}")
    return _tuple(reader)


def decode_pgoutput(buf: bytes) -> PgOutputMessage:
    """One pgoutput protocol-1 message (the payload of an XLogData)."""
    reader = _Reader(bytes(buf))
    tag = reader.u8()
    message: PgOutputMessage
    if tag == ord("B"):
        message = Begin(reader.u64(), reader.i64(), reader.u32())
    elif tag == ord("C"):
        message = Commit(reader.u8(), reader.u64(), reader.u64(), reader.i64())
    elif tag == ord("R"):
        oid = reader.u32()
        namespace = reader.cstr()
        name = reader.cstr()
        identity = chr(reader.u8())
        ncols = reader.i16()
        if ncols < 0:
            raise DecodeError(f"negative column count {ncols}")
        columns = tuple(
            Column(reader.u8(), reader.cstr(), reader.u32(), reader.i32()) for _ in range(ncols)
        )
        message = Relation(oid, namespace, name, identity, columns)
    elif tag == ord("Y"):
        message = TypeInfo(reader.u32(), reader.cstr(), reader.cstr())
    elif tag == ord("O"):
        message = Origin(reader.u64(), reader.cstr())
    elif tag == ord("I"):
        oid = reader.u32()
        message = Insert(oid, _new_tuple(reader))
    elif tag == ord("U"):
        oid = reader.u32()
        marker = reader.u8()
        old_kind: str | None = None
        old: tuple[Cell, ...] | None = None
        if marker in (ord("K"), ord("O")):
            old_kind = chr(marker)
            old = _tuple(reader)
            marker = reader.u8()
        if marker != ord("N"):
            raise DecodeError(f"expected new tuple marker 'N', got 0x{marker:02x}")
        message = Update(oid, old_kind, old, _tuple(reader))
    elif tag == ord("D"):
        oid = reader.u32()
        marker = reader.u8()
        if marker not in (ord("K"), ord("O")):
            raise DecodeError(f"expected old tuple marker 'K' or 'O', got 0x{marker:02x}")
        message = Delete(oid, chr(marker), _tuple(reader))
    elif tag == ord("T"):
        count = reader.i32()
        options = reader.u8()
        if count < 0 or count * 4 > reader.remaining():
            raise DecodeError(f"truncate lists {count} relation(s) but the message is shorter")
        message = Truncate(options, tuple(reader.u32() for _ in range(count)))
    elif tag == ord("M"):
        flags = reader.u8()
        lsn = reader.u64()
        prefix = reader.cstr()
        message = LogicalMessage(flags, lsn, prefix, reader.take(reader.i32()))
    else:
        return Unknown(tag)
    reader.done()
    return message
