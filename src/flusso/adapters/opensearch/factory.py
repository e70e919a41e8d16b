"""Builds the OpenSearch sink and its served-index view from a `[sinks.NAME]` table:
credentials resolved (environment, files), the client opened with its connection security.
"""

from __future__ import annotations

from collections.abc import Sequence

from opensearchpy import AsyncOpenSearch

from flusso.adapters.opensearch.client import open_opensearch_client
from flusso.adapters.opensearch.security import connection_security, read_secret_file
from flusso.adapters.opensearch.served import OpenSearchServedIndex
from flusso.adapters.opensearch.sink import OpenSearchSink
from flusso.app.ports import SinkContext
from flusso.domain.config.model import OpenSearchSinkConfig
from flusso.domain.config.secrets import resolve_opensearch
from flusso.domain.types import IndexMapping


def _client(
    name: str, config: OpenSearchSinkConfig, context: SinkContext
) -> tuple[AsyncOpenSearch, str]:
    """A client for the sink (no connection until the first call) and its resolved URL."""
    resolved = resolve_opensearch(name, config, context.env, read_secret_file)
    client = open_opensearch_client(
        resolved.url,
        timeout_secs=config.timeout_secs,
        security=connection_security(name, config, resolved),
    )
    return client, resolved.url


def open_opensearch_sink(
    name: str, config: OpenSearchSinkConfig, context: SinkContext
) -> OpenSearchSink:
    """The sink owns its client and closes it."""
    client, url = _client(name, config, context)
    return OpenSearchSink(
        client,
        sink_name=name,
        config=config,
        prefix=context.prefix,
        skip_backfill=context.skip_backfill,
        owns_client=True,
        url=url,
    )


def open_opensearch_served_index(
    name: str, config: OpenSearchSinkConfig, context: SinkContext, mappings: Sequence[IndexMapping]
) -> OpenSearchServedIndex:
    """What the sink serves for `mappings`, for `flusso verify`; owns its client."""
    client, url = _client(name, config, context)
    return OpenSearchServedIndex(
        client, sink_name=name, mappings=mappings, prefix=context.prefix,
        pipeline=config.pipeline, url=url, owns_client=True,
    )
