"""The composition root: the only place that names concrete adapters.

`Container` builds one pipeline run from a validated deployment and the run
settings. Secrets are resolved here, from the environment handed in, each
time a run is built. Tests override providers (`container.sink.override(...)`).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dependency_injector import containers, providers

from flusso import __version__
from flusso.adapters.journal.sqlite import SqliteJournal
from flusso.adapters.opensearch.client import open_opensearch_client
from flusso.adapters.opensearch.security import connection_security, read_secret_file
from flusso.adapters.opensearch.sink import OpenSearchSink
from flusso.adapters.postgres.builder import PostgresDocumentBuilder
from flusso.adapters.postgres.capture import PostgresChangeCapture
from flusso.adapters.stdout.sink import StdoutSink
from flusso.app.fanout import combine_sinks
from flusso.app.pipeline.engine import SyncPipeline
from flusso.app.ports import Sink
from flusso.domain.config.model import Deployment, OpenSearchSinkConfig, StdoutSinkConfig
from flusso.domain.config.secrets import resolve_opensearch, resolve_source_url
from flusso.entrypoints.settings import RunSettings


def source_url(deployment: Deployment, env: Mapping[str, str]) -> str:
    return resolve_source_url(deployment.source, env)


@dataclass(frozen=True)
class SinkSet:
    """The sink the pipeline writes through, and the generation-keeping sinks behind it."""

    sink: Sink
    admins: tuple[OpenSearchSink, ...]


def build_sinks(
    deployment: Deployment, settings: RunSettings, env: Mapping[str, str], prefix: str
) -> SinkSet:
    """One sink per `[sinks.*]` entry in name order; none → a stdout sink."""
    sinks: dict[str, Sink] = {}
    admins: list[OpenSearchSink] = []
    for name in sorted(deployment.sinks):
        config = deployment.sinks[name]
        if isinstance(config, OpenSearchSinkConfig):
            resolved = resolve_opensearch(name, config, env, read_secret_file)
            client = open_opensearch_client(
                resolved.url,
                timeout_secs=config.timeout_secs,
                security=connection_security(name, config, resolved),
            )
            sink = OpenSearchSink(
                client,
                sink_name=name,
                config=config,
                prefix=prefix,
                skip_backfill=settings.skip_backfill,
                owns_client=True,
                url=resolved.url,
            )
            sinks[name] = sink
            admins.append(sink)
        elif isinstance(config, StdoutSinkConfig):
            sinks[name] = StdoutSink(sys.stdout, pretty=config.pretty, version=__version__)
    combined = combine_sinks(
        sinks, fallback=lambda: StdoutSink(sys.stdout, pretty=settings.pretty, version=__version__)
    )
    return SinkSet(combined, tuple(admins))


def _open_journal(settings: RunSettings) -> SqliteJournal:
    return SqliteJournal.open(settings.journal)


def _policy(deployment: Deployment) -> Any:
    return deployment.on_error_for


class Container(containers.DeclarativeContainer):
    deployment = providers.Dependency(instance_of=Deployment)
    settings = providers.Dependency(instance_of=RunSettings)
    env = providers.Dependency()
    prefix = providers.Dependency(instance_of=str)
    observer = providers.Dependency()

    url = providers.Callable(source_url, deployment=deployment, env=env)

    capture = providers.Factory(
        PostgresChangeCapture,
        url,
        deployment,
        slot=settings.provided.slot,
        publication=settings.provided.publication,
        manage_publication=settings.provided.manage_publication,
    )
    builder = providers.Factory(PostgresDocumentBuilder, url, deployment)
    sinks = providers.Factory(
        build_sinks, deployment=deployment, settings=settings, env=env, prefix=prefix
    )
    journal = providers.Factory(_open_journal, settings=settings)
    pipeline = providers.Factory(
        SyncPipeline,
        capture=capture,
        builder=builder,
        sink=sinks.provided.sink,
        observer=observer,
        on_error=providers.Callable(_policy, deployment),
        queue_capacity=settings.provided.queue_capacity,
        max_changes=settings.provided.max_changes,
        max_delay=settings.provided.max_delay,
        skip_backfill=settings.provided.skip_backfill,
        lag_poll_secs=settings.provided.lag_poll_secs,
    )
