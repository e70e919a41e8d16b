"""The composition root: the only module outside `flusso.adapters` that names an adapter.

`Container` builds everything `flusso run` and the online `flusso check` use, from the
deployment, the run settings and the environment handed in (secrets are resolved from
that environment when a part is built, never stored). What lives as long as the process
(telemetry, the journal, the HTTP listeners and servers) is a `Resource`; the parts of one
pipeline run (capture, builder, sinks, the pipeline) are `RunResource`s, opened when the
run first asks for them and closed by `shutdown_resources(RunResource)` when it ends, so
a restarted run gets fresh connections. `shutdown_resources()` closes everything.

Tests swap any part before asking for it, e.g.
`container.sink.override(providers.Object(InMemorySink()))`.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from dependency_injector import containers, providers
from dependency_injector.providers import BaseResource, Provider

from flusso.adapters.journal.sqlite import SqliteJournal
from flusso.adapters.opensearch.factory import open_opensearch_served_index, open_opensearch_sink
from flusso.adapters.postgres.builder import PostgresDocumentBuilder
from flusso.adapters.postgres.capture import PostgresChangeCapture
from flusso.adapters.postgres.check_catalog import open_postgres_catalog
from flusso.adapters.postgres.estimates import IndexRowEstimator
from flusso.adapters.postgres.root_rows import PostgresRootRows
from flusso.adapters.stdout.sink import open_stdout_sink
from flusso.app.fanout import combine_sinks
from flusso.app.pipeline.engine import SyncPipeline
from flusso.app.ports import IndexAdmin, ServedIndex, Sink, SinkContext
from flusso.app.services.check import check_online
from flusso.app.services.check import preflight as check_referenced_objects
from flusso.app.services.reindex import ReindexCoordinator
from flusso.app.services.reindex_requests import ReindexRequests
from flusso.app.services.verify import Verifier
from flusso.app.status import CompositeObserver, LiveStatus
from flusso.domain.config.model import Deployment, OpenSearchSinkConfig, StdoutSinkConfig
from flusso.domain.config.secrets import resolve_source_url
from flusso.domain.errors import FlussoError
from flusso.domain.mapping import index_mapping
from flusso.domain.types import IndexMapping
from flusso.entrypoints.cli.files import LocalFiles
from flusso.entrypoints.http.private import create_private_app
from flusso.entrypoints.http.public import create_public_app
from flusso.entrypoints.http.security import ServerTls, check_private_exposure, server_tls
from flusso.entrypoints.http.serve import HttpSurfaces, Listener, bind_surfaces, surface_addresses
from flusso.entrypoints.metrics import PrometheusObserver
from flusso.entrypoints.progress import (
    BackfillProgress,
    StatusWithProgress,
    choose_display,
    index_roots,
)
from flusso.entrypoints.settings import DEFAULT_ADMIN_PASSWORD, RunSettings, effective_prefix
from flusso.entrypoints.telemetry import Telemetry, install_metrics, install_tracing

logger = logging.getLogger("flusso.run")

DEFAULT_PASSWORD_WARNING = (
    'the private control surface is using the DEFAULT admin password ("flusso"); '
    "set --admin-password / FLUSSO_ADMIN_PASSWORD before exposing it"
)


# ---------------------------------------------------------------------------
# Sink kinds
# ---------------------------------------------------------------------------

SinkBuilder = Callable[[str, Any, SinkContext], Sink]
"""`(name, its [sinks.NAME] config, context) -> Sink`; opens no connection."""

ServedBuilder = Callable[[str, Any, SinkContext, Sequence[IndexMapping]], ServedIndex]
"""`(name, config, context, mappings) -> ServedIndex`: what the sink serves, for verify."""


@dataclass(frozen=True)
class SinkKind:
    build: SinkBuilder
    keeps_generations: bool = False
    """The sink keeps generations behind aliases, so it is also the `IndexAdmin` that
    start-up reconciliation, the lifecycle journal and online reindex work through."""
    served: ServedBuilder | None = None
    """How `flusso verify` reads and repairs what the sink serves; None: it keeps nothing."""


# One line per sink kind, keyed by the config class the config language reads its
# `[sinks.NAME]` table into. A new kind: its adapter package, one line here, and its legs
# in tests/contract/sink_legs.py (docs/architecture.md lists the config side).
SINK_KINDS: Mapping[type, SinkKind] = {
    OpenSearchSinkConfig: SinkKind(
        open_opensearch_sink, keeps_generations=True, served=open_opensearch_served_index
    ),
    StdoutSinkConfig: SinkKind(open_stdout_sink),
}


@dataclass(frozen=True)
class SinkSet:
    """The sink the pipeline writes through, and the generation-keeping sinks behind it."""

    sink: Sink
    admins: tuple[IndexAdmin, ...]


def build_sinks(deployment: Deployment, context: SinkContext, pretty: bool) -> SinkSet:
    """One sink per `[sinks.*]` entry in name order; none → a stdout sink (`--pretty`)."""
    sinks: dict[str, Sink] = {}
    admins: list[IndexAdmin] = []
    for name in sorted(deployment.sinks):
        config = deployment.sinks[name]
        kind = SINK_KINDS[type(config)]
        sink = kind.build(name, config, context)
        sinks[name] = sink
        if kind.keeps_generations:
            admins.append(cast(IndexAdmin, sink))
    combined = combine_sinks(
        sinks, fallback=lambda: open_stdout_sink("stdout", StdoutSinkConfig(pretty), context)
    )
    return SinkSet(combined, tuple(admins))


def build_served_indexes(deployment: Deployment, context: SinkContext) -> list[ServedIndex]:
    """One served index per sink that keeps documents, in name order."""
    mappings = [index_mapping(i.name, i.schema) for i in deployment.enabled_indexes()]
    served = [
        kind.served(name, config, context, mappings)
        for name, config in sorted(deployment.sinks.items())
        if (kind := SINK_KINDS[type(config)]).served is not None
    ]
    if not served:
        raise FlussoError(
            "verify compares OpenSearch indexes with the database, and the config has no "
            "OpenSearch sink",
            hint='add a [sinks.NAME] table with type = "opensearch" (a stdout sink keeps nothing '
            "to compare)",
        )
    return served


# ---------------------------------------------------------------------------
# Resource initialisers: each yields its part and closes it afterwards
# ---------------------------------------------------------------------------


class RunResource(providers.Resource):  # type: ignore[type-arg]
    """A part of one run (of the pipeline, or of `flusso verify`): opened on first use,
    closed by `shutdown_resources(RunResource)` when that run ends."""


async def provided(provider: Provider[Any], /, **kwargs: Any) -> Any:
    """What `provider` gives, awaited when it is asynchronous (an override may not be)."""
    value = provider(**kwargs)
    return await value if inspect.isawaitable(value) else value


async def close_resources(
    container: containers.Container, resource_type: type[BaseResource[Any]] = BaseResource
) -> None:
    """Close the container's open resources of `resource_type`, dependents first."""
    pending = container.shutdown_resources(resource_type)
    if pending is not None:
        await pending


