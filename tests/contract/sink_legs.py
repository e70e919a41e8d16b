"""The sinks the Sink suites run on: the fake, stdout, the embedded OpenSearch and (when
FLUSSO_TEST_OPENSEARCH_URL is set) a real cluster, each with a read-back of the documents
readers see for a logical index."""

from __future__ import annotations

import io
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from flusso.adapters.fakes.sink import InMemorySink
from flusso.adapters.opensearch.client import open_opensearch_client
from flusso.adapters.opensearch.sink import OpenSearchSink
from flusso.adapters.stdout.sink import StdoutSink
from flusso.app.ports import Sink
from flusso.domain.naming import hash_alias
from opensearch_fixtures import (
    REAL_URL_ENV,
    ClusterProbe,
    sink_config,
    unique_prefix,
    users_mapping,
)

MAPPING = users_mapping("0123abcd")

LEGS = [
    "memory",
    "stdout",
    "opensearch",
    pytest.param("real", marks=pytest.mark.real_opensearch),
]


@dataclass
class Leg:
    sink: Sink
    documents: Callable[[str], Awaitable[dict[str, dict[str, Any]]]]
    """The documents readers see for a logical index, by `_id`."""
    refused: frozenset[str]
    """Ids of `users` documents with an undeclared field: the ones this sink refuses (a
    sink that validates nothing refuses none)."""
    keeps_marks: bool
    """Whether the sink remembers seeded marks (stdout keeps no state)."""


def _refuse_bad_ids(index: str, doc_id: str) -> str | None:
    # The fake's stand-in for a document the cluster refuses (an undeclared field
    # under `dynamic: strict`): every test writes those under ids starting with "bad".
    return "undeclared field" if doc_id.startswith("bad") else None


def _stdout_leg() -> Leg:
    raw = io.BytesIO()
    # Buffered like a real stdout: what a write prints reaches `raw` only when flushed.
    stream = io.TextIOWrapper(raw, encoding="utf-8", write_through=False)
    sink = StdoutSink(stream)

    async def read(index: str) -> dict[str, dict[str, Any]]:
        seen: dict[str, dict[str, Any]] = {}
        for line in raw.getvalue().decode("utf-8").splitlines():
            envelope = json.loads(line)
            if envelope["index"] != index:
                continue
            if envelope["op"] == "upsert":
                seen[envelope["id"]] = envelope["document"]
            else:
                seen.pop(envelope["id"], None)
        return seen

    return Leg(sink, read, refused=frozenset(), keeps_marks=False)


@asynccontextmanager
async def sink_leg(request: pytest.FixtureRequest) -> AsyncIterator[Leg]:
    if request.param == "memory":
        fake = InMemorySink(reject=_refuse_bad_ids)

        async def read(index: str) -> dict[str, dict[str, Any]]:
            return fake.documents(index)

        yield Leg(fake, read, refused=frozenset({"bad42"}), keeps_marks=True)
        return
    if request.param == "stdout":
        yield _stdout_leg()
        return
    if request.param == "real":
        url = os.environ.get(REAL_URL_ENV)
        if not url:
            pytest.skip(f"set {REAL_URL_ENV} to run the contract against a real cluster")
    else:
        url = request.getfixturevalue("embedded_opensearch").url
    client = open_opensearch_client(url, tls_verify=not url.startswith("https"))
    prefix = unique_prefix()
    probe = ClusterProbe(client, prefix)
    sink = OpenSearchSink(client, sink_name="primary", config=sink_config(url), prefix=prefix)

    async def read_alias(index: str) -> dict[str, dict[str, Any]]:
        return await probe.documents(hash_alias(prefix, index, MAPPING.hash))

    try:
        yield Leg(sink, read_alias, refused=frozenset({"bad42"}), keeps_marks=True)
    finally:
        await sink.close()
        await client.close()
