"""`PostgresDocumentBuilder`: changed rows → affected document ids → documents, in SQL.

Documents are assembled server-side in one statement per batch of up to 512
root keys; reverse resolution walks relation paths back to the root with one
`= ANY($1::type[])` lookup per distinct hop and batch. Key values travel as
Postgres text and are typed once, by `canonical_key_value`, with the root primary
key's type: typed by the foreign key's instead (an `int` pointing at a `bigint`),
an id would match no document and a live update would turn into a tombstone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import AsyncRawCursor

from flusso.adapters.postgres.catalog import CatalogCache, query_error
from flusso.adapters.postgres.connection import driver_hint
from flusso.adapters.postgres.document_sql import (
    CatalogFacts,
    DocumentSql,
    facts_needed,
    lookup_many_sql,
    lookup_row_sql,
    plan_document_sql,
)
from flusso.app.ports import SourceError, SourceUnavailableError
from flusso.domain.config.model import Deployment, IndexConfig
from flusso.domain.documents.change import (
    ChangeEvent,
    Delete,
    DocumentId,
    DocumentOp,
    TableRef,
    Upsert,
    render_key_value,
)
from flusso.domain.documents.decode import WireDocument, WirePlan, plan_wire
from flusso.domain.documents.keys import canonical_key_value
from flusso.domain.documents.resolution import Hop, ResolutionPath, plan_resolution_paths
from flusso.domain.documents.tables import declared_relation_keys
from flusso.domain.types import IndexMapping

logger = logging.getLogger(__name__)

BUILD_CHUNK = 512

# The transactions of `$1` (32-bit ids, as pgoutput sends them) that the statement's own
# snapshot does not yet see. Each id is widened to the 64-bit `xid8` nearest the
# snapshot's xmax (a committed id is within 2^31 of it), then checked against the
# snapshot. A commit is decoded once its record is flushed, which can be a moment before
# the committing session leaves the proc array, and only then do new snapshots see it.
NOT_YET_VISIBLE_SQL = """
SELECT u.x
FROM (SELECT pg_current_snapshot() AS snap) s
CROSS JOIN LATERAL (SELECT pg_snapshot_xmax(s.snap)::text::bigint AS xmax8) m
CROSS JOIN LATERAL unnest($1::bigint[]) AS u(x)
CROSS JOIN LATERAL (
  SELECT ((u.x - m.xmax8 % 4294967296) % 4294967296 + 4294967296) % 4294967296 AS ahead
) d
WHERE NOT pg_visible_in_snapshot(
  (m.xmax8 + CASE WHEN d.ahead >= 2147483648 THEN d.ahead - 4294967296 ELSE d.ahead END)
    ::text::xid8,
  s.snap)
"""
VISIBILITY_TIMEOUT = 30.0
"""Most root keys per batched document statement."""


@dataclass(frozen=True)
class _IndexPlan:
    """Everything needed to build one index's documents, computed once per builder."""

    index: IndexConfig
    sql: DocumentSql
    decode: WirePlan
    key_columns: tuple[tuple[str, str], ...]  # (column, format_type) of the root key
    key_oids: tuple[int, ...]
    batched: bool  # declared single-column primary key


@dataclass
class _Walk:
    """One path being walked upwards for one event: the current key texts at `depth`."""

    index: str
    path: ResolutionPath
    depth: int = 0
    key_column: str | None = None  # the event key column the first hop's inputs came from
    inputs: list[str] = field(default_factory=list)
    row_keys: list[tuple[tuple[str, str], ...]] = field(default_factory=list)
    direct: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    root_values: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class _HopLookup:
    """A batched hop query: match `match_column` of `table` against many keys, read `select_column`."""

    table: str
    match_column: str
    select_column: str


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else render_key_value(value)


def _dedup(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(values))