async def close_quietly(part: object) -> None:
    """Close a run's part; a failure is logged, since the other parts must close too."""
    close = getattr(part, "close", None)
    if close is None:
        return
    try:
        await close()
    except FlussoError as exc:
        logger.warning("closing %s failed: %s", type(part).__name__, exc)


async def _closing(factory: Callable[..., Any], /, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
    part = factory(*args, **kwargs)
    try:
        yield part
    finally:
        await close_quietly(part)


async def _open_served(deployment: Deployment, context: SinkContext) -> AsyncIterator[list[ServedIndex]]:
    served = build_served_indexes(deployment, context)
    try:
        yield served
    finally:
        for one in served:
            await close_quietly(one)


async def _open_sinks(
    deployment: Deployment, context: SinkContext, pretty: bool
) -> AsyncIterator[SinkSet]:
    sinks = build_sinks(deployment, context, pretty)
    try:
        yield sinks
    finally:
        await close_quietly(sinks.sink)


async def _open_journal(path: str) -> AsyncIterator[SqliteJournal]:
    journal = SqliteJournal.open(path)
    try:
        yield journal
    finally:
        await journal.close()


async def _open_telemetry(env: Mapping[str, str]) -> AsyncIterator[Telemetry]:
    """Tracing at once (its notice comes first); metric export joins via `metric_export`."""
    telemetry = Telemetry(tracer_provider=install_tracing(env))
    try:
        yield telemetry
    finally:
        await telemetry.shutdown_async()


def _start_metric_export(telemetry: Telemetry, env: Mapping[str, str]) -> Telemetry:
    """OTLP metric export, when configured; `telemetry` shuts it down with the tracer."""
    telemetry.meter_provider = install_metrics(env)
    return telemetry


def _bind_listeners(
    settings: RunSettings, deployment: Deployment, tls: Callable[[], ServerTls | None]
) -> Iterator[tuple[Listener, Listener] | None]:
    """Both sockets, public first (HttpBindError on failure); None when HTTP is off.

    Refused before binding: a private surface beyond loopback with guessable
    credentials, and a TLS certificate or key that does not load.
    """
    if not settings.serve_http:
        yield None
        return
    public_address, private_address = surface_addresses(settings, deployment.server)
    check_private_exposure(private_address, settings.admin_user, settings.admin_password)
    tls()
    public, private = bind_surfaces(public_address, private_address)
    if settings.admin_password == DEFAULT_ADMIN_PASSWORD:
        logger.warning(DEFAULT_PASSWORD_WARNING)
    try:
        yield public, private
    finally:
        public.close()
        private.close()


async def _serve_http(
    listeners: tuple[Listener, Listener] | None,
    public_app: Any,
    private_app: Any,
    tls: ServerTls | None,
) -> AsyncIterator[HttpSurfaces | None]:
    if listeners is None:
        yield None
        return
    public, private = listeners
    surfaces = HttpSurfaces([(public, public_app), (private, private_app)], tls=tls)
    try:
        await surfaces.start()
        yield surfaces
    finally:
        await surfaces.stop()


def _count_auth_failures(metrics: PrometheusObserver, surface: str) -> Callable[[], None]:
    return lambda: metrics.on_auth_failure(surface)


def _observers(
    status: LiveStatus, metrics: PrometheusObserver, telemetry: Telemetry, progress: BackfillProgress
) -> CompositeObserver:
    """Every observer of the pipeline; one set per process, so counters survive restarts."""
    return CompositeObserver(status, metrics, *telemetry.observers(status.in_flight), progress)


def _enabled_indexes(deployment: Deployment) -> list[str]:
    return [index.name for index in deployment.enabled_indexes()]


class Container(containers.DeclarativeContainer):
    deployment = providers.Dependency(instance_of=Deployment)
    settings = providers.Dependency(instance_of=RunSettings)
    env = providers.Dependency(instance_of=Mapping)

    prefix = providers.Singleton(effective_prefix, deployment, settings)
    source_url = providers.Callable(resolve_source_url, deployment.provided.source, env)
    enabled_indexes = providers.Callable(_enabled_indexes, deployment)
    on_error = deployment.provided.on_error_for
    """The rejection policy of a logical index: its own `on_error`, else the deployment's."""
    skip_backfill = settings.provided.skip_backfill

    # -- use cases that read the database ---------------------------------------------

    files = providers.Singleton(LocalFiles)
    open_catalog = providers.Object(open_postgres_catalog)
    check = providers.Callable(check_online, files=files, env=env, open_catalog=open_catalog)
    """`await container.check(config, publication=…, manage_publication=…)`."""
    preflight = providers.Callable(
        check_referenced_objects,
        deployment=deployment,
        env=env,
        open_catalog=open_catalog,
        slot=settings.provided.slot,
    )

    # -- the process: built once, outliving pipeline restarts ---------------------------

    telemetry = providers.Resource(_open_telemetry, env)
    metric_export = providers.Resource(_start_metric_export, telemetry, env)
    journal = providers.Resource(_open_journal, settings.provided.journal)
    status = providers.Singleton(LiveStatus, enabled_indexes)
    metrics = providers.Singleton(PrometheusObserver, status.provided.in_flight, enabled_indexes)
    progress = providers.Singleton(
        BackfillProgress,
        providers.Callable(choose_display),
        providers.Factory(
            IndexRowEstimator, source_url.provider, providers.Callable(index_roots, deployment)
        ),
    )
    observer = providers.Singleton(_observers, status, metrics, metric_export, progress)
    reindex_requests = providers.Singleton(
        ReindexRequests, enabled_indexes, skip_backfill=skip_backfill
    )
    public_app = providers.Factory(
        create_public_app,
        providers.Factory(StatusWithProgress, status, progress),
        metrics,
        user=settings.provided.public_user,
        password=settings.provided.public_password,
        on_auth_failure=providers.Callable(_count_auth_failures, metrics, "public"),
    )
    private_app = providers.Factory(
        create_private_app,
        status,
        reindex_requests,
        user=settings.provided.admin_user,
        password=settings.provided.admin_password,
        on_auth_failure=providers.Callable(_count_auth_failures, metrics, "private"),
    )
    tls = providers.Singleton(
        server_tls, settings.provided.tls_cert_file, settings.provided.tls_key_file
    )
    listeners = providers.Resource(_bind_listeners, settings, deployment, tls.provider)
    http = providers.Resource(_serve_http, listeners, public_app, private_app, tls)

    # -- one pipeline run -------------------------------------------------------------

    sink_context = providers.Factory(
        SinkContext, env=env, prefix=prefix, skip_backfill=skip_backfill
    )
    sinks = RunResource(_open_sinks, deployment, sink_context, settings.provided.pretty)
    sink = sinks.provided.sink
    index_admins = sinks.provided.admins
    capture = RunResource(
        _closing,
        PostgresChangeCapture,
        source_url,
        deployment,
        slot=settings.provided.slot,
        publication=settings.provided.publication,
        manage_publication=settings.provided.manage_publication,
    )
    builder = RunResource(_closing, PostgresDocumentBuilder, source_url, deployment)
    pipeline = RunResource(
        SyncPipeline,
        capture=capture,
        builder=builder,
        sink=sink,
        observer=observer,
        on_error=on_error,
        queue_capacity=settings.provided.queue_capacity,
        max_changes=settings.provided.max_changes,
        max_delay=settings.provided.max_delay,
        skip_backfill=skip_backfill,
        lag_poll_secs=settings.provided.lag_poll_secs,
    )
    # -- one `flusso verify` ------------------------------------------------------------

    root_rows = RunResource(_closing, PostgresRootRows, source_url, deployment)
    served_indexes = RunResource(_open_served, deployment, sink_context)
    verifier = providers.Factory(Verifier, builder, root_rows, served_indexes)
    """`await provided(container.verifier, options=…, progress=…)`."""

    reindex_coordinator = providers.Factory(
        ReindexCoordinator,
        journal,
        index_admins,
        builder,
        capture,
        pipeline,
        on_error=on_error,
        on_progress=status.provided.mark_index,
        skip_backfill=skip_backfill,
    )
