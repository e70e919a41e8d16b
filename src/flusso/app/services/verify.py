"""Use case `flusso verify`: prove that each index serves what the database implies, and repair it.

Both sides are walked in bounded pages: every root row's document is built and
compared with the copy the index serves, then every served id is checked against
the root rows. A difference counts as drift only once it has settled: the copy is
re-read and the document rebuilt after `settle` seconds, and a copy that was written
in between (live sync at work) is looked at again instead of being reported. Repairs
are conditional writes decided against the copy read before the rebuild, so a newer
write always wins; docs/design/verify.md holds the argument.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from flusso.app.ports import (
    DocumentBuilder,
    Repair,
    RootRows,
    ServedId,
    ServedIndex,
    Version,
)
from flusso.domain.documents.change import Delete, DocumentId, Upsert
from flusso.domain.errors import FlussoError

logger = logging.getLogger(__name__)

KINDS = ("missing", "stale", "orphaned")
"""The kinds of drift, in report order."""


class UnknownIndexError(FlussoError):
    """`--index` named an index the config lacks or has disabled (a usage error)."""


def select_indexes(
    enabled: Sequence[str], configured: Sequence[str], requested: Sequence[str]
) -> list[str]:
    """The indexes to verify: every enabled one by default, else the requested ones in order."""
    if not requested:
        return list(enabled)
    chosen: list[str] = []
    for name in requested:
        if name not in enabled:
            known = ", ".join(enabled) or "none"
            why = "is disabled in the config" if name in configured else "is not in the config"
            raise UnknownIndexError(
                f"unknown index {name!r}: it {why}",
                hint=f"the enabled indexes are: {known}",
            )
        if name not in chosen:
            chosen.append(name)
    return chosen


@dataclass
class IndexDrift:
    """What verification found in one index of one sink."""

    index: str
    sink: str
    checked: int = 0
    missing: int = 0
    stale: int = 0
    orphaned: int = 0
    repaired: int = 0
    unsettled: int = 0
    """Differences that kept being rewritten through every look (live sync at work): not drift."""
    refused: int = 0
    """Repairs the sink refused (the document breaks its mapping, say); they stay drift."""
    examples: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in KINDS})
    refusals: list[str] = field(default_factory=list)

    @property
    def found(self) -> int:
        return self.missing + self.stale + self.orphaned

    @property
    def left(self) -> int:
        return self.found - self.repaired

    def to_json(self, *, verbose: bool = False, with_sink: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {"index": self.index}
        if with_sink:
            data["sink"] = self.sink
        data.update(
            checked=self.checked,
            missing=self.missing,
            stale=self.stale,
            orphaned=self.orphaned,
            repaired=self.repaired,
        )
        if verbose:
            data["ids"] = {kind: list(ids) for kind, ids in self.examples.items()}
            data["unsettled"] = self.unsettled
            if self.refusals:
                data["refused"] = list(self.refusals)
        return data


@dataclass(frozen=True)
class VerifyReport:
    drifts: tuple[IndexDrift, ...]
    sampled: bool = False
    repair: bool = False

    @property
    def drift_left(self) -> bool:
        return any(d.left for d in self.drifts)

    def to_json(self, *, verbose: bool = False) -> dict[str, Any]:
        with_sink = len({d.sink for d in self.drifts}) > 1
        return {"indexes": [d.to_json(verbose=verbose, with_sink=with_sink) for d in self.drifts]}


class VerifyProgress(Protocol):
    """Where a long verification reports how far it got (a progress bar, a status page)."""

    def index_started(self, sink: str, index: str, total: int | None) -> None: ...

    def advanced(self, count: int) -> None: ...

    def index_finished(self, drift: IndexDrift) -> None: ...


class _NoProgress:
    def index_started(self, sink: str, index: str, total: int | None) -> None:
        return None

    def advanced(self, count: int) -> None:
        return None

    def index_finished(self, drift: IndexDrift) -> None:
        return None


@dataclass(frozen=True)
class VerifyOptions:
    repair: bool = False
    sample: int | None = None
    """Check this many random root rows and this many random served ids per index."""
    settle: float = 2.0
    """Seconds a difference must persist before it counts (live sync's lag must be shorter)."""
    looks: int = 3
    """Looks at a difference whose copy keeps being rewritten, before it is left to live sync."""
    page_size: int = 1000
    parallel_pages: int = 2
    max_pending: int = 10_000
    """Differences waiting to settle; beyond this the walk pauses to settle the oldest."""
    examples: int = 10


def _first(group: BaseExceptionGroup) -> BaseException:
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


@dataclass
class _Candidate:
    """A difference waiting to settle. `doc` is None for a served id with no root row."""

    served_id: str
    doc: DocumentId | None
    version: Version | None
    due: float
    looks: int = 1


class Verifier:
    """Compares and repairs the given indexes of every served index (one per sink)."""

    def __init__(
        self,
        builder: DocumentBuilder,
        rows: RootRows,
        served: Sequence[ServedIndex],
        options: VerifyOptions | None = None,
        *,
        progress: VerifyProgress | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self._builder = builder
        self._rows = rows
        self._served = tuple(served)
        self._options = options or VerifyOptions()
        self._progress = progress or _NoProgress()
        self._clock = clock
        self._sleep = sleep

    async def run(self, indexes: Sequence[str]) -> VerifyReport:
        drifts: list[IndexDrift] = []
        for served in self._served:
            for index in indexes:
                drifts.append(await _IndexRun(self, served, index).run())
        return VerifyReport(
            tuple(drifts), sampled=self._options.sample is not None, repair=self._options.repair
        )


class _IndexRun:
    """One index of one sink: the walk of both sides, the settling queue and the repairs."""

    def __init__(self, verifier: Verifier, served: ServedIndex, index: str) -> None:
        self._v = verifier
        self._o = verifier._options
        self._served = served
        self._index = index
        self._drift = IndexDrift(index, served.sink_name)
        self._pending: deque[_Candidate] = deque()
        self._waiting: set[str] = set()  # ids in `_pending`: one look at a time per id

    async def run(self) -> IndexDrift:
        o, drift = self._o, self._drift
        logger.info(
            "verifying index %s in sink %s%s%s", self._index, drift.sink,
            f" (sample of {o.sample})" if o.sample is not None else "",
            " with repair" if o.repair else "",
        )
        self._v._progress.index_started(drift.sink, self._index, await self._total())
        if o.sample is not None:
            sample = await self._v._rows.sample(self._index, o.sample)
            for start in range(0, len(sample), o.page_size):
                await self._check_rows(sample[start : start + o.page_size])
                await self._settle(force=False)
            served = await self._served.sample(self._index, o.sample)
            for start in range(0, len(served), o.page_size):
                await self._check_served(served[start : start + o.page_size])
                await self._settle(force=False)
        else:
            await self._walk_rows()
            async for page in self._served.scan(self._index, o.page_size):
                await self._check_served(page)
                await self._settle(force=False)
        await self._settle(force=True)
        logger.info(
            "verified index %s in sink %s: %d checked, %d missing, %d stale, %d orphaned, "
            "%d repaired", self._index, drift.sink, drift.checked, drift.missing, drift.stale,
            drift.orphaned, drift.repaired,
        )
        self._v._progress.index_finished(drift)
        return drift

    async def _total(self) -> int | None:
        if self._o.sample is not None:
            return 2 * self._o.sample
        rows = await self._v._rows.estimate(self._index)
        served = await self._served.count(self._index)
        return None if rows is None else rows + served

    # -- the database side: every root row's document against its served copy ----------

    async def _walk_rows(self) -> None:
        slots = asyncio.Semaphore(max(1, self._o.parallel_pages))

        async def check(page: list[DocumentId]) -> None:
            try:
                await self._check_rows(page)
            finally:
                slots.release()

        try:
            async with asyncio.TaskGroup() as group:
                async for page in self._v._rows.pages(self._index, self._o.page_size):
                    await slots.acquire()
                    group.create_task(check(page))
                    await self._settle(force=False)
        except BaseExceptionGroup as failed:
            # Pages fail for one cause (the source or the sink went away): report it alone.
            raise _first(failed) from None

    async def _check_rows(self, page: Sequence[DocumentId]) -> None:
        if not page:
            return
        # The copies are read before the documents are built (see `_recheck_rows`).
        copies = await self._served.fetch(self._index, [d.render() for d in page])
        ops = await self._v._builder.build_many(page)
        due = self._v._clock() + self._o.settle
        for comparison in self._served.compare(ops, copies):
            if comparison.verdict != "same":
                doc = comparison.op.id
                self._wait(_Candidate(doc.render(), doc, comparison.version, due))
        self._drift.checked += len(page)
        self._v._progress.advanced(len(page))

    # -- the index side: served ids without a root row ------------------------------------

    async def _check_served(self, page: Sequence[ServedId]) -> None:
        if not page:
            return
        existing = await self._v._rows.existing(self._index, [s.id for s in page])
        due = self._v._clock() + self._o.settle
        orphans = [s for s in page if s.id not in existing]
        for served_id in orphans:
            self._wait(_Candidate(served_id.id, None, served_id.version, due))
        # Ids with a root row were compared by the database side.
        self._drift.checked += len(orphans)
        self._v._progress.advanced(len(page))

    # -- settling ---------------------------------------------------------------------------

    def _wait(self, candidate: _Candidate) -> None:
        if candidate.served_id not in self._waiting:
            self._waiting.add(candidate.served_id)
            self._pending.append(candidate)

    async def _settle(self, *, force: bool) -> None:
        """Look again at the differences that are due; with `force` (or too many waiting),
        wait for them instead of returning."""
        while self._pending:
            must = force or len(self._pending) > self._o.max_pending
            now = self._v._clock()
            head = self._pending[0]
            if head.due > now:
                if not must:
                    return
                await self._v._sleep(head.due - now)
            batch: list[_Candidate] = []
            now = self._v._clock()
            while self._pending and len(batch) < self._o.page_size and self._pending[0].due <= now:
                batch.append(self._pending.popleft())
                self._waiting.discard(batch[-1].served_id)
            rows = [c for c in batch if c.doc is not None]
            served = [c for c in batch if c.doc is None]
            if rows:
                await self._recheck_rows(rows)
            if served:
                await self._recheck_served(served)

    async def _recheck_rows(self, batch: list[_Candidate]) -> None:
        # Read the copies first, then rebuild: every write that lands after this read
        # changes the version, so a repair conditioned on it can only replace a copy older
        # than the rows it was built from.
        copies = await self._served.fetch(self._index, [c.served_id for c in batch])
        ops = await self._v._builder.build_many([c.doc for c in batch if c.doc is not None])
        by_id = {c.op.id.render(): c for c in self._served.compare(ops, copies)}
        repairs: list[tuple[str, Repair]] = []
        for candidate in batch:
            comparison = by_id[candidate.served_id]
            if comparison.verdict == "same":
                continue
            if comparison.version != candidate.version:
                self._look_again(candidate, comparison.version)
                continue
            self._record(comparison.verdict, candidate.served_id)
            if self._o.repair:
                repairs.append((comparison.verdict, Repair(comparison.op, comparison.version)))
        await self._repair(repairs)

    async def _recheck_served(self, batch: list[_Candidate]) -> None:
        ids = [c.served_id for c in batch]
        copies = await self._served.fetch(self._index, ids)
        existing = await self._v._rows.existing(self._index, ids)
        repairs: list[tuple[str, Repair]] = []
        for candidate in batch:
            copy = copies.get(candidate.served_id)
            if copy is None or candidate.served_id in existing:
                continue  # deleted meanwhile, or its row appeared: nothing left to say
            if copy.version != candidate.version:
                self._look_again(candidate, copy.version)
                continue
            self._record("orphaned", candidate.served_id)
            if self._o.repair:
                # No root row, so no typed key: the id travels as its own text.
                doc = DocumentId(self._index, (candidate.served_id,))
                repairs.append(("orphaned", Repair(Delete(doc), copy.version)))
        await self._repair(repairs)

    def _look_again(self, candidate: _Candidate, version: Version | None) -> None:
        if candidate.looks >= self._o.looks:
            self._drift.unsettled += 1
            logger.debug(
                "index %s: %s kept changing through %d looks; left to live sync",
                self._index, candidate.served_id, candidate.looks,
            )
            return
        self._wait(
            replace(
                candidate,
                version=version,
                due=self._v._clock() + self._o.settle,
                looks=candidate.looks + 1,
            )
        )

    def _record(self, kind: str, served_id: str) -> None:
        setattr(self._drift, kind, getattr(self._drift, kind) + 1)
        examples = self._drift.examples[kind]
        if len(examples) < self._o.examples:
            examples.append(served_id)

    # -- repairs ------------------------------------------------------------------------------

    async def _repair(self, repairs: list[tuple[str, Repair]]) -> None:
        if not repairs:
            return
        results = await self._served.repair(self._index, [r for _, r in repairs])
        created: list[tuple[DocumentId, Version]] = []
        for (kind, repair), result in zip(repairs, results, strict=True):
            if result.refused is not None:
                self._drift.refused += 1
                if len(self._drift.refusals) < self._o.examples:
                    self._drift.refusals.append(f"{repair.op.id.render()}: {result.refused}")
                logger.warning(
                    "index %s: the sink refused the repair of %s %s: %s",
                    self._index, kind, repair.op.id.render(), result.refused,
                )
                continue
            # Applied, or another write reached the copy first: that write is newer than
            # what was compared, so the document no longer holds the drift found.
            self._drift.repaired += 1
            if result.version is not None and repair.expected is None and isinstance(
                repair.op, Upsert
            ):
                created.append((repair.op.id, result.version))
        await self._confirm_created(created)

    async def _confirm_created(self, created: list[tuple[DocumentId, Version]]) -> None:
        """Undo a creation that brought back a document whose row went away meanwhile.

        "Absent" is not a version: live sync may delete the copy between our read and our
        write, and the creation would then succeed. Rebuilding after the write sees that
        deletion; a copy still at our version is put right conditionally.
        """
        if not created:
            return
        ours = {doc.render(): version for doc, version in created}
        copies = await self._served.fetch(self._index, list(ours))
        ops = await self._v._builder.build_many([doc for doc, _ in created])
        fixes = [
            Repair(c.op, c.version)
            for c in self._served.compare(ops, copies)
            if c.verdict != "same" and c.version == ours[c.op.id.render()]
        ]
        if fixes:
            logger.info("index %s: %d repaired document(s) changed meanwhile; rewritten",
                        self._index, len(fixes))
            await self._served.repair(self._index, fixes)
