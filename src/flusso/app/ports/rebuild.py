"""What an online rebuild needs: the facts a sink shows about an index's generations, the
generation-level steps it carries out, and the running pipeline it writes beside."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from flusso.app.ports.sink import FlushReport
from flusso.domain.documents.change import DocumentId, DocumentOp
from flusso.domain.lifecycle import Meta
from flusso.domain.reindex import AliasAction, ClusterView, IndexNames
from flusso.domain.types import IndexMapping


class IndexFacts(Protocol):
    """What one generation-keeping sink shows about a logical index; reads only.

    `sink_name` names the sink in the journal. `read_marker` is the meta marker
    of the hash alias (None when absent or unreadable); `cluster_view` lists the
    alias holders in the order the sink gives them and the generation numbers
    that exist. Raises SinkError (SinkUnavailableError when retrying is safe).
    """

    sink_name: str

    def index_names(self, mapping: IndexMapping) -> IndexNames: ...

    async def read_marker(self, names: IndexNames) -> Meta | None: ...

    async def cluster_view(self, names: IndexNames) -> ClusterView: ...


class IndexAdmin(IndexFacts, Protocol):
    """The generation-level steps of a sink that keeps generations behind aliases.

    The same object is also the pipeline's `Sink`: `route_writes` changes where its
    `write` sends documents of a logical index (several generations = dual write;
    one generation of the active hash alias also becomes the generation
    `is_seeded`/`mark_seeded` act on). `write_generation` buffers into a second,
    separate buffer that only `flush_generations` sends, so a rebuild's backfill never
    mixes with live batches. Every call is idempotent: creating an existing index,
    dropping a missing one, or moving an alias where it already is succeeds.
    Raises SinkError (SinkUnavailableError when retrying is safe).
    """

    @property
    def refresh_interval(self) -> str: ...

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


WriteListener = Callable[[Sequence[DocumentId]], None]


class LiveWrites(Protocol):
    """The running pipeline, as an online rebuild sees it.

    `add_write_listener` calls the listener, inside the commit, with the document
    ids of every batch before they are written; it returns a function that removes
    it (calling that twice is harmless). `between_batches()` holds the commit gate:
    while inside, no batch is being resolved, built, written or flushed, and the
    sink's live buffer is empty.
    """

    def add_write_listener(self, listener: WriteListener) -> Callable[[], None]: ...

    def between_batches(self) -> AbstractAsyncContextManager[None]: ...
