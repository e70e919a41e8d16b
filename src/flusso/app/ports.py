"""The seams the pipeline and the use cases depend on, and the errors they may raise.

Adapters satisfy these by shape (`typing.Protocol`); fakes in `adapters/fakes`
are held to the same contract suites as the real adapters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from flusso.domain.documents.change import ChangeEvent, DocumentId, DocumentOp, TableRef
from flusso.domain.errors import FlussoError
from flusso.domain.types import IndexMapping

# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class SourceError(FlussoError):
    """Postgres: unreachable, missing privilege, slot trouble, a failed query or bad WAL data."""


class SourceUnavailableError(SourceError):
    """The connection dropped or could not be opened; restarting the run may succeed."""


class SinkError(FlussoError):
    """The destination failed as a whole; nothing in the batch may be confirmed."""


class SinkWriteError(SinkError):
    """A write or flush failed (`write failed: …`)."""

    def __init__(self, detail: str, *, hint: str | None = None) -> None:
        super().__init__(f"write failed: {detail}", hint=hint)


class SinkSerializeError(SinkError):
    """A document could not be serialised (`serialization failed: …`)."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"serialization failed: {detail}")


class SinkUnavailableError(SinkWriteError):
    """Transient: the destination did not answer; retrying is safe."""


class DocumentsRejectedError(FlussoError):
    """The sink refused items whose index policy is `stop`."""

    def __init__(self, count: int, example: str) -> None:
        super().__init__(
            f"sink rejected {count} document(s) (e.g. {example}); stopping. "
            "set on-error=skip to quarantine rejected documents and continue"
        )
        self.count = count
        self.example = example


class JournalError(FlussoError):
    """The lifecycle journal could not be read or written."""


class JournalConflictError(JournalError):
    """Someone else moved the index first."""


# ---------------------------------------------------------------------------
# Capture
# ---------------------------------------------------------------------------


class Ack(Protocol):
    """Confirming means "durably applied downstream". Cheap, thread-safe, any order."""

    def confirm(self) -> None: ...


@dataclass(frozen=True)
class Change:
    """One captured change. `xid` is the source transaction that committed it (None for a
    snapshot change, which reads rows that were already visible)."""

    event: ChangeEvent
    ack: Ack
    xid: int | None = None


class NoAck:
    """The ack of a snapshot change: there is no source position to move."""

    def confirm(self) -> None:
        return None


class ChangeCapture(Protocol):
    """Where changes come from.

    `prepare` ensures publication coverage and then the slot (R-1); the engine
    calls it before any backfill. `live` resumes from the source's own durable
    position and yields changes until `stop` is called or the stream fails
    (raising SourceError). A change is redelivered after a restart unless its
    ack was confirmed. `snapshot` yields one upsert per existing row of the
    given tables, from one consistent view, with no-op acks.
    """

    async def prepare(self) -> None: ...

    def live(self) -> AsyncIterator[Change]: ...

    def snapshot(self, tables: Sequence[TableRef]) -> AsyncIterator[Change]: ...

    async def lag(self) -> int | None: ...

    async def stop(self) -> None:
        """Graceful end of `live`: send the final confirmed position and close the stream."""
        ...

    async def close(self) -> None: ...


# ---------------------------------------------------------------------------
# Documents
# ---------------------------------------------------------------------------


class DocumentBuilder(Protocol):
    """Turns changes into document ids and ids into documents, reading current rows.

    `resolve` returns the affected ids of a whole batch of events, deduplicated
    in first-seen order (reverse resolution, engine spec §7). With
    `roots_only` only root-table rows are mapped (backfill: each unseeded index
    is covered by its own root rows). `build_many` returns one op per id, in any
    order: an Upsert of the rebuilt document, or a Delete when no row came back.
    """

    async def resolve(
        self, events: Sequence[ChangeEvent], *, roots_only: bool = False
    ) -> list[DocumentId]: ...

    async def build_many(self, ids: Sequence[DocumentId]) -> list[DocumentOp]: ...

    async def await_visible(self, xids: Collection[int]) -> None:
        """Return once every transaction in `xids` is visible to new reads of the source.

        A commit can reach the replication stream a moment before other sessions see
        it; reading rows in that moment would rebuild a document from the old rows.
        """
        ...

    def backfill_scopes(self) -> list[tuple[str, TableRef]]:
        """`(index, root table)` for every enabled index, in index-name order."""
        ...

    def index_mappings(self) -> list[IndexMapping]: ...


