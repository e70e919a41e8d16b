"""`PostgresChangeCapture`: the ChangeCapture port over a pgoutput logical replication slot.

It prepares the publication and the slot, and wires one replication session per
`live()` from the stream (`replication`), the message dispatcher (`dispatch`) and
the acknowledgement watermark (`watermark`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import psycopg

from flusso.adapters.postgres import pgoutput
from flusso.adapters.postgres.connection import connect_admin, parse_conninfo, translate
from flusso.adapters.postgres.dispatch import MessageDispatcher
from flusso.adapters.postgres.publication import Coverage, ensure_publication
from flusso.adapters.postgres.replication import ReplicationStream
from flusso.adapters.postgres.slot import check_slot_name, ensure_slot, refuse_active_slot
from flusso.adapters.postgres.snapshot import primary_key, snapshot_changes
from flusso.adapters.postgres.watermark import AckWatermark
from flusso.app.ports import Change
from flusso.domain.config.model import Deployment
from flusso.domain.documents.change import TableRef
from flusso.domain.documents.tables import required_tables, root_keys

logger = logging.getLogger(__name__)

# The relation itself first, then its parents up to the partition root.
_ANCESTORS_SQL = (
    "SELECT n.nspname, c.relname FROM pg_partition_ancestors(%s::oid::regclass) "
    "WITH ORDINALITY AS a(relid, depth) "
    "JOIN pg_class c ON c.oid = a.relid JOIN pg_namespace n ON n.oid = c.relnamespace "
    "ORDER BY a.depth"
)

LAG_SQL = (
    "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint AS lag "
    "FROM pg_replication_slots WHERE slot_name = %s"
)


class PostgresChangeCapture:
    """Changes of the tables the deployment reads, from a pgoutput replication slot."""

    def __init__(
        self,
        url: str,
        deployment: Deployment,
        *,
        slot: str = "flusso",
        publication: str = "flusso",
        manage_publication: bool | None = None,
        status_interval: float = 10.0,
        buffer_capacity: int = 4096,
    ) -> None:
        self._url = url
        self._deployment = deployment
        self.slot = slot
        self.publication = publication
        self._manage = (
            deployment.source.manage_publication
            if manage_publication is None
            else manage_publication
        )
        self._status_interval = status_interval
        self._capacity = max(1, buffer_capacity)
        self._required = frozenset(required_tables(deployment))
        self._roots = root_keys(deployment)
        self._params: dict[str, Any] | None = None
        self._admin: psycopg.AsyncConnection[Any] | None = None
        self._catalog_keys: dict[TableRef, list[tuple[str, int]] | None] = {}
        self._partition_roots: dict[int, TableRef] = {}
        self._stream: ReplicationStream | None = None
        self.coverage: Coverage | None = None

    # -- connections -------------------------------------------------------

    def _conninfo(self) -> dict[str, Any]:
        if self._params is None:
            self._params = parse_conninfo(self._url)
        return self._params

    async def _admin_conn(self) -> psycopg.AsyncConnection[Any]:
        if self._admin is None or self._admin.closed:
            self._admin = await connect_admin(self._conninfo())
        return self._admin

    # -- port --------------------------------------------------------------

    async def prepare(self) -> None:
        """Ensure publication coverage, then the slot, before the engine backfills.

        In that order: a change decoded while the slot exists but the publication does
        not fails the slot on every restart. Creating the slot before the backfill makes
        the snapshot and the stream overlap instead of leaving a gap.
        """
        check_slot_name(self.slot)  # before anything is created under a bad name
        conn = await self._admin_conn()
        await refuse_active_slot(conn, self.slot)
        self.coverage = await ensure_publication(
            conn, self.publication, sorted(self._required), self._manage
        )
        await ensure_slot(conn, self.slot)

    def live(self) -> AsyncIterator[Change]:
        return self._live()

    async def _live(self) -> AsyncIterator[Change]:
        check_slot_name(self.slot)
        watermark = AckWatermark()
        dispatcher = MessageDispatcher(
            slot=self.slot,
            watermark=watermark,
            key_columns=self._key_columns,
            is_read=self._required.__contains__,
            table_of=self._table_of,
        )
        stream = ReplicationStream(
            params=self._conninfo(),
            slot=self.slot,
            publication=self.publication,
            status_interval=self._status_interval,
            capacity=self._capacity,
            watermark=watermark,
            dispatcher=dispatcher,
        )
        self._stream = stream
        try:
            await stream.start()
            async for change in stream.changes():
                yield change
        finally:
            await stream.abort()
            if self._stream is stream:
                self._stream = None

    def snapshot(self, tables: Sequence[TableRef]) -> AsyncIterator[Change]:
        return snapshot_changes(self._conninfo(), list(tables), self._roots)

    async def lag(self) -> int | None:
        conn = await self._admin_conn()
        try:
            row = await (await conn.execute(LAG_SQL, (self.slot,))).fetchone()
        except psycopg.Error as exc:
            raise translate(exc, f"cannot read the lag of slot '{self.slot}'") from exc
        if row is None or row[0] is None:
            return None
        return max(0, int(row[0]))

    async def stop(self) -> None:
        stream = self._stream
        if stream is not None:
            await stream.stop()

    async def close(self) -> None:
        stream = self._stream
        if stream is not None:
            await stream.stop()
            await stream.abort()
        if self._admin is not None:
            await self._admin.close()
            self._admin = None

    # -- keys --------------------------------------------------------------

    @property
    def confirmed_lsn(self) -> int | None:
        """The watermark of the running stream (diagnostics and tests)."""
        return self._stream.watermark.confirmed if self._stream is not None else None

    async def _table_of(self, relation: pgoutput.Relation) -> TableRef:
        """The table an index reads that the relation belongs to: itself, or its partition root.

        Without `publish_via_partition_root` a partition's changes carry the partition's
        name; mapping them to the partitioned table the schema names keeps them, also for
        partitions created or attached after the start.
        """
        table = TableRef(relation.namespace, relation.name)
        if table in self._required:
            return table
        cached = self._partition_roots.get(relation.oid)
        if cached is not None:
            return cached
        conn = await self._admin_conn()
        try:
            rows = await (await conn.execute(_ANCESTORS_SQL, (relation.oid,))).fetchall()
        except psycopg.Error as exc:
            raise translate(exc, f"cannot read the partition parents of {table}") from exc
        found = next(
            (TableRef(str(s), str(n)) for s, n in rows if TableRef(str(s), str(n)) in self._required),
            table,
        )
        self._partition_roots[relation.oid] = found
        return found

    async def _key_columns(self, table: TableRef, relation: pgoutput.Relation) -> tuple[str, ...]:
        """The declared root key, else the catalog primary key, else the identity columns.

        The replica identity may be every column (FULL) or another unique index, neither
        of which is the key documents are addressed by.
        """
        declared = self._roots.get(table)
        if declared:
            return (declared,)
        if table not in self._catalog_keys:
            conn = await self._admin_conn()
            try:
                self._catalog_keys[table] = await primary_key(conn, table)
            except psycopg.Error as exc:
                raise translate(exc, f"cannot read the primary key of {table}") from exc
        catalog = self._catalog_keys[table]
        if catalog:
            return tuple(name for name, _ in catalog)
        return tuple(c.name for c in relation.columns if c.is_identity)
