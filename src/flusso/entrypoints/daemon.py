"""The `flusso run` process: prefix check, run loop, signals and shutdown.

One pipeline run at a time is built from the container. A first SIGINT/SIGTERM
asks the pipeline to stop gracefully (commit the open batch, confirm, final
feedback); a second one exits at once with 130/143.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field

from flusso.adapters.opensearch.sink import OpenSearchSink
from flusso.adapters.postgres.builder import PostgresDocumentBuilder
from flusso.adapters.postgres.capture import PostgresChangeCapture
from flusso.adapters.postgres.check_catalog import open_postgres_catalog
from flusso.app.pipeline.engine import SyncPipeline
from flusso.app.ports import Journal
from flusso.app.services.check import require_referenced_objects
from flusso.app.services.reindex import ReindexBusyError, ReindexCoordinator
from flusso.app.services.reindex_requests import ReindexRequests
from flusso.app.services.startup import reconcile_on_start
from flusso.app.status import CompositeObserver, LiveStatus
from flusso.domain.config.model import Deployment
from flusso.domain.config.secrets import reserved_overrides
from flusso.domain.errors import FlussoError
from flusso.domain.naming import validate_prefix
from flusso.domain.types import IndexMapping
from flusso.entrypoints.container import Container, source_url
from flusso.entrypoints.http.private import create_private_app
from flusso.entrypoints.http.public import create_public_app
from flusso.entrypoints.http.security import check_private_exposure, server_tls
from flusso.entrypoints.http.serve import HttpSurfaces, bind_surfaces, surface_addresses
from flusso.entrypoints.metrics import PrometheusObserver
from flusso.entrypoints.progress import BackfillProgress, StatusWithProgress, backfill_progress
from flusso.entrypoints.settings import DEFAULT_ADMIN_PASSWORD, RunSettings
from flusso.entrypoints.telemetry import Telemetry, install_metrics, install_tracing

logger = logging.getLogger("flusso.run")

DEFAULT_PASSWORD_WARNING = (
    'the private control surface is using the DEFAULT admin password ("flusso"); '
    "set --admin-password / FLUSSO_ADMIN_PASSWORD before exposing it"
)


class PipelineStoppedError(FlussoError):
    """The sync engine stopped on an error; the cause is the engine's error."""


def effective_prefix(deployment: Deployment, settings: RunSettings) -> str:
    """`--index-prefix` / `FLUSSO_INDEX_PREFIX` > config `prefix` > empty; validated."""
    prefix = settings.index_prefix if settings.index_prefix is not None else deployment.prefix
    validate_prefix(prefix)
    return prefix


