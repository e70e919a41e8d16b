"""The `flusso run` loop: signals, the pipeline run, reindex requests, and shutdown.

Every part comes from the container. A first SIGINT/SIGTERM asks the pipeline to stop
gracefully (commit the open batch, confirm, final feedback); a second one exits at once
with 130/143, leaving the open batch for the replication slot to redeliver.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Sequence

from flusso.app.pipeline.engine import SyncPipeline
from flusso.app.ports import DocumentBuilder, IndexAdmin, Journal
from flusso.app.services.reindex import ReindexBusyError, ReindexCoordinator
from flusso.app.services.startup import reconcile_on_start
from flusso.domain.config.secrets import reserved_overrides
from flusso.domain.errors import FlussoError
from flusso.domain.types import IndexMapping
from flusso.entrypoints.container import Container, RunResource, close_resources, provided
from flusso.entrypoints.telemetry import Telemetry

logger = logging.getLogger("flusso.run")


class PipelineStoppedError(FlussoError):
    """The sync engine stopped on an error; the cause is the engine's error."""


class Daemon:
    """One `flusso run` process around the container's parts."""

    def __init__(self, container: Container) -> None:
        self._container = container
        # Checked before anything is bound or connected.
        container.prefix()
        self.status = container.status()
        self.reindex_requests = container.reindex_requests()
        self._coordinator: ReindexCoordinator | None = None
        self._signals = 0
        self._stop = asyncio.Event()

    def _on_signal(self, signum: int) -> None:
        self._signals += 1
        if self._signals > 1:
            # A second signal abandons the open batch; the slot redelivers it.
            os._exit(128 + signum)
        logger.info("shutdown requested; stopping pipeline")
        self._stop.set()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._on_signal, signum)

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Bind, check the database, serve HTTP and run the pipeline; close everything after."""
        container = self._container
        try:
            telemetry: Telemetry = await provided(container.telemetry)
            for name in reserved_overrides(container.deployment(), container.env()):
                logger.info("environment variable overrides the config", extra={"variable": name})
            # Bound before anything connects to Postgres or a cluster, so a taken port fails fast.
            container.listeners()
            await provided(container.metric_export)
            journal: Journal = await provided(container.journal)
            self.reindex_requests.attach(journal=journal, is_busy=self._is_busy)
            with telemetry.tracer("flusso.run").start_as_current_span("daemon.run"):
                await container.preflight()
                await provided(container.http)
                await self._run_pipeline(journal)
        finally:
            self.reindex_requests.close()
            await close_resources(container)

    async def _is_busy(self, index: str) -> bool:
        coordinator = self._coordinator
        return coordinator is not None and await coordinator.is_busy(index)

    async def _run_pipeline(self, journal: Journal) -> None:
        """One pipeline run from the container's run-scoped parts, closed when it ends."""
        container = self._container
        try:
            pipeline: SyncPipeline = await provided(container.pipeline)
            builder: DocumentBuilder = await provided(container.builder)
            admins: Sequence[IndexAdmin] = await provided(container.index_admins)
            await self._follow(pipeline, journal, admins, builder.index_mappings())
        finally:
            await close_resources(container, RunResource)

    async def _follow(
        self,
        pipeline: SyncPipeline,
        journal: Journal,
        admins: Sequence[IndexAdmin],
        mappings: list[IndexMapping],
    ) -> None:
        """Run `pipeline` until it ends or a stop is asked for; serve reindex requests meanwhile."""
        self.status.begin_run()
        run_task = asyncio.create_task(pipeline.run(), name="pipeline")
        stop_task = asyncio.create_task(self._stop.wait(), name="stop-signal")
        control_task: asyncio.Task[None] | None = None
        try:
            if admins:
                # The journal is a record; where it disagrees with the cluster, the cluster wins.
                await reconcile_on_start(journal, admins, mappings)
                control_task = asyncio.create_task(
                    self._serve_reindex(journal, admins, mappings), name="reindex-control"
                )
            done, _ = await asyncio.wait(
                {run_task, stop_task}, return_when=asyncio.FIRST_COMPLETED
            )
            if control_task is not None:
                control_task.cancel()
                await asyncio.gather(control_task, return_exceptions=True)
            if self._coordinator is not None:
                await self._coordinator.close()
            if stop_task in done and not run_task.done():
                await pipeline.stop(graceful=True)
            try:
                await run_task
                if self._stop.is_set():
                    logger.info("pipeline stopped: shutdown complete")
                else:
                    logger.info("pipeline stopped: live stream ended")
            except FlussoError as exc:
                logger.error("pipeline stopped on error", extra={"error": str(exc)})
                raise PipelineStoppedError("sync engine stopped") from exc
        finally:
            stop_task.cancel()
            if not run_task.done():
                run_task.cancel()
            # Also collects the error of a run that failed while startup reconciliation
            # failed too, so it is not logged later as "never retrieved".
            await asyncio.gather(run_task, return_exceptions=True)
            self.status.end_run()

    async def _serve_reindex(
        self, journal: Journal, admins: Sequence[IndexAdmin], mappings: list[IndexMapping]
    ) -> None:
        """Once live: resume journaled requests, then take rebuild requests one by one."""
        while self.status.phase != "live":
            await asyncio.sleep(0.05)
        # The start's backfill may have finished a rebuild a crash interrupted.
        report = await reconcile_on_start(journal, admins, mappings)
        coordinator: ReindexCoordinator = await provided(self._container.reindex_coordinator)
        self._coordinator = coordinator
        for index in report.pending_requests:
            coordinator.start(index, done=self.reindex_requests.finished)
        while True:
            index = await self.reindex_requests.next()
            try:
                await coordinator.request(index)
            except ReindexBusyError as exc:
                logger.warning("reindex request refused: %s", exc, extra={"index": index})
                self.reindex_requests.finished(index)
                continue
            logger.info("reindex requested; building a fresh generation", extra={"index": index})
            coordinator.start(index, done=self.reindex_requests.finished)
