"""`InMemorySink`: the Sink port held in dictionaries, with faults injected through its constructor.

Same contract as the real sinks: writes only buffer, `flush` applies them in order
(deterministic ids, full replace, deletes of absent documents are not rejections),
`reindex` stages a fresh generation that `mark_seeded` swaps in.

It is also an `IndexAdmin`: named generations behind aliases, meta markers and
write routes, for online rebuilds. A logical index enters that model when a
generation, alias or route is set up for it; `documents(index)` then reads
through the bare alias.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from flusso.app.ports import FlushReport, RejectedDocument, SinkWriteError
from flusso.domain.documents.change import Delete, DocumentOp, Upsert
from flusso.domain.lifecycle import Meta
from flusso.domain.naming import convenience_alias, parse_generation
from flusso.domain.reindex import AliasAction, ClusterView, IndexNames
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
        sink_name: str = "memory",
        prefix: str = "",
        refresh_interval: str = "1s",
        refuse_aliases: Iterable[str] = (),
    ) -> None:
        self._reject = reject
        self._fail_flushes = fail_flushes
        self.sink_name = sink_name
        self._prefix = prefix
        self._refresh_interval = refresh_interval
        self.refuse_aliases: set[str] = set(refuse_aliases)
        """Aliases an `_aliases` call may not touch: the whole call fails (fault injection)."""
        self._generations: dict[str, dict[str, dict[str, Any]]] = {}
        self._aliases: dict[str, list[str]] = {}
        self._markers: dict[str, tuple[int, bool]] = {}
        self._routes: dict[str, tuple[str, ...]] = {}
        self._generation_pending: list[tuple[str, DocumentOp]] = []
        self.refresh_intervals: dict[str, str] = {}
        """The `refresh_interval` last set per generation."""
        self.alias_calls: list[tuple[AliasAction, ...]] = []
        """Every successful `swap_aliases` call, as one atomic group of actions."""
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
            routed = self._routes.get(index)
            targets = (
                [self._generations.setdefault(g, {}) for g in routed]
                if routed is not None
                else [self._target(index)]
            )
            for target in targets:
                _apply(target, doc_id, op)
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

    # -- IndexAdmin -----------------------------------------------------------

    @property
    def refresh_interval(self) -> str:
        return self._refresh_interval

    def index_names(self, mapping: IndexMapping) -> IndexNames:
        return IndexNames.of(self._prefix, mapping)

    async def read_marker(self, names: IndexNames) -> Meta | None:
        marker = self._markers.get(names.hash_alias)
        return None if marker is None else Meta(*marker)

    async def cluster_view(self, names: IndexNames) -> ClusterView:
        numbers = (parse_generation(names.hash_alias, name) for name in self._generations)
        return ClusterView(
            hash_holders=tuple(self._aliases.get(names.hash_alias, ())),
            bare_holders=tuple(self._aliases.get(names.bare_alias, ())),
            generations=tuple(sorted(n for n in numbers if n is not None)),
        )

    async def write_marker(self, hash_alias: str, generation: int, seeded: bool) -> None:
        self._markers[hash_alias] = (generation, seeded)

    async def create_generation(self, mapping: IndexMapping, index: str) -> bool:
        self.mappings.setdefault(mapping.index, mapping)
        if index in self._generations:
            return False
        self._generations[index] = {}
        self.refresh_intervals[index] = "-1"
        return True

    def route_writes(self, index: str, generations: Sequence[str]) -> None:
        self._routes[index] = tuple(generations)

    async def write_generation(self, generation: str, ops: Sequence[DocumentOp]) -> None:
        for op in ops:
            if not isinstance(op, Upsert | Delete):
                raise SinkWriteError(f"cannot write {type(op).__name__}: not a document op")
            self._generation_pending.append((generation, op))

    async def flush_generations(self) -> FlushReport:
        pending, self._generation_pending = self._generation_pending, []
        rejected: list[RejectedDocument] = []
        for generation, op in pending:
            index, doc_id = op.id.index, op.id.render()
            reason = self._reject(index, doc_id) if self._reject is not None else None
            if reason is not None:
                rejected.append(RejectedDocument(index, doc_id, reason))
                continue
            # Like OpenSearch, writing to a missing index creates it.
            _apply(self._generations.setdefault(generation, {}), doc_id, op)
        return FlushReport(rejected=tuple(rejected))

    async def refresh(self, index: str, interval: str) -> None:
        if index not in self._generations:
            raise SinkWriteError(f"refresh failed: no such index {index}")
        self.refresh_intervals[index] = interval

    async def swap_aliases(self, actions: Sequence[AliasAction]) -> None:
        if not actions:
            return
        refused = sorted({a.alias for a in actions} & self.refuse_aliases)
        if refused:
            raise SinkWriteError(f"alias update failed: alias {refused[0]} is refused")
        missing = [a.index for a in actions if a.index not in self._generations]
        if missing:
            raise SinkWriteError(f"alias update failed: no such index {missing[0]}")
        for action in actions:
            holders = self._aliases.setdefault(action.alias, [])
            if action.action == "remove" and action.index in holders:
                holders.remove(action.index)
            elif action.action == "add" and action.index not in holders:
                holders.append(action.index)
        self.alias_calls.append(tuple(actions))

    async def drop(self, indexes: Sequence[str]) -> None:
        for name in indexes:
            self._generations.pop(name, None)
            for holders in self._aliases.values():
                if name in holders:
                    holders.remove(name)

    # -- read-back for tests ---------------------------------------------------

    def documents(self, index: str) -> dict[str, dict[str, Any]]:
        """The documents readers see for `index` (through its bare alias when it has one,
        else the serving generation), by `_id`."""
        holders = self._aliases.get(convenience_alias(self._prefix, index))
        if holders:
            return copy.deepcopy(self._generations.get(holders[-1], {}))
        return copy.deepcopy(self._serving.get(index, {}))

    def generation_documents(self, generation: str) -> dict[str, dict[str, Any]] | None:
        """The documents of one named generation, or None when it does not exist."""
        docs = self._generations.get(generation)
        return None if docs is None else copy.deepcopy(docs)

    def generation_names(self) -> list[str]:
        return sorted(self._generations)

    def alias_holders(self, alias: str) -> list[str]:
        return list(self._aliases.get(alias, ()))

    def marker(self, hash_alias: str) -> tuple[int, bool] | None:
        return self._markers.get(hash_alias)

    def write_targets(self, index: str) -> tuple[str, ...] | None:
        """The generations live writes of `index` go to, when routed."""
        return self._routes.get(index)

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


def _apply(target: dict[str, dict[str, Any]], doc_id: str, op: DocumentOp) -> None:
    if isinstance(op, Upsert):
        target[doc_id] = _plain(op.document)
    else:
        target.pop(doc_id, None)


def _plain(document: Mapping[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(dict(document))