# ---------------------------------------------------------------------------
# Sinks
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RejectedDocument:
    """An item the sink refused; `index` is the logical name."""

    index: str
    id: str
    reason: str


@dataclass(frozen=True)
class FlushReport:
    rejected: tuple[RejectedDocument, ...] = ()


class Sink(Protocol):
    """Destination for built documents.

    Writes are keyed by document id and safe to repeat; they may only buffer.
    `flush` is the durability point: the source may confirm a batch only after
    it returns. Raising SinkError from `flush` is a flush-wide failure; refused
    items are returned in the report instead. A delete of a document that does
    not exist is not a rejection. `caught_up` means no backlog: the sink should
    make the writes searchable at once.
    """

    async def ensure_index(self, mapping: IndexMapping) -> None: ...

    async def write(self, ops: Sequence[DocumentOp]) -> None: ...

    async def flush(self, caught_up: bool) -> FlushReport: ...

    async def is_seeded(self, index: str) -> bool: ...

    async def mark_seeded(self, index: str) -> None: ...

    async def reindex(self, mapping: IndexMapping) -> None: ...

    async def close(self) -> None: ...


# ---------------------------------------------------------------------------
# Observation
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchStats:
    changes: int
    documents: int
    documents_by_index: dict[str, int] = field(default_factory=dict)
    flush_seconds: float = 0.0


class Observer(Protocol):
    """Synchronous, cheap notifications from the pipeline (metrics, status, logs)."""

    def on_indexes_ensured(self, count: int) -> None: ...

    def on_backfill_started(self, indexes: Sequence[str]) -> None: ...

    def on_index_seeded(self, index: str) -> None: ...

    def on_backfill_completed(self) -> None: ...

    def on_live_started(self) -> None: ...

    def on_change_captured(self) -> None: ...

    def on_batch_committed(self, stats: BatchStats) -> None: ...

    def on_slot_lag(self, lag_bytes: int) -> None: ...

    def on_document_quarantined(self, index: str, id: str, reason: str) -> None: ...

    def on_changes_discarded(self, count: int) -> None: ...

    def on_error(self, message: str) -> None: ...


# ---------------------------------------------------------------------------
# Lifecycle journal  (owned by the journal work; append-only section)
# ---------------------------------------------------------------------------

# Imported here rather than at the top so this section stays self-contained.
from typing import Any  # noqa: E402

from flusso.domain.lifecycle import (  # noqa: E402
    EventKind,
    LifecycleEvent,
    LifecycleState,
    State,
)


@dataclass(frozen=True)
class JournalRecord:
    """One appended `lifecycle_events` row. Generations and `op_id` are the values after it."""

    event_id: int
    recorded_at: str
    run_id: str
    sink: str
    logical: str
    hash_alias: str
    event: EventKind
    state_before: State
    state_after: State
    serving_generation: int | None
    target_generation: int | None
    op_id: str | None
    detail: dict[str, Any]

    def to_event(self) -> LifecycleEvent:
        """The event as `apply` saw it, so `fold` over the records rebuilds the state row."""
        dropped = self.detail.get("dropped_generations", ())
        return LifecycleEvent(
            sink=self.sink,
            logical=self.logical,
            hash_alias=self.hash_alias,
            kind=self.event,
            generation=self.target_generation
            if self.event is not EventKind.SEEDED
            else self.serving_generation,
            serving_generation=self.serving_generation,
            derived=self.state_after if self.event is EventKind.RECONCILED else None,
            dropped=tuple(int(g) for g in dropped),
            op_id=self.op_id,
            detail=self.detail,
        )


@dataclass(frozen=True)
class JournalRow:
    """The `lifecycle_state` row of `(sink, hash_alias)`: the fold of its events."""

    sink: str
    logical: str
    hash_alias: str
    lifecycle: LifecycleState
    last_event_id: int
    updated_at: str

    def to_detail(self) -> dict[str, Any]:
        """The per-sink object of `GET /indexes?detail=true` (§3.8)."""
        return {
            "lifecycle": str(self.lifecycle.state),
            "hash_alias": self.hash_alias,
            "serving_generation": self.lifecycle.serving_generation,
            "target_generation": self.lifecycle.target_generation,
            "pending_request": self.lifecycle.pending_request,
            "updated_at": self.updated_at,
        }


