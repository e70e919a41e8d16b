"""`InMemoryServedIndex`: the ServedIndex port over documents held in memory, one version per write.

Every write takes the next sequence number, like one OpenSearch shard, so repairs
are conditional exactly as on a cluster. Tests stand in for live sync or for a
tamperer with `put` and `remove`; `documents(index)` reads back what is served.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any

from flusso.app.ports import (
    Comparison,
    Repair,
    RepairResult,
    ServedCopy,
    ServedId,
    SinkWriteError,
    Version,
)
from flusso.domain.documents.change import Delete, DocumentOp
from flusso.domain.documents.render import to_json_value

PRIMARY_TERM = 1

Refuser = Callable[[str, str], str | None]
"""`(index, id) -> reason` when the index must refuse a repair of that document, else None."""


class InMemoryServedIndex:
    """Served documents per logical index; an index exists once named in `indexes` or `put`.

    `refuse(index, id)` gives the reason the index refuses a repair write of that document.
    The scan reads the copies held when it starts, in id order.
    """

    def __init__(
        self,
        *,
        sink_name: str = "memory",
        indexes: Iterable[str] = (),
        refuse: Refuser | None = None,
        seed: int = 0,
    ) -> None:
        self.sink_name = sink_name
        self._docs: dict[str, dict[str, tuple[dict[str, Any], Version]]] = {
            name: {} for name in indexes
        }
        self._seq = 0
        self._refuse = refuse
        self._random = random.Random(seed)
        self.repairs: list[tuple[str, tuple[Repair, ...]]] = []
        """Every `repair` call: the index and its repairs, in order."""

    # -- what live sync (or a tamperer) does -----------------------------------------------

    def _next(self) -> Version:
        self._seq += 1
        return Version(self._seq, PRIMARY_TERM)

    def put(self, index: str, doc_id: str, document: Mapping[str, Any]) -> Version:
        """Write a copy unconditionally (as the sink's bulk `index` does)."""
        version = self._next()
        self._docs.setdefault(index, {})[doc_id] = (to_json_value(dict(document)), version)
        return version

    def remove(self, index: str, doc_id: str) -> None:
        """Delete a copy unconditionally; deleting is a write, so it takes a sequence number."""
        if self._docs.setdefault(index, {}).pop(doc_id, None) is not None:
            self._next()

    def documents(self, index: str) -> dict[str, dict[str, Any]]:
        return {i: copy.deepcopy(body) for i, (body, _) in self._docs.get(index, {}).items()}

    def version_of(self, index: str, doc_id: str) -> Version | None:
        held = self._docs.get(index, {}).get(doc_id)
        return None if held is None else held[1]

    # -- the port ---------------------------------------------------------------------------

    def _index(self, index: str) -> dict[str, tuple[dict[str, Any], Version]]:
        docs = self._docs.get(index)
        if docs is None:
            raise SinkWriteError(f"index {index}: no such index in sink {self.sink_name}")
        return docs

    async def count(self, index: str) -> int:
        return len(self._index(index))

    async def fetch(self, index: str, ids: Sequence[str]) -> dict[str, ServedCopy]:
        docs = self._index(index)
        return {
            i: ServedCopy(copy.deepcopy(docs[i][0]), docs[i][1]) for i in ids if i in docs
        }

    def compare(
        self, ops: Sequence[DocumentOp], served: Mapping[str, ServedCopy]
    ) -> list[Comparison]:
        comparisons: list[Comparison] = []
        for op in ops:
            held = served.get(op.id.render())
            version = held.version if held is not None else None
            if isinstance(op, Delete):
                verdict = "same" if held is None else "orphaned"
            elif held is None:
                verdict = "missing"
            else:
                verdict = "same" if _plain(op.document) == _plain(held.source) else "stale"
            comparisons.append(Comparison(op, verdict, version))
        return comparisons

    async def scan(self, index: str, page_size: int) -> AsyncIterator[list[ServedId]]:
        view = [ServedId(i, v) for i, (_, v) in sorted(self._index(index).items())]
        size = max(1, page_size)
        for start in range(0, len(view), size):
            yield view[start : start + size]

    async def sample(self, index: str, count: int) -> list[ServedId]:
        held = [ServedId(i, v) for i, (_, v) in sorted(self._index(index).items())]
        return self._random.sample(held, min(max(0, count), len(held)))

    async def repair(self, index: str, repairs: Sequence[Repair]) -> list[RepairResult]:
        docs = self._index(index)
        self.repairs.append((index, tuple(repairs)))
        results: list[RepairResult] = []
        for repair in repairs:
            doc_id = repair.op.id.render()
            held = docs.get(doc_id)
            current = held[1] if held is not None else None
            if current != repair.expected:
                results.append(RepairResult())  # another write came first
                continue
            if isinstance(repair.op, Delete):
                if held is None:
                    results.append(RepairResult())
                    continue
                del docs[doc_id]
                results.append(RepairResult(version=self._next()))
                continue
            reason = self._refuse(index, doc_id) if self._refuse is not None else None
            if reason is not None:
                results.append(RepairResult(refused=reason))
                continue
            version = self._next()
            docs[doc_id] = (to_json_value(dict(repair.op.document)), version)
            results.append(RepairResult(version=version))
        return results

    async def close(self) -> None:
        return None


def _plain(document: Mapping[str, Any]) -> str:
    return json.dumps(to_json_value(dict(document)), sort_keys=True)
