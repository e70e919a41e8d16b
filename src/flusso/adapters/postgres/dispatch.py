"""pgoutput messages → `Change`s: relation and key caches, transaction buffering, DML → events.

No socket I/O: the stream hands it each payload and gets back the changes a Commit
released; key columns come from a callback, so it is tested without a server.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from flusso.adapters.postgres import pgoutput
from flusso.adapters.postgres.watermark import AckWatermark
from flusso.app.ports import Change, SourceError
from flusso.domain.documents.change import ChangeEvent, RowKey, TableRef
from flusso.domain.documents.keys import canonical_key_value

logger = logging.getLogger(__name__)

KeyColumns = Callable[[TableRef, pgoutput.Relation], Awaitable[tuple[str, ...]]]
"""The columns that address a table's rows, given its latest Relation message."""

TableOf = Callable[[pgoutput.Relation], Awaitable[TableRef]]
"""The table an index reads that a relation's changes belong to: itself, or the
partitioned table it is a partition of (a publication without
`publish_via_partition_root` sends partitions under their own names)."""


async def own_table(relation: pgoutput.Relation) -> TableRef:
    return TableRef(relation.namespace, relation.name)


class UnkeyableChangeError(SourceError):
    def __init__(self, table: TableRef) -> None:
        super().__init__(
            f"relation {table} carries no key columns; "
            "set REPLICA IDENTITY so changes can be addressed"
        )


def malformed(slot: str, detail: object) -> SourceError:
    """Bytes from the server that do not follow the protocol: the stream cannot go on."""
    return SourceError(f"malformed replication data from slot '{slot}': {detail}")


def _cell_text(cell: pgoutput.Cell) -> str | None:
    if isinstance(cell, bytes):
        return cell.decode("utf-8", "replace")
    if isinstance(cell, str):
        return cell
    return None


def tuple_values(
    relation: pgoutput.Relation, cells: Sequence[pgoutput.Cell], *, identity_only: bool = False
) -> dict[str, Any]:
    """Column → canonical value for the cells a WAL tuple carried.

    The document builder reads old parents from these (a deleted child or a moved
    foreign key), since the row itself is gone or changed by the time it looks.
    Unchanged TOAST cells are omitted; in a `'K'` tuple only identity columns are
    real (the others are sent as null).
    """
    if len(cells) != len(relation.columns):
        raise SourceError(
            f"malformed replication data: relation {relation.namespace}.{relation.name} has "
            f"{len(relation.columns)} column(s) but a tuple carried {len(cells)}"
        )
    values: dict[str, Any] = {}
    for column, cell in zip(relation.columns, cells, strict=True):
        if cell is pgoutput.UNCHANGED or (identity_only and not column.is_identity):
            continue
        values[column.name] = canonical_key_value(column.type_oid, _cell_text(cell))
    return values


def project_key(
    table: TableRef,
    key_columns: Sequence[str],
    values: Mapping[str, Any],
    fallback: Mapping[str, Any] | None = None,
) -> RowKey:
    """The key columns' values, a missing cell taken from `fallback` (the old tuple).

    The key is the document key, not the replica identity: under FULL or USING
    INDEX identity the identity columns would give ids no document has.
    """
    if not key_columns:
        raise UnkeyableChangeError(table)
    key: list[tuple[str, Any]] = []
    for name in key_columns:
        value = values.get(name)
        if value is None and fallback is not None:
            value = fallback.get(name)
        if value is None:
            raise UnkeyableChangeError(table)
        key.append((name, value))
    return tuple(key)


def plan_events(
    table: TableRef,
    relation: pgoutput.Relation,
    key_columns: Sequence[str],
    message: pgoutput.Insert | pgoutput.Update | pgoutput.Delete,
) -> list[ChangeEvent]:
    """The thin events one DML message turns into; an update that moves the key also deletes the old one."""
    if not any(c.is_identity for c in relation.columns) and (
        not isinstance(message, pgoutput.Insert) or not key_columns
    ):
        raise UnkeyableChangeError(table)
    if isinstance(message, pgoutput.Insert):
        new = tuple_values(relation, message.new)
        return [ChangeEvent("upsert", table, project_key(table, key_columns, new), new=new)]
    if isinstance(message, pgoutput.Delete):
        old = tuple_values(relation, message.old, identity_only=message.old_kind == "K")
        return [ChangeEvent("delete", table, project_key(table, key_columns, old), old=old)]
    new = tuple_values(relation, message.new)
    old: dict[str, Any] = {}
    if message.old is not None:
        old = tuple_values(relation, message.old, identity_only=message.old_kind == "K")
    new_key = project_key(table, key_columns, new, old)
    events: list[ChangeEvent] = []
    if old:
        try:
            old_key: RowKey | None = project_key(table, key_columns, old)
        except UnkeyableChangeError:
            old_key = None  # an identity index other than the key: the old key is not carried
        if old_key is not None and old_key != new_key:
            events.append(ChangeEvent("delete", table, old_key, old=old))
    events.append(ChangeEvent("upsert", table, new_key, old=old, new=new))
    return events


