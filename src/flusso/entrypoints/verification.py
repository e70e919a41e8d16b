"""Builds the verify use case from a deployment: the document builder, the root rows and one
served index per OpenSearch sink. Part of the composition root: the CLI and the daemon call it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from flusso.adapters.opensearch.client import open_opensearch_client
from flusso.adapters.opensearch.security import connection_security, read_secret_file
from flusso.adapters.opensearch.served import OpenSearchServedIndex
from flusso.adapters.postgres.builder import PostgresDocumentBuilder
from flusso.adapters.postgres.root_rows import PostgresRootRows
from flusso.app.ports import ServedIndex
from flusso.app.services.verify import Verifier, VerifyOptions, VerifyProgress
from flusso.domain.config.model import Deployment, OpenSearchSinkConfig
from flusso.domain.config.secrets import resolve_opensearch, resolve_source_url
from flusso.domain.errors import FlussoError
from flusso.domain.mapping import index_mapping
from flusso.domain.naming import validate_prefix


def index_prefix(deployment: Deployment, override: str | None) -> str:
    """`--index-prefix` / `FLUSSO_INDEX_PREFIX` > config `prefix` > empty, as `flusso run` picks it."""
    prefix = override if override is not None else deployment.prefix
    validate_prefix(prefix)
    return prefix


def served_indexes(
    deployment: Deployment, env: Mapping[str, str], prefix: str
) -> list[ServedIndex]:
    """One served index per `[sinks.*]` of type opensearch, in name order."""
    mappings = [index_mapping(i.name, i.schema) for i in deployment.enabled_indexes()]
    served: list[ServedIndex] = []
    for name in sorted(deployment.sinks):
        config = deployment.sinks[name]
        if not isinstance(config, OpenSearchSinkConfig):
            continue
        resolved = resolve_opensearch(name, config, env, read_secret_file)
        client = open_opensearch_client(
            resolved.url,
            timeout_secs=config.timeout_secs,
            security=connection_security(name, config, resolved),
        )
        served.append(OpenSearchServedIndex(
            client, sink_name=name, mappings=mappings, prefix=prefix, pipeline=config.pipeline,
            url=resolved.url, owns_client=True,
        ))
    if not served:
        raise FlussoError(
            "verify compares OpenSearch indexes with the database, and the config has no "
            "OpenSearch sink",
            hint='add a [sinks.NAME] table with type = "opensearch" (a stdout sink keeps nothing '
            "to compare)",
        )
    return served


@dataclass(frozen=True)
class VerifyParts:
    verifier: Verifier
    sinks: tuple[str, ...]


@asynccontextmanager
async def open_verifier(
    deployment: Deployment,
    env: Mapping[str, str],
    prefix: str,
    options: VerifyOptions,
    progress: VerifyProgress | None = None,
) -> AsyncIterator[VerifyParts]:
    """The verifier over the deployment's source and OpenSearch sinks; closes them on exit."""
    url = resolve_source_url(deployment.source, env)
    served: Sequence[ServedIndex] = served_indexes(deployment, env, prefix)
    builder = PostgresDocumentBuilder(url, deployment)
    rows = PostgresRootRows(url, deployment)
    try:
        verifier = Verifier(builder, rows, served, options, progress=progress)
        yield VerifyParts(verifier, tuple(s.sink_name for s in served))
    finally:
        await builder.close()
        await rows.close()
        for one in served:
            await one.close()
