"""`InMemoryLiveWrites`: a stand-in for the running pipeline, as an online rebuild sees it.

`commit(ids)` plays one batch: it takes the commit gate, tells every listener the batch's
ids, then records them as written, so a rebuild can be exercised without a pipeline.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from flusso.app.ports import WriteListener
from flusso.domain.documents.change import DocumentId


class InMemoryLiveWrites:
    """The LiveWrites port over a fair lock; `written` lists the ids of committed batches."""

    def __init__(self) -> None:
        self._gate = asyncio.Lock()
        self._listeners: list[WriteListener] = []
        self.written: list[DocumentId] = []

    def add_write_listener(self, listener: WriteListener) -> Callable[[], None]:
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    @asynccontextmanager
    async def between_batches(self) -> AsyncIterator[None]:
        async with self._gate:
            yield

    async def commit(self, ids: Sequence[DocumentId]) -> None:
        """One batch: listeners hear its ids inside the gate, before it is written."""
        async with self._gate:
            for listener in tuple(self._listeners):
                listener(list(ids))
            self.written.extend(ids)