class Journal(Protocol):
    """The durable record of every index lifecycle step, per `(sink, hash_alias)`.

    `record` appends one event and updates the state row in ONE transaction; the
    new state is `domain.lifecycle.apply(current, event)` (a forbidden transition
    raises LifecycleError and writes nothing). When the event opens an operation
    and carries no `op_id`, a fresh uuid is assigned. Events are append-only and
    ordered by `event_id`; the state row always equals the fold of its events.
    Raises JournalError when the journal cannot be read or written (fatal for
    `run`), and on any call after `close`.
    """

    async def record(self, event: LifecycleEvent) -> JournalRecord: ...

    async def current(self, sink: str, hash_alias: str) -> JournalRow | None: ...

    async def all_current(self) -> list[JournalRow]:
        """Every state row, ordered by `(sink, hash_alias)`."""
        ...

    async def events(
        self,
        sink: str | None = None,
        hash_alias: str | None = None,
        *,
        op_id: str | None = None,
        after_id: int = 0,
    ) -> list[JournalRecord]:
        """Matching events with `event_id > after_id`, oldest first."""
        ...

    async def close(self) -> None: ...


# ---------------------------------------------------------------------------
# Online reindex  (owned by the reindex work; append-only section)
# ---------------------------------------------------------------------------

from collections.abc import Callable  # noqa: E402
from contextlib import AbstractAsyncContextManager  # noqa: E402

from flusso.domain.lifecycle import Meta  # noqa: E402
from flusso.domain.reindex import AliasAction, ClusterView, IndexNames  # noqa: E402


class IndexAdmin(Protocol):
    """The generation-level side of a sink that keeps generations behind aliases (OpenSearch).

    The same object is also the pipeline's `Sink`: `route_writes` changes where its
    `write` sends documents of a logical index (several generations = dual write;
    one generation of the active hash alias also becomes the generation
    `is_seeded`/`mark_seeded` act on). `write_generation` buffers into a second,
    separate buffer that only `flush_generations` sends, so a rebuild's backfill never
    mixes with live batches. Every call is idempotent: creating an existing index,
    dropping a missing one, or moving an alias where it already is succeeds.
    Raises SinkError (SinkUnavailableError when retrying is safe).
    """

    sink_name: str

    @property
    def refresh_interval(self) -> str: ...

    def index_names(self, mapping: IndexMapping) -> IndexNames: ...

    async def read_marker(self, names: IndexNames) -> Meta | None: ...

    async def cluster_view(self, names: IndexNames) -> ClusterView:
        """Hash and bare alias holders (listing order) and the generation numbers that exist."""
        ...

    async def write_marker(self, hash_alias: str, generation: int, seeded: bool) -> None: ...

    async def create_generation(self, mapping: IndexMapping, index: str) -> bool:
        """Create `index` (refresh off) unless it exists; True when it was created now."""
        ...

    def route_writes(self, index: str, generations: Sequence[str]) -> None: ...

    async def write_generation(self, generation: str, ops: Sequence[DocumentOp]) -> None: ...

    async def flush_generations(self) -> FlushReport: ...

    async def refresh(self, index: str, interval: str) -> None:
        """Refresh `index` once, then set its `refresh_interval`."""
        ...

    async def swap_aliases(self, actions: Sequence[AliasAction]) -> None:
        """All `actions` in ONE atomic `_aliases` call (nothing when empty)."""
        ...

    async def drop(self, indexes: Sequence[str]) -> None: ...


class RowSnapshot(Protocol):
    """One consistent view of root rows, as in `ChangeCapture.snapshot`; each call opens its
    own read-only snapshot, so it may run while `live` streams."""

    def snapshot(self, tables: Sequence[TableRef]) -> AsyncIterator[Change]: ...


WriteListener = Callable[[Sequence[DocumentId]], None]