@dataclass
class Daemon:
    deployment: Deployment
    settings: RunSettings
    env: Mapping[str, str]
    status: LiveStatus = field(init=False)
    metrics: PrometheusObserver = field(init=False)
    reindex_requests: ReindexRequests = field(init=False)
    telemetry: Telemetry = field(init=False)
    progress: BackfillProgress = field(init=False)
    _coordinator: ReindexCoordinator | None = field(default=None, init=False)
    _signals: int = field(default=0, init=False)
    _stop: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    def __post_init__(self) -> None:
        self.prefix = effective_prefix(self.deployment, self.settings)
        enabled = [i.name for i in self.deployment.enabled_indexes()]
        self.status = LiveStatus(enabled)
        self.metrics = PrometheusObserver(self.status.in_flight, enabled)
        self.reindex_requests = ReindexRequests(enabled, skip_backfill=self.settings.skip_backfill)
        self.telemetry = Telemetry(tracer_provider=install_tracing(self.env))
        self.progress = backfill_progress(
            self.deployment, lambda: source_url(self.deployment, self.env)
        )

    def _container(self) -> Container:
        return Container(
            deployment=self.deployment,
            settings=self.settings,
            env=self.env,
            prefix=self.prefix,
            observer=CompositeObserver(
                self.status,
                self.metrics,
                *self.telemetry.observers(self.status.in_flight),
                self.progress,
            ),
        )

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

    def open_surfaces(self) -> HttpSurfaces | None:
        """Bind both listeners (public first; HttpBindError on failure) and build their apps."""
        if not self.settings.serve_http:
            return None
        settings = self.settings
        public_address, private_address = surface_addresses(settings, self.deployment.server)
        check_private_exposure(private_address, settings.admin_user, settings.admin_password)
        tls = server_tls(settings.tls_cert_file, settings.tls_key_file)
        public, private = bind_surfaces(public_address, private_address)
        if settings.admin_password == DEFAULT_ADMIN_PASSWORD:
            logger.warning(DEFAULT_PASSWORD_WARNING)
        private_app = create_private_app(
            self.status,
            self.reindex_requests,
            user=settings.admin_user,
            password=settings.admin_password,
            on_auth_failure=lambda: self.metrics.on_auth_failure("private"),
        )
        public_app = create_public_app(
            StatusWithProgress(self.status, self.progress),
            self.metrics,
            user=settings.public_user,
            password=settings.public_password,
            on_auth_failure=lambda: self.metrics.on_auth_failure("public"),
        )
        return HttpSurfaces([(public, public_app), (private, private_app)], tls=tls)

    async def run(self) -> None:
        for name in reserved_overrides(self.deployment, self.env):
            logger.info("environment variable overrides the config", extra={"variable": name})
        # Bound before anything connects to Postgres or a cluster, so a taken port fails fast.
        surfaces = self.open_surfaces()
        self.telemetry.meter_provider = install_metrics(self.env)
        container = self._container()
        journal = container.journal()
        self.reindex_requests.attach(journal=journal, is_busy=self._is_busy)
        try:
            with self.telemetry.tracer("flusso.run").start_as_current_span("daemon.run"):
                await self.preflight()
                if surfaces is not None:
                    await surfaces.start()
                await self._run_pipeline(container, journal)
        finally:
            self.reindex_requests.close()
            if surfaces is not None:
                await surfaces.stop()
            await journal.close()
            await self.telemetry.shutdown_async()

    async def preflight(self) -> None:
        """Reach Postgres and confirm every table and column the schemas name exists."""
        async with open_postgres_catalog(source_url(self.deployment, self.env)) as catalog:
            await require_referenced_objects(self.deployment, catalog, slot=self.settings.slot)

    async def _is_busy(self, index: str) -> bool:
        coordinator = self._coordinator
        return coordinator is not None and await coordinator.is_busy(index)

    async def _run_pipeline(self, container: Container, journal: Journal) -> None:
        capture = container.capture()
        builder = container.builder()
        sinks = container.sinks()
        pipeline = container.pipeline(capture=capture, builder=builder, sink=sinks.sink)
        mappings = builder.index_mappings()
        self.status.begin_run()
        run_task = asyncio.create_task(pipeline.run(), name="pipeline")
        stop_task = asyncio.create_task(self._stop.wait(), name="stop-signal")
        control_task: asyncio.Task[None] | None = None
        try:
            if sinks.admins:
                # The journal is a record; the cluster wins where they disagree.
                await reconcile_on_start(journal, sinks.admins, mappings)
                control_task = asyncio.create_task(
                    self._serve_reindex(journal, sinks.admins, builder, capture, pipeline, mappings),
                    name="reindex-control",
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
            await _close_quietly(capture, builder, sinks.sink)

    async def _serve_reindex(
        self,
        journal: Journal,
        admins: tuple[OpenSearchSink, ...],
        builder: PostgresDocumentBuilder,
        capture: PostgresChangeCapture,
        pipeline: SyncPipeline,
        mappings: list[IndexMapping],
    ) -> None:
        """Once live: resume journaled requests, then take rebuild requests one by one."""
        while self.status.phase != "live":
            await asyncio.sleep(0.05)
        # The start's backfill may have finished a rebuild a crash interrupted.
        report = await reconcile_on_start(journal, admins, mappings)
        coordinator = ReindexCoordinator(
            journal,
            admins,
            builder,
            capture,
            pipeline,
            on_error=self.deployment.on_error_for,
            on_progress=self.status.mark_index,
            skip_backfill=self.settings.skip_backfill,
        )
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


async def _close_quietly(*parts: object) -> None:
    for part in parts:
        close = getattr(part, "close", None)
        if close is None:
            continue
        try:
            await close()
        except FlussoError as exc:
            logger.warning("closing %s failed: %s", type(part).__name__, exc)
