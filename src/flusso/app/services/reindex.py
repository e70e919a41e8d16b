"""Online reindex-and-swap: rebuild one index into a fresh
generation while the pipeline keeps running, carrying out `domain.reindex`'s plan step by
step and journaling each step's `before`/`after` event.

Ordering, in short: dual writes and the touched-id record start before the rebuild's
snapshot; the backfill writes only to the target, through its own buffer; afterwards the
touched ids are rebuilt from current rows while the pipeline's commit gate is held, so no
live batch is being built or flushed at the same time and none can be overtaken; then
both aliases move in one `_aliases` call and the old generation is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from flusso.app.pipeline.rejections import Policy, settle_rejections
from flusso.app.ports import (
    Change,
    DocumentBuilder,
    IndexAdmin,
    Journal,
    LiveWrites,
    Observer,
    RowSnapshot,
)
from flusso.app.ports.steps import perform
from flusso.app.services.startup import observe, reconcile_index
from flusso.domain.documents.change import DocumentId, TableRef
from flusso.domain.errors import FlussoError, LifecycleError
from flusso.domain.lifecycle import EventKind, LifecycleEvent, LifecycleState
from flusso.domain.reindex import (
    Backfill,
    DropGenerations,
    EndDualWrite,
    IndexNames,
    RebuildTouched,
    ReindexVerdict,
    StageTarget,
    StartDualWrite,
    Step,
    SwapAliases,
    can_request_reindex,
    event_for,
    plan_reindex,
)
from flusso.domain.types import IndexMapping

logger = logging.getLogger(__name__)

IndexProgress = Callable[[str, Literal["backfilling", "seeded"]], None]


class ReindexBusyError(LifecycleError):
    """The index is already being rebuilt or has a request waiting (HTTP 409): a second
    rebuild would only repeat the first."""


@dataclass
class _SinkRun:
    """One sink's part of a rebuild: its plan and where live writes of the index go now."""

    admin: IndexAdmin
    names: IndexNames
    steps: tuple[Step, ...]
    serving: str | None = None
    target: str | None = None
    swapped: bool = False


@dataclass
class _Touched:
    """Ids of the rebuilt index written by live batches since dual writes started."""

    logical: str
    ids: set[DocumentId] = field(default_factory=set)

    def __call__(self, ids: Sequence[DocumentId]) -> None:
        self.ids.update(i for i in ids if i.index == self.logical)