class LiveWrites(Protocol):
    """The running pipeline, as an online rebuild sees it.

    `add_write_listener` calls the listener, inside the commit, with the document
    ids of every batch before they are written; it returns a function that removes
    it. `between_batches()` holds the commit gate: while inside, no batch is being
    resolved, built, written or flushed, and the sink's live buffer is empty.
    """

    def add_write_listener(self, listener: WriteListener) -> Callable[[], None]: ...

    def between_batches(self) -> AbstractAsyncContextManager[None]: ...


# ---------------------------------------------------------------------------
# Verification  (owned by the verify work; append-only section)
# ---------------------------------------------------------------------------

from collections.abc import Mapping  # noqa: E402
from typing import Literal  # noqa: E402


@dataclass(frozen=True)
class Version:
    """One write of a served document (in OpenSearch: its sequence number and primary term).

    Two reads give equal versions exactly when nothing wrote the document in between.
    """

    seq_no: int
    primary_term: int


@dataclass(frozen=True)
class ServedCopy:
    """What an index serves under one id: the body and the write that put it there."""

    source: Mapping[str, Any]
    version: Version


@dataclass(frozen=True)
class ServedId:
    """One id an index serves, with the version it was seen at."""

    id: str
    version: Version


Verdict = Literal["same", "missing", "stale", "orphaned"]
"""How a served copy compares with the document the database implies: `same` (also when
neither side has one), `missing` (should exist, absent), `stale` (present but different),
`orphaned` (present, should not exist)."""


@dataclass(frozen=True)
class Comparison:
    """One built document (`op`; a Delete when the database implies none) against its copy."""

    op: DocumentOp
    verdict: Verdict
    version: Version | None  # of the served copy; None when the index has none


@dataclass(frozen=True)
class Repair:
    """Make the served copy of `op.id` what `op` says, but only if it still is `expected`
    (None: only if the index still has no copy)."""

    op: DocumentOp
    expected: Version | None


@dataclass(frozen=True)
class RepairResult:
    """`version` of the copy the repair wrote; `refused` when the sink refused the document;
    neither when another write reached the document first (that newer write wins)."""

    version: Version | None = None
    refused: str | None = None


class ServedIndex(Protocol):
    """The documents a sink serves for each logical index, read through the alias readers use,
    and repairs that only land on the copy they were decided against.

    `fetch` reads current copies by id in real time: any write acknowledged before the
    call is seen. `scan` yields every served id in pages from a view that may lag recent
    writes (by the refresh interval); ids written during the scan may or may not appear.
    `sample` returns up to `count` served ids picked at random. `compare` judges built
    documents against fetched copies as this sink would write them; it does no I/O.
    `repair` applies each write only when the served copy still matches `expected`; it is
    safe to repeat and never overwrites a copy written after the one it was decided
    against. `count` is the number of served documents. Raises SinkError
    (SinkUnavailableError when a retry may succeed), also for an index the sink lacks.
    """

    sink_name: str

    async def count(self, index: str) -> int: ...

    async def fetch(self, index: str, ids: Sequence[str]) -> dict[str, ServedCopy]: ...

    def compare(
        self, ops: Sequence[DocumentOp], served: Mapping[str, ServedCopy]
    ) -> list[Comparison]: ...

    def scan(self, index: str, page_size: int) -> AsyncIterator[list[ServedId]]: ...

    async def sample(self, index: str, count: int) -> list[ServedId]: ...

    async def repair(self, index: str, repairs: Sequence[Repair]) -> list[RepairResult]:
        """One result per repair, in order."""
        ...

    async def close(self) -> None: ...


class RootRows(Protocol):
    """Each index's root rows as document ids, read from the source without building documents.

    `pages` yields the id of every root row in key order, in pages of at most
    `page_size`, each page read by its own short statement, so no snapshot is held for
    the whole walk: rows inserted or deleted meanwhile may or may not appear. `sample`
    returns up to `count` ids picked at random. `existing` returns those of `ids` (spelt
    as the sink's `_id`) whose root row exists now. `estimate` is a cheap row count, None
    when the source has no statistics. Raises SourceError, also for an index whose root
    table has no single-column key.
    """

    async def estimate(self, index: str) -> int | None: ...

    def pages(self, index: str, page_size: int) -> AsyncIterator[list[DocumentId]]: ...

    async def sample(self, index: str, count: int) -> list[DocumentId]: ...

    async def existing(self, index: str, ids: Sequence[str]) -> set[str]: ...

    async def close(self) -> None: ...