class PostgresDocumentBuilder:
    """The `DocumentBuilder` port over one Postgres database."""

    def __init__(self, url: str, deployment: Deployment, *, pool_size: int = 4) -> None:
        self._url = url
        self._indexes: tuple[IndexConfig, ...] = tuple(
            sorted(deployment.enabled_indexes(), key=lambda i: i.name)
        )
        self._by_name = {i.name: i for i in self._indexes}
        self._pool_size = max(1, pool_size)
        self._idle: list[psycopg.AsyncConnection] = []
        self._open_count = 0
        self._available: asyncio.Condition | None = None
        self._closing = False
        self._catalog = CatalogCache()
        self._plans: dict[str, _IndexPlan] = {}
        self._paths: dict[tuple[str, TableRef], list[ResolutionPath]] = {}
        self._warned: set[tuple[str, TableRef]] = set()
        self._relation_keys: dict[str, dict[str, str]] = {}

    # -- connections ----------------------------------------------------------

    async def open(self) -> None:
        """Open the first connection (more are opened on demand, up to `pool_size`)."""
        self._closing = False
        async with self._connection():
            pass

    async def close(self) -> None:
        """Close idle connections now; connections in use close when they are handed back."""
        self._closing = True
        idle, self._idle = self._idle, []
        for conn in idle:
            self._open_count -= 1
            await conn.close()

    async def _connect(self) -> psycopg.AsyncConnection:
        try:
            conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
            # Results must not depend on the server's defaults (timestamps and bytea
            # would otherwise come back in whatever form the server is configured for).
            await conn.execute("SET TimeZone = 'UTC'")
            await conn.execute("SET bytea_output = 'hex'")
        except psycopg.Error as exc:
            raise SourceUnavailableError(
                f"could not connect to Postgres to build documents: {exc}",
                hint=driver_hint(exc),
            ) from exc
        return conn

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        if self._available is None:
            self._available = asyncio.Condition()
        available = self._available
        async with available:
            while not self._idle and self._open_count >= self._pool_size:
                await available.wait()
            conn = self._idle.pop() if self._idle else None
            if conn is None:
                self._open_count += 1
        if conn is None:
            try:
                conn = await self._connect()
            except BaseException:
                async with available:
                    self._open_count -= 1
                    available.notify()
                raise
        try:
            yield conn
        finally:
            async with available:
                keep = not (self._closing or conn.closed or conn.broken)
                if keep:
                    self._idle.append(conn)
                else:
                    self._open_count -= 1
                available.notify()
            if not keep:
                await conn.close()

    @staticmethod
    async def _fetch(
        conn: psycopg.AsyncConnection, sql: str, params: Sequence[Any], what: str
    ) -> list[tuple[Any, ...]]:
        try:
            async with AsyncRawCursor(conn) as cursor:
                await cursor.execute(sql, params)
                return await cursor.fetchall()
        except psycopg.Error as exc:
            raise query_error(exc, what) from exc

    # -- plans ----------------------------------------------------------------

    def _declared_keys(self, index: IndexConfig) -> dict[str, str]:
        keys = self._relation_keys.get(index.name)
        if keys is None:
            keys = declared_relation_keys(index.schema)
            self._relation_keys[index.name] = keys
        return keys

    async def _relation_key(self, conn: psycopg.AsyncConnection, index: str, table: str) -> str:
        config = self._by_name[index]
        declared = self._declared_keys(config).get(table)
        return await self._catalog.require_relation_key(
            conn, config.schema.db_schema, table, declared
        )

    async def _plan(self, conn: psycopg.AsyncConnection, name: str) -> _IndexPlan:
        plan = self._plans.get(name)
        if plan is not None:
            return plan
        index = self._by_name.get(name)
        if index is None:
            raise SourceError(f"unknown or disabled index {name!r}")
        schema = index.schema
        db = schema.db_schema
        needed = facts_needed(schema)
        declared = self._declared_keys(index)
        primary_keys: dict[str, str] = {}
        for t in needed.tables:
            key = await self._catalog.relation_key(conn, db, t, declared.get(t))
            if key is not None:
                primary_keys[t] = key
        column_types = {
            (t, c): (await self._catalog.column(conn, db, t, c)).sql_type for t, c in needed.columns
        }
        sql = plan_document_sql(schema, CatalogFacts(primary_keys, column_types))
        if schema.primary_key is not None:
            key_names: tuple[str, ...] = (schema.primary_key,)
        else:
            key_names = await self._catalog.primary_key_columns(conn, db, schema.table)
            if not key_names:
                raise SourceError(
                    f"index {name}: table {db}.{schema.table} has no primary key",
                    hint="declare primary_key in the schema",
                )
        infos = [await self._catalog.column(conn, db, schema.table, c) for c in key_names]
        plan = _IndexPlan(
            index=index,
            sql=sql,
            decode=plan_wire(schema.fields),
            key_columns=tuple((c, i.sql_type) for c, i in zip(key_names, infos, strict=True)),
            key_oids=tuple(i.type_oid for i in infos),
            batched=schema.primary_key is not None,
        )
        self._plans[name] = plan
        return plan

    # -- build ------------------------------------------------------------------

    async def build_many(self, ids: Sequence[DocumentId]) -> list[DocumentOp]:
        by_index: dict[str, list[DocumentId]] = {}
        for doc_id in ids:
            by_index.setdefault(doc_id.index, []).append(doc_id)
        async with self._connection() as conn:
            plans = {name: await self._plan(conn, name) for name in by_index}
        jobs = []
        for name, group in by_index.items():
            plan = plans[name]
            if plan.batched and all(len(i.key) == 1 for i in group):
                jobs.extend(
                    self._build_chunk(plan, group[start:start + BUILD_CHUNK])
                    for start in range(0, len(group), BUILD_CHUNK)
                )
            else:
                jobs.extend(self._build_one(plan, doc_id) for doc_id in group)
        results = await asyncio.gather(*jobs, return_exceptions=True)
        ops: list[DocumentOp] = []
        for result in results:
            if isinstance(result, BaseException):
                raise result
            ops.extend(result)
        return ops

    async def await_visible(self, xids: Collection[int]) -> None:
        """Poll (0.5 ms, doubling to 10 ms) until every commit in `xids` is visible."""
        pending = sorted(set(xids))
        deadline = time.monotonic() + VISIBILITY_TIMEOUT
        pause = 0.0005
        while pending:
            async with self._connection() as conn:
                rows = await self._fetch(
                    conn, NOT_YET_VISIBLE_SQL, [pending], "checking that commits are visible"
                )
            pending = [int(x) for (x,) in rows]
            if not pending:
                return
            if time.monotonic() >= deadline:
                raise SourceError(
                    f"transaction(s) {', '.join(map(str, pending[:5]))} were decoded as "
                    f"committed but stayed invisible to new reads for {VISIBILITY_TIMEOUT:g}s",
                    hint="check the server for a stuck backend; flusso replays the batch "
                    "on restart",
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.01)

    @staticmethod
    def _key_texts(doc_id: DocumentId) -> list[str]:
        if any(v is None for v in doc_id.key):
            raise SourceError(f"cannot build {doc_id.index}/{doc_id.render()}: its key holds a null")
        return [render_key_value(v) for v in doc_id.key]

    async def _build_chunk(self, plan: _IndexPlan, chunk: Sequence[DocumentId]) -> list[DocumentOp]:
        (column, sql_type), oid = plan.key_columns[0], plan.key_oids[0]
        keys = [self._key_texts(doc_id)[0] for doc_id in chunk]
        sql = plan.sql.batched(column, sql_type, len(chunk))
        async with self._connection() as conn:
            rows = await self._fetch(
                conn, sql, [*plan.sql.params, *keys], f"building {plan.index.name} documents"
            )
        bodies = {canonical_key_value(oid, key): text for key, text in rows}
        ops: list[DocumentOp] = []
        for doc_id, key in zip(chunk, keys, strict=True):
            text = bodies.get(canonical_key_value(oid, key))
            if text is None:
                ops.append(Delete(doc_id))
            else:
                ops.append(Upsert(doc_id, WireDocument(text, plan.decode)))
        return ops

    async def _build_one(self, plan: _IndexPlan, doc_id: DocumentId) -> list[DocumentOp]:
        keys = self._key_texts(doc_id)
        if len(keys) != len(plan.key_columns):
            raise SourceError(
                f"cannot build {doc_id.index}/{doc_id.render()}: the id has {len(keys)} key "
                f"value(s) but the root key has {len(plan.key_columns)} column(s)"
            )
        sql = plan.sql.single(plan.key_columns)
        async with self._connection() as conn:
            rows = await self._fetch(
                conn, sql, [*plan.sql.params, *keys], f"building {doc_id.index}/{doc_id.render()}"
            )
        if not rows:
            return [Delete(doc_id)]
        return [Upsert(doc_id, WireDocument(rows[0][0], plan.decode))]

    # -- resolve ----------------------------------------------------------------

    def _paths_for(self, index: IndexConfig, table: TableRef) -> list[ResolutionPath]:
        cache_key = (index.name, table)
        paths = self._paths.get(cache_key)
        if paths is None:
            same_schema = table.schema == index.schema.db_schema
            paths = plan_resolution_paths(index.schema, table.name) if same_schema else []
            self._paths[cache_key] = paths
        return paths

    @staticmethod
    def _root_id(index: IndexConfig, event: ChangeEvent) -> DocumentId | None:
        pk = index.schema.primary_key
        if pk is None:
            return DocumentId(index.name, tuple(v for _, v in event.key))
        for column, value in event.key:
            if column == pk:
                return DocumentId(index.name, (value,))
        if len(event.key) == 1:
            return DocumentId(index.name, (event.key[0][1],))
        logger.warning(
            "change on %s carries no %s key column; index %s cannot address it",
            event.table, pk, index.name,
        )
        return None

    async def resolve(
        self, events: Sequence[ChangeEvent], *, roots_only: bool = False
    ) -> list[DocumentId]:
        slots: list[DocumentId | _Walk] = []
        for event in events:
            for index in self._indexes:
                schema = index.schema
                if event.table == TableRef(schema.db_schema, schema.table):
                    root = self._root_id(index, event)
                    if root is not None:
                        slots.append(root)
                if roots_only:
                    continue
                paths = self._paths_for(index, event.table)
                if not paths:
                    continue
                if schema.primary_key is None:
                    if (index.name, event.table) not in self._warned:
                        self._warned.add((index.name, event.table))
                        logger.warning(
                            "index %s declares no primary_key; cannot reverse-resolve changes "
                            "of %s", index.name, event.table,
                        )
                    continue
                for path in paths:
                    slots.append(self._start_walk(index.name, path, event))
        walks = [s for s in slots if isinstance(s, _Walk)]
        if walks:
            async with self._connection() as conn:
                await self._walk(conn, walks)
        seen: dict[DocumentId, None] = {}
        for slot in slots:
            if isinstance(slot, DocumentId):
                seen.setdefault(slot, None)
            else:
                for value in slot.root_values:
                    seen.setdefault(DocumentId(slot.index, (value,)), None)
        return list(seen)

    def _start_walk(self, index: str, path: ResolutionPath, event: ChangeEvent) -> _Walk:
        """The first hop's inputs come from the event key; tuple values the WAL carried are direct parents.

        The old tuple names the parent a deleted or moved child belonged to, which a
        lookup of the current row can no longer find.
        """
        hop = path.hops[0]
        walk = _Walk(index, path)
        key = [(column, _text(value)) for column, value in event.key]
        present = [(c, v) for c, v in key if v is not None]
        if hop.kind == "belongs_to":
            named = [v for c, v in present if c == hop.target_key]
            if named:
                walk.inputs = named
            elif len(present) == 1:
                walk.inputs = [present[0][1]]
            else:
                # A target with a composite key: the parents point at the key the join
                # declares, which the row's old and new tuples carry.
                walk.inputs = self._tuple_values(event, hop.target_key)
        elif hop.kind == "junction" and hop.through is not None and any(
            c == hop.through.left_key for c, _ in present
        ):
            walk.direct = [v for c, v in present if c == hop.through.left_key]
        elif len(present) == 1:
            walk.key_column, walk.inputs = present[0][0], [present[0][1]]
        elif hop.kind == "far":
            # A far table with a composite key: junction rows point at its declared key.
            declared = self._declared_keys(self._by_name[index]).get(hop.child_table)
            named = [v for c, v in present if c == declared]
            walk.inputs = named or self._tuple_values(event, declared)
            if not walk.inputs:
                logger.warning(
                    "change on %s carries no value of its key %s; its many-to-many parents "
                    "are not rebuilt", event.table, declared,
                )
        elif present:
            walk.row_keys = [tuple(present)]
        tuple_column = hop.tuple_column
        if tuple_column is not None:
            for values in (event.old, event.new):
                candidate = _text(values.get(tuple_column))
                if candidate is not None:
                    walk.direct.append(candidate)
        return walk

    @staticmethod
    def _tuple_values(event: ChangeEvent, column: str | None) -> list[str]:
        if column is None:
            return []
        found = (_text(values.get(column)) for values in (event.old, event.new))
        return _dedup([v for v in found if v is not None])

    async def _hop_lookup(
        self, conn: psycopg.AsyncConnection, index: str, hop: Hop, key_column: str | None
    ) -> _HopLookup:
        """Which table/columns one hop reads, resolving catalog keys where the model has none."""
        if hop.kind == "belongs_to":
            select = hop.parent_key or await self._relation_key(conn, index, hop.parent_table)
            return _HopLookup(hop.parent_table, hop.column or "", select)
        if hop.kind == "far" and hop.through is not None:
            return _HopLookup(hop.through.table, hop.through.right_key, hop.through.left_key)
        if hop.kind == "junction" and hop.through is not None:
            match = key_column or ""
            return _HopLookup(hop.through.table, match, hop.through.left_key)
        match = key_column or await self._relation_key(conn, index, hop.child_table)
        return _HopLookup(hop.child_table, match, hop.column or "")

    async def _walk(self, conn: psycopg.AsyncConnection, walks: list[_Walk]) -> None:
        """Advance every walk hop by hop; each round runs one query per distinct hop lookup."""
        active = walks
        while active:
            groups: dict[tuple[str, _HopLookup], list[_Walk]] = {}  # (schema, lookup) → walks
            for walk in active:
                hop = walk.path.hops[walk.depth]
                walk.outputs = list(walk.direct)
                if walk.row_keys:
                    walk.outputs += await self._row_lookups(conn, walk, hop)
                if walk.inputs:
                    key_column = walk.key_column if walk.depth == 0 else None
                    lookup = await self._hop_lookup(conn, walk.index, hop, key_column)
                    db = self._by_name[walk.index].schema.db_schema
                    groups.setdefault((db, lookup), []).append(walk)
            for (db, lookup), members in groups.items():
                await self._run_lookup(conn, db, lookup, members)
            still: list[_Walk] = []
            for walk in active:
                values = _dedup(walk.outputs)
                walk.depth += 1
                if walk.depth >= len(walk.path.hops):
                    await self._finish(conn, walk, values)
                    continue
                walk.inputs, walk.direct, walk.row_keys = values, [], []
                if values:
                    still.append(walk)
            active = still

    async def _run_lookup(
        self, conn: psycopg.AsyncConnection, db: str, lookup: _HopLookup, members: list[_Walk]
    ) -> None:
        info = await self._catalog.column(conn, db, lookup.table, lookup.match_column)
        oid = info.type_oid
        wanted = _dedup([v for walk in members for v in walk.inputs])
        sql = lookup_many_sql(db, lookup.table, lookup.match_column, info.sql_type, lookup.select_column)
        rows = await self._fetch(conn, sql, [wanted], f"resolving changes through {db}.{lookup.table}")
        found: dict[Any, list[str]] = {}
        for match, selected in rows:
            if selected is not None:
                found.setdefault(canonical_key_value(oid, match), []).append(selected)
        known = {canonical_key_value(oid, v) for v in wanted}
        # A row whose key text does not canonicalise like any input (an exotic key
        # type) is credited to every member, so it is rebuilt rather than lost.
        stray = [v for k, vs in found.items() if k not in known for v in vs]
        for walk in members:
            for value in walk.inputs:
                walk.outputs.extend(found.get(canonical_key_value(oid, value), ()))
            walk.outputs.extend(stray)

    async def _row_lookups(self, conn: psycopg.AsyncConnection, walk: _Walk, hop: Hop) -> list[str]:
        """Composite row keys cannot share an `ANY` array: one lookup per key."""
        db = self._by_name[walk.index].schema.db_schema
        table = hop.lookup_table
        select = hop.through.left_key if hop.through is not None else (hop.column or "")
        out: list[str] = []
        for row_key in walk.row_keys:
            typed = [
                (column, (await self._catalog.column(conn, db, table, column)).sql_type)
                for column, _ in row_key
            ]
            sql = lookup_row_sql(db, table, typed, select)
            rows = await self._fetch(
                conn, sql, [v for _, v in row_key], f"resolving changes through {db}.{table}"
            )
            out.extend(r[0] for r in rows if r[0] is not None)
        return out

    async def _finish(self, conn: psycopg.AsyncConnection, walk: _Walk, values: list[str]) -> None:
        if not values:
            return
        schema = self._by_name[walk.index].schema
        pk = schema.primary_key or ""
        oid = (await self._catalog.column(conn, schema.db_schema, schema.table, pk)).type_oid
        walk.root_values = list(dict.fromkeys(canonical_key_value(oid, v) for v in values))

    # -- scopes and mappings ----------------------------------------------------

    def backfill_scopes(self) -> list[tuple[str, TableRef]]:
        return [(i.name, TableRef(i.schema.db_schema, i.schema.table)) for i in self._indexes]

    def index_mappings(self) -> list[IndexMapping]:
        from flusso.domain.mapping import index_mapping  # written alongside; imported on use

        return [index_mapping(i.name, i.schema) for i in self._indexes]
