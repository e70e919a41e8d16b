"""The generation-keeping sinks the IndexFacts and IndexAdmin suites run on: the fake, the
OpenSearch sink on the embedded server and (when FLUSSO_TEST_OPENSEARCH_URL is set) on a
real cluster, each with a probe that reads the cluster back without going through it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import pytest

from flusso.adapters.fakes.sink import InMemorySink
from flusso.adapters.opensearch.client import open_opensearch_client
from flusso.adapters.opensearch.sink import OpenSearchSink
from flusso.app.ports import IndexAdmin, Sink
from opensearch_fixtures import (
    REAL_URL_ENV,
    ClusterProbe,
    sink_config,
    unique_prefix,
    users_mapping,
)

MAPPING = users_mapping("0123abcd")

LEGS = ["memory", "opensearch", pytest.param("real", marks=pytest.mark.real_opensearch)]


class Probe(Protocol):
    """Reads a sink's generations, aliases and settings back for assertions."""

    async def documents(self, index: str) -> dict[str, dict[str, Any]] | None:
        """The documents of one concrete generation, or None when it does not exist."""
        ...

    async def holders(self, alias: str) -> list[str]: ...

    async def refresh_interval(self, index: str) -> str: ...


class _MemoryProbe:
    def __init__(self, fake: InMemorySink) -> None:
        self._fake = fake

    async def documents(self, index: str) -> dict[str, dict[str, Any]] | None:
        return self._fake.generation_documents(index)

    async def holders(self, alias: str) -> list[str]:
        return sorted(self._fake.alias_holders(alias))

    async def refresh_interval(self, index: str) -> str:
        return self._fake.refresh_intervals[index]


class _ClusterProbe:
    def __init__(self, probe: ClusterProbe) -> None:
        self._probe = probe

    async def documents(self, index: str) -> dict[str, dict[str, Any]] | None:
        if not await self._probe.exists(index):
            return None
        return await self._probe.documents(index)

    async def holders(self, alias: str) -> list[str]:
        return await self._probe.holders(alias)

    async def refresh_interval(self, index: str) -> str:
        return str((await self._probe.settings(index))["refresh_interval"])


@dataclass
class Leg:
    admin: IndexAdmin
    sink: Sink
    """The same object as the pipeline's sink: where routed live writes go in."""
    probe: Probe
    prefix: str


def _refuse_bad_ids(index: str, doc_id: str) -> str | None:
    # The fake's stand-in for a document the cluster refuses (an undeclared field under
    # `dynamic: strict`): tests write those under ids starting with "bad".
    return "undeclared field" if doc_id.startswith("bad") else None


@asynccontextmanager
async def admin_leg(request: pytest.FixtureRequest) -> AsyncIterator[Leg]:
    prefix = unique_prefix()
    if request.param == "memory":
        fake = InMemorySink(
            sink_name="primary", prefix=prefix, refresh_interval="10s", reject=_refuse_bad_ids
        )
        yield Leg(fake, fake, _MemoryProbe(fake), prefix)
        return
    if request.param == "real":
        url = os.environ.get(REAL_URL_ENV)
        if not url:
            pytest.skip(f"set {REAL_URL_ENV} to run the contract against a real cluster")
    else:
        url = request.getfixturevalue("embedded_opensearch").url
    client = open_opensearch_client(url, tls_verify=not url.startswith("https"))
    sink = OpenSearchSink(client, sink_name="primary", config=sink_config(url), prefix=prefix)
    try:
        yield Leg(sink, sink, _ClusterProbe(ClusterProbe(client, prefix)), prefix)
    finally:
        await sink.close()
        await client.close()
