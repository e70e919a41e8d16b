"""`InMemorySink`: the Sink port held in dictionaries, with faults injected through its constructor.

Same contract as the real sinks: writes only buffer, `flush` applies them in order
(deterministic ids, full replace, deletes of absent documents are not rejections),
`reindex` stages a fresh generation that `mark_seeded` swaps in.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from flusso.app.ports import FlushReport, RejectedDocument, SinkWriteError
from flusso.domain.documents.change import Delete, DocumentOp, Upsert
from flusso.domain.types import IndexMapping

Rejector = Callable[[str, str], str | None]
"""`(index, id) -> reason` when the sink must refuse that item, else None."""


class InMemorySink:
    """A Sink whose state lives in memory; `documents(index)` reads the serving generation.

    Faults: `reject(index, id)` returns a reason for every item to refuse (the
    rest of the flush is applied); `fail_flushes` makes that many flushes raise
    `SinkWriteError` before applying anything (the buffer is dropped, as a
    restarted run would rebuild it). `seeded` pre-marks indexes as seeded.
    """

    def __init__(
        self,
        *,
        seeded: Iterable[str] = (),
        reject: Rejector | None = None,
        fail_flushes: int = 0,
    ) -> None:
        self._reject = reject
        self._fail_flushes = fail_flushes
        self._serving: dict[str, dict[str, dict[str, Any]]] = {}
        self._staged: dict[str, dict[str, dict[str, Any]]] = {}
        self._seeded: set[str] = set(seeded)
        self._pending: list[DocumentOp] = []
        self.mappings: dict[str, IndexMapping] = {}
        self.flushes: list[tuple[tuple[DocumentOp, ...], bool]] = []
        """Every successful flush: the ops it applied (in write order) and its `caught_up`."""
        self.seeded_queries: list[str] = []
        """Every `is_seeded` call, in order."""
        self.seeded_marks: list[str] = []
        """Every `mark_seeded` call, in order."""
        self.closed = False

    # -- the port -----------------------------------------------------------

    async def ensure_index(self, mapping: IndexMapping) -> None:
        self.mappings[mapping.index] = mapping
        self._serving.setdefault(mapping.index, {})

    async def write(self, ops: Sequence[DocumentOp]) -> None:
        for op in ops:
            if not isinstance(op, Upsert | Delete):
                raise SinkWriteError(f"cannot write {type(op).__name__}: not a document op")
            self._pending.append(op)

    async def flush(self, caught_up: bool) -> FlushReport:
        ops, self._pending = tuple(self._pending), []
        if self._fail_flushes > 0:
            self._fail_flushes -= 1
            raise SinkWriteError(
                f"in-memory sink refused a flush of {len(ops)} operation(s) (injected failure)"
            )
        rejected: list[RejectedDocument] = []
        for op in ops:
            index, doc_id = op.id.index, op.id.render()
            reason = self._reject(index, doc_id) if self._reject is not None else None
            if reason is not None:
                rejected.append(RejectedDocument(index, doc_id, reason))
                continue
            target = self._target(index)
            if isinstance(op, Upsert):
                target[doc_id] = _plain(op.document)
            else:
                target.pop(doc_id, None)
        self.flushes.append((ops, caught_up))
        return FlushReport(rejected=tuple(rejected))

    async def is_seeded(self, index: str) -> bool:
        self.seeded_queries.append(index)
        return index in self._seeded

    async def mark_seeded(self, index: str) -> None:
        self.seeded_marks.append(index)
        staged = self._staged.pop(index, None)
        if staged is not None:
            self._serving[index] = staged
        self._seeded.add(index)

    async def reindex(self, mapping: IndexMapping) -> None:
        self.mappings.setdefault(mapping.index, mapping)
        self._serving.setdefault(mapping.index, {})
        self._staged[mapping.index] = {}
        self._seeded.discard(mapping.index)

    async def close(self) -> None:
        self.closed = True

    # -- read-back for tests ---------------------------------------------------

    def documents(self, index: str) -> dict[str, dict[str, Any]]:
        """The documents readers see for `index` (the serving generation), by `_id`."""
        return copy.deepcopy(self._serving.get(index, {}))

    def staged_documents(self, index: str) -> dict[str, dict[str, Any]] | None:
        """The generation a `reindex` is building, or None when none is staged."""
        staged = self._staged.get(index)
        return None if staged is None else copy.deepcopy(staged)

    def is_marked_seeded(self, index: str) -> bool:
        """The seeded flag, read without recording an `is_seeded` query."""
        return index in self._seeded

    @property
    def pending(self) -> tuple[DocumentOp, ...]:
        """Ops written since the last flush."""
        return tuple(self._pending)

    def _target(self, index: str) -> dict[str, dict[str, Any]]:
        # Writes land in a staged generation when one exists; readers stay on the
        # serving one until mark_seeded swaps them, like the OpenSearch hash alias.
        if index in self._staged:
            return self._staged[index]
        return self._serving.setdefault(index, {})


def _plain(document: Mapping[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(dict(document))
