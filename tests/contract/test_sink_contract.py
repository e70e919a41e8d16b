"""The Sink contract, held by the in-memory fake and the OpenSearch sink alike (sinks spec §1).

One fixture, parametrised over the fake, the embedded OpenSearch and (when
FLUSSO_TEST_OPENSEARCH_URL is set) a real cluster, yields the sink and a read-back
of the documents readers see for a logical index.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from flusso.adapters.fakes.sink import InMemorySink
from flusso.adapters.opensearch.client import open_opensearch_client
from flusso.adapters.opensearch.sink import OpenSearchSink
from flusso.app.ports import Sink
from flusso.domain.documents.change import Delete, DocumentId, Upsert
from flusso.domain.naming import hash_alias
from opensearch_fixtures import (
    REAL_URL_ENV,
    ClusterProbe,
    sink_config,
    unique_prefix,
    users_mapping,
)

MAPPING = users_mapping("0123abcd")


@dataclass
class Leg:
    sink: Sink
    documents: Callable[[str], Awaitable[dict[str, dict[str, Any]]]]
    """The documents readers see for a logical index, by `_id`."""


def _refuse_bad_ids(index: str, doc_id: str) -> str | None:
    # The fake's stand-in for a document the cluster refuses (an undeclared field
    # under `dynamic: strict`): every test writes those under ids starting with "bad".
    return "undeclared field" if doc_id.startswith("bad") else None


@pytest.fixture(
    params=["memory", "opensearch", pytest.param("real", marks=pytest.mark.real_opensearch)]
)
async def leg(request: pytest.FixtureRequest) -> AsyncIterator[Leg]:
    if request.param == "memory":
        fake = InMemorySink(reject=_refuse_bad_ids)

        async def read(index: str) -> dict[str, dict[str, Any]]:
            return fake.documents(index)

        yield Leg(fake, read)
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
        yield Leg(sink, read_alias)
    finally:
        await sink.close()
        await client.close()


def upsert(key: Any, doc: dict[str, Any]) -> Upsert:
    return Upsert(DocumentId("users", (key,)), doc)


def delete(key: Any) -> Delete:
    return Delete(DocumentId("users", (key,)))


async def test_rewriting_a_document_keeps_one_copy_with_the_latest_content(leg):
    await leg.sink.ensure_index(MAPPING)
    await leg.sink.write([upsert(7, {"email": "a@x.io", "age": 3})])
    await leg.sink.write([upsert(7, {"email": "b@x.io"})])
    await leg.sink.flush(caught_up=True)
    assert await leg.documents("users") == {"7": {"email": "b@x.io"}}


async def test_writes_become_visible_only_once_flushed(leg):
    await leg.sink.ensure_index(MAPPING)
    await leg.sink.write([upsert(1, {"email": "a@x.io"})])
    assert await leg.documents("users") == {}
    await leg.sink.flush(caught_up=True)
    assert await leg.documents("users") == {"1": {"email": "a@x.io"}}


async def test_deletes_remove_and_deleting_an_absent_document_is_not_a_rejection(leg):
    await leg.sink.ensure_index(MAPPING)
    await leg.sink.write([upsert(1, {"email": "a@x.io"}), upsert(2, {"email": "b@x.io"})])
    await leg.sink.flush(caught_up=True)
    await leg.sink.write([delete(1), delete(99)])
    report = await leg.sink.flush(caught_up=True)
    assert report.rejected == ()
    assert await leg.documents("users") == {"2": {"email": "b@x.io"}}


async def test_composite_keys_become_colon_joined_ids(leg):
    await leg.sink.ensure_index(MAPPING)
    await leg.sink.write([Upsert(DocumentId("users", (4, "eu")), {"email": "c@x.io"})])
    await leg.sink.flush(caught_up=True)
    assert await leg.documents("users") == {"4:eu": {"email": "c@x.io"}}


async def test_a_refused_document_is_reported_by_logical_index_and_the_rest_applied(leg):
    await leg.sink.ensure_index(MAPPING)
    await leg.sink.write(
        [upsert(1, {"email": "a@x.io"}), upsert("bad42", {"undeclared": 1}), upsert(3, {"age": 5})]
    )
    report = await leg.sink.flush(caught_up=True)
    assert [(r.index, r.id) for r in report.rejected] == [("users", "bad42")]
    assert report.rejected[0].reason
    assert await leg.documents("users") == {"1": {"email": "a@x.io"}, "3": {"age": 5}}


async def test_an_empty_flush_reports_nothing(leg):
    await leg.sink.ensure_index(MAPPING)
    assert (await leg.sink.flush(caught_up=False)).rejected == ()


async def test_a_fresh_index_is_unseeded_until_marked(leg):
    await leg.sink.ensure_index(MAPPING)
    assert await leg.sink.is_seeded("users") is False
    await leg.sink.mark_seeded("users")
    assert await leg.sink.is_seeded("users") is True


async def test_a_staged_reindex_unseeds_keeps_reads_and_swaps_in_the_rebuild(leg):
    await leg.sink.ensure_index(MAPPING)
    await leg.sink.write([upsert(1, {"email": "a@x.io"}), upsert(2, {"email": "b@x.io"})])
    await leg.sink.flush(caught_up=True)
    await leg.sink.mark_seeded("users")

    await leg.sink.reindex(MAPPING)
    assert await leg.sink.is_seeded("users") is False
    assert set(await leg.documents("users")) == {"1", "2"}

    await leg.sink.ensure_index(MAPPING)  # what the next start does
    await leg.sink.write([upsert(1, {"email": "rebuilt@x.io"})])
    await leg.sink.flush(caught_up=False)
    assert set(await leg.documents("users")) == {"1", "2"}
    await leg.sink.mark_seeded("users")
    assert await leg.sink.is_seeded("users") is True
    assert await leg.documents("users") == {"1": {"email": "rebuilt@x.io"}}