class MessageDispatcher:
    """Decodes one session's pgoutput payloads and releases each transaction's changes at its Commit.

    Every released change carries an ack from `watermark`, so the slot moves past a
    transaction only once all of its changes are confirmed.
    """

    def __init__(
        self,
        *,
        slot: str,
        watermark: AckWatermark,
        key_columns: KeyColumns,
        is_read: Callable[[TableRef], bool],
        table_of: TableOf = own_table,
    ) -> None:
        self._slot = slot
        self._watermark = watermark
        self._key_columns_of = key_columns
        self._is_read = is_read
        self._table_of = table_of
        self._relations: dict[int, pgoutput.Relation] = {}
        self._tables: dict[int, TableRef] = {}
        self._keys: dict[int, tuple[str, ...]] = {}
        self._txn: list[ChangeEvent] | None = None
        self._xid: int | None = None  # the open transaction's, from its Begin message

    async def feed(self, payload: bytes) -> list[Change]:
        """Apply one pgoutput message; the changes its transaction released (a Commit), else none."""
        try:
            message = pgoutput.decode_pgoutput(payload)
        except pgoutput.DecodeError as exc:
            raise malformed(self._slot, exc) from exc
        return await self.apply(message)

    async def apply(self, message: pgoutput.PgOutputMessage) -> list[Change]:
        if isinstance(message, pgoutput.Begin):
            self._txn = []
            self._xid = message.xid
            self._watermark.begin()
        elif isinstance(message, pgoutput.Commit):
            events = self._txn or []
            self._txn = None
            acks = self._watermark.commit(message.end_lsn, len(events))
            xid = self._xid
            return [Change(e, a, xid) for e, a in zip(events, acks, strict=True)]
        elif isinstance(message, pgoutput.Relation):
            self._relations[message.oid] = message
            self._keys.pop(message.oid, None)
            self._tables.pop(message.oid, None)
        elif isinstance(message, pgoutput.Insert | pgoutput.Update | pgoutput.Delete):
            await self._apply_dml(message)
        elif isinstance(message, pgoutput.Truncate):
            await self._warn_truncate(message)
        # Type, Origin, logical messages and unknown tags carry nothing to index.
        return []

    async def _table(self, relation: pgoutput.Relation) -> TableRef:
        table = self._tables.get(relation.oid)
        if table is None:
            table = await self._table_of(relation)
            self._tables[relation.oid] = table
        return table

    async def _warn_truncate(self, message: pgoutput.Truncate) -> None:
        for oid in message.relation_oids:
            relation = self._relations.get(oid)
            if relation is None:
                continue
            table = await self._table(relation)
            if self._is_read(table):
                logger.warning(
                    "TRUNCATE of %s was not applied: documents built from it may be "
                    "stale until their index is reindexed",
                    table,
                )

    async def _apply_dml(
        self, message: pgoutput.Insert | pgoutput.Update | pgoutput.Delete
    ) -> None:
        relation = self._relations.get(message.relation_oid)
        if relation is None:
            raise malformed(
                self._slot, f"change for unknown relation oid {message.relation_oid}"
            )
        table = await self._table(relation)
        if not self._is_read(table):
            # No index reads it, so its changes (keyed or not) address nothing; failing
            # on an unkeyable one would stop the stream over an unrelated table.
            logger.debug("ignoring a change of %s: no index reads it", table)
            return
        if self._txn is None:
            raise malformed(self._slot, f"change of {table} outside a transaction")
        key_columns = self._keys.get(relation.oid)
        if key_columns is None:
            key_columns = await self._key_columns_of(table, relation)
            self._keys[relation.oid] = key_columns
        self._txn.extend(plan_events(table, relation, key_columns, message))