class ReindexCoordinator:
    """Rebuilds indexes online, one task per index, in every generation-keeping sink.

    `admins` are the OpenSearch sinks (the same objects the pipeline writes through);
    `live` is the running pipeline; `rows` opens the rebuild's own snapshot. Call
    `reindex`/`start` only once the pipeline has run `ensure_index` (it is live).
    """

    def __init__(
        self,
        journal: Journal,
        admins: Sequence[IndexAdmin],
        builder: DocumentBuilder,
        rows: RowSnapshot,
        live: LiveWrites,
        *,
        on_error: Callable[[str], Policy] | None = None,
        observer: Observer | None = None,
        on_progress: IndexProgress | None = None,
        chunk_size: int = 256,
        skip_backfill: bool = False,
    ) -> None:
        self._journal = journal
        self._admins = tuple(admins)
        self._builder = builder
        self._rows = rows
        self._live = live
        self._on_error: Callable[[str], Policy] = on_error or (lambda _index: "stop")
        self._observer = observer
        self._on_progress = on_progress
        self._chunk_size = max(1, chunk_size)
        self._skip_backfill = skip_backfill
        self._mappings = {m.index: m for m in builder.index_mappings()}
        self._roots: dict[str, TableRef] = dict(builder.backfill_scopes())
        self._running: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- requests ---------------------------------------------------------------------

    async def is_busy(self, index: str) -> bool:
        """True when a request for `index` must be refused with 409."""
        return not (await self._verdict(index)).allowed

    async def request(self, index: str) -> None:
        """Journal `reindex_requested` in every sink, so a crash before the rebuild starts
        keeps it (`pending_requests` after a restart). ReindexBusyError when refused."""
        verdict = await self._verdict(index)
        if not verdict.allowed:
            raise ReindexBusyError(verdict.reason or f"reindex of {index} already in progress")
        for admin in self._admins:
            names = admin.index_names(self._mapping(index))
            await self._journal.record(
                LifecycleEvent(
                    sink=admin.sink_name,
                    logical=index,
                    hash_alias=names.hash_alias,
                    kind=EventKind.REINDEX_REQUESTED,
                    detail={"origin": "request"},
                )
            )

    def start(
        self, index: str, *, done: Callable[[str], object] | None = None
    ) -> asyncio.Task[None]:
        """Run `reindex(index)` as a background task; `done(index)` is called when it ends.
        A failure is logged (the rebuild resumes at the next start), not raised."""

        async def run() -> None:
            try:
                await self.reindex(index)
            except FlussoError as exc:
                logger.error(
                    "online reindex failed; it resumes at the next start",
                    extra={"index": index, "error": str(exc)},
                )
            finally:
                if done is not None:
                    done(index)

        task = asyncio.create_task(run(), name=f"reindex-{index}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        """Cancel running rebuilds (shutdown); each resumes at the next start."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- the rebuild --------------------------------------------------------------

    async def reindex(self, index: str) -> None:
        """Rebuild `index` into a fresh generation in every sink, with live sync running."""
        mapping = self._mapping(index)
        if index in self._running:
            raise ReindexBusyError(f"reindex of {index} already in progress")
        self._running.add(index)
        try:
            await self._reindex(mapping)
        finally:
            self._running.discard(index)

    async def _reindex(self, mapping: IndexMapping) -> None:
        index = mapping.index
        runs: list[_SinkRun] = []
        for admin in self._admins:
            state = await reconcile_index(self._journal, admin, mapping)
            names = admin.index_names(mapping)
            _, view = await observe(admin, names)
            steps = plan_reindex(state, names, view, refresh_interval=admin.refresh_interval)
            runs.append(_SinkRun(admin, names, steps))
        if not runs:
            logger.info("no sink keeps generations; nothing to rebuild", extra={"index": index})
            return
        logger.info(
            "reindex requested; rebuilding online while live sync continues",
            extra={"index": index},
        )
        touched = _Touched(index)
        remove_listener: Callable[[], None] | None = None
        try:
            for position in range(len(runs[0].steps)):
                step = runs[0].steps[position]
                group = [(run, run.steps[position]) for run in runs]
                if isinstance(step, StartDualWrite) and remove_listener is None:
                    # Before any route changes: a batch written to the target is recorded.
                    remove_listener = self._live.add_write_listener(touched)
                if isinstance(step, Backfill):
                    await self._journaled(group, self._backfill(mapping, group))
                elif isinstance(step, RebuildTouched) and remove_listener is not None:
                    rebuild = self._rebuild_touched(touched, group, remove_listener)
                    await self._journaled(group, rebuild)
                else:
                    for run, own in group:
                        await self._journaled([(run, own)], self._run_step(mapping, run, own))
        except (FlussoError, OSError) as exc:
            await self._abort(runs, exc)
            raise
        finally:
            if remove_listener is not None:
                remove_listener()  # idempotent; normally already gone after RebuildTouched
        if self._on_progress is not None:
            self._on_progress(index, "seeded")
        logger.info(
            "reindex complete; serving the new generation",
            extra={"index": index, "generation": runs[0].target},
        )

    async def _journaled(
        self, group: Sequence[tuple[_SinkRun, Step]], work: Awaitable[None]
    ) -> None:
        """Record each `before` event, run the step, then record each `after` event."""
        try:
            for run, step in group:
                if step.before is not None:
                    await self._record(run, step, step.before)
        except BaseException:
            _discard(work)
            raise
        await work
        for run, step in group:
            if step.after is not None:
                await self._record(run, step, step.after)

    async def _record(self, run: _SinkRun, step: Step, kind: EventKind) -> None:
        await self._journal.record(event_for(step, kind, sink=run.admin.sink_name, names=run.names))

    async def _run_step(self, mapping: IndexMapping, run: _SinkRun, step: Step) -> None:
        admin = run.admin
        if isinstance(step, StartDualWrite | EndDualWrite):
            if isinstance(step, StartDualWrite):
                run.serving, run.target = step.serving, step.target
            # Under the gate: no batch is mid-commit when its routes change, so none holds
            # actions for a generation it should not write to.
            async with self._live.between_batches():
                await perform(admin, mapping, step)
            if isinstance(step, StartDualWrite) and self._on_progress is not None:
                self._on_progress(mapping.index, "backfilling")
            return
        failure = await perform(admin, mapping, step)
        if failure is not None:
            logger.warning(
                "could not point the convenience alias at the index; writes are unaffected",
                extra={"alias": run.names.bare_alias, "index": run.target, "error": str(failure)},
            )
        if isinstance(step, SwapAliases):
            run.swapped = True
        elif isinstance(step, StageTarget):
            logger.info(
                "staged a rebuild into a new generation",
                extra={"index": mapping.index, "generation": run.names.generation(step.generation)},
            )
        elif isinstance(step, DropGenerations) and step.indexes:
            logger.info(
                "dropped superseded generations",
                extra={"index": mapping.index, "generations": ",".join(step.indexes)},
            )

    async def _backfill(
        self, mapping: IndexMapping, group: Sequence[tuple[_SinkRun, Step]]
    ) -> None:
        """Seed every target from one snapshot of the index's root rows; targets only."""
        index = mapping.index
        root = self._roots.get(index)
        targets = [(run.admin, step.index) for run, step in group if isinstance(step, Backfill)]
        if root is None:
            return
        logger.info(
            "backfilling the new generation",
            extra={"index": index, "generations": ",".join(t for _, t in targets)},
        )
        count = 0
        async for chunk in _chunks(self._rows.snapshot([root]), self._chunk_size):
            ids = await self._builder.resolve([c.event for c in chunk], roots_only=True)
            ids = [i for i in ids if i.index == index]
            count += await self._write(ids, targets)
        logger.info(
            "backfill of the new generation done", extra={"index": index, "documents": count}
        )

    async def _rebuild_touched(
        self,
        touched: _Touched,
        group: Sequence[tuple[_SinkRun, Step]],
        remove_listener: Callable[[], None],
    ) -> None:
        """Rebuild the ids live batches wrote during the backfill, from current rows."""
        targets = [
            (run.admin, step.index) for run, step in group if isinstance(step, RebuildTouched)
        ]
        # Taken at a batch boundary: every batch that could have built a document
        # before the backfill wrote it has committed and been recorded by now; later
        # batches build from rows newer than anything the backfill read.
        async with self._live.between_batches():
            ids = sorted(touched.ids)
            remove_listener()
        for start in range(0, len(ids), self._chunk_size):
            async with self._live.between_batches():
                await self._write(ids[start : start + self._chunk_size], targets)
        logger.info(
            "rebuilt documents changed during the backfill",
            extra={"index": touched.logical, "documents": len(ids)},
        )

    async def _write(
        self, ids: Sequence[DocumentId], targets: Sequence[tuple[IndexAdmin, str]]
    ) -> int:
        if not ids:
            return 0
        ops = await self._builder.build_many(ids)
        for admin, generation in targets:
            await admin.write_generation(generation, ops)
        for admin, _ in targets:
            settle_rejections(await admin.flush_generations(), self._on_error, self._observer)
        return len(ops)

    async def _abort(self, runs: Sequence[_SinkRun], error: BaseException) -> None:
        """Leave the sink serving readers current data and journal the failure; the journal
        state stays where the rebuild stopped, so the next start resumes it."""
        for run in runs:
            keep = run.target if run.swapped else run.serving
            if keep is not None and run.target is not None:
                async with self._live.between_batches():
                    run.admin.route_writes(run.names.logical, (keep,))
            await self._journal.record(
                LifecycleEvent(
                    sink=run.admin.sink_name,
                    logical=run.names.logical,
                    hash_alias=run.names.hash_alias,
                    kind=EventKind.RUN_FAILED,
                    detail={"error": str(error), "during": "online reindex"},
                )
            )

    # -- helpers --------------------------------------------------------------------

    async def _verdict(self, index: str) -> ReindexVerdict:
        states = [] if index in self._running else await self._states(index)
        return can_request_reindex(
            index,
            states,
            queued=index in self._running,
            skip_backfill=self._skip_backfill,
        )

    async def _states(self, index: str) -> list[LifecycleState]:
        """Each sink's lifecycle of `index`, reconciled first: a rebuild a crash left
        behind may have been finished by the start's backfill since the journal last
        heard of it."""
        mapping = self._mapping(index)
        return [await reconcile_index(self._journal, admin, mapping) for admin in self._admins]

    def _mapping(self, index: str) -> IndexMapping:
        mapping = self._mappings.get(index)
        if mapping is None:
            raise LifecycleError(
                f"unknown index {index}",
                hint="reindex takes the name of an enabled [[index]] entry",
            )
        return mapping


async def _chunks(stream: AsyncIterator[Change], size: int) -> AsyncIterator[list[Change]]:
    chunk: list[Change] = []
    try:
        async for change in stream:
            chunk.append(change)
            if len(chunk) >= size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


def _discard(work: Awaitable[None]) -> None:
    """Close a coroutine that will not be awaited (its step never started)."""
    close = getattr(work, "close", None)
    if close is not None:
        close()
