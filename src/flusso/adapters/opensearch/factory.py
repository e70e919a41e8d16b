"""Builds an `OpenSearchSink` from its `[sinks.NAME]` table: credentials resolved, client opened."""

from __future__ import annotations

from flusso.adapters.opensearch.client import open_opensearch_client
from flusso.adapters.opensearch.security import connection_security, read_secret_file
from flusso.adapters.opensearch.sink import OpenSearchSink
from flusso.app.ports import SinkContext
from flusso.domain.config.model import OpenSearchSinkConfig
from flusso.domain.config.secrets import resolve_opensearch


def open_opensearch_sink(
    name: str, config: OpenSearchSinkConfig, context: SinkContext
) -> OpenSearchSink:
    """The sink owns its client and closes it; no connection is made until the first call."""
    resolved = resolve_opensearch(name, config, context.env, read_secret_file)
    client = open_opensearch_client(
        resolved.url,
        timeout_secs=config.timeout_secs,
        security=connection_security(name, config, resolved),
    )
    return OpenSearchSink(
        client,
        sink_name=name,
        config=config,
        prefix=context.prefix,
        skip_backfill=context.skip_backfill,
        owns_client=True,
        url=resolved.url,
    )
