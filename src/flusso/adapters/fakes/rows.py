"""`InMemoryRootRows`: the RootRows port over the rows an `InMemoryDocumentBuilder` builds from.

Hand it the builder's `tables` so both see the same "database"; ids are ordered by
key value, and a row counts as existing whether or not the index's filter keeps it.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from flusso.adapters.fakes.builder import InMemoryIndex, Row
from flusso.app.ports import SourceError
from flusso.domain.documents.change import DocumentId, RowKey, TableRef


class InMemoryRootRows:
    def __init__(
        self,
        indexes: Sequence[InMemoryIndex],
        tables: Mapping[TableRef, Mapping[RowKey, Row]],
        *,
        seed: int = 0,
    ) -> None:
        self._indexes = {index.name: index for index in indexes}
        self._tables = tables  # shared with the builder: not copied
        self._random = random.Random(seed)
        self.closed = False

    def _ids(self, index: str) -> list[DocumentId]:
        config = self._indexes.get(index)
        if config is None:
            raise SourceError(f"unknown or disabled index {index!r}")
        keys = self._tables.get(config.root, {})
        if any(len(key) != 1 for key in keys):
            raise SourceError(
                f"index {index}: table {config.root} has a composite key; verify walks a "
                "single-column root key"
            )
        return sorted(DocumentId(index, (key[0][1],)) for key in keys)

    async def estimate(self, index: str) -> int | None:
        return len(self._ids(index))

    async def pages(self, index: str, page_size: int) -> AsyncIterator[list[DocumentId]]:
        size = max(1, page_size)
        last: Any = None
        while True:
            # Re-read on every page, as the real walk does: rows may come and go meanwhile.
            ids = [d for d in self._ids(index) if last is None or d.key[0] > last]
            page = ids[:size]
            if not page:
                return
            yield page
            if len(page) < size:
                return
            last = page[-1].key[0]

    async def sample(self, index: str, count: int) -> list[DocumentId]:
        ids = self._ids(index)
        return self._random.sample(ids, min(max(0, count), len(ids)))

    async def existing(self, index: str, ids: Sequence[str]) -> set[str]:
        present = {doc.render() for doc in self._ids(index)}
        return {one for one in ids if one in present}

    async def close(self) -> None:
        self.closed = True
