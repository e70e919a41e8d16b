"""The ServedIndex contract, held by the in-memory fake and the OpenSearch adapter alike.

One fixture, parametrised over the fake, the embedded OpenSearch and (when
FLUSSO_TEST_OPENSEARCH_URL is set) a real cluster, yields the served index and a
writer standing in for live sync (for OpenSearch: the real sink, flushed at once).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from flusso.adapters.fakes.served import InMemoryServedIndex
from flusso.adapters.opensearch.client import open_opensearch_client
from flusso.adapters.opensearch.served import OpenSearchServedIndex
from flusso.adapters.opensearch.sink import OpenSearchSink
from flusso.app.ports import Repair, RepairResult, ServedIndex, SinkError
from flusso.domain.documents.change import Delete, DocumentId, Upsert
from opensearch_fixtures import REAL_URL_ENV, sink_config, unique_prefix, users_mapping

MAPPING = users_mapping("0123abcd")


@dataclass
class Leg:
    served: ServedIndex
    put: Callable[[str, dict[str, Any]], Awaitable[None]]
    """Write a copy as live sync does (unconditionally), visible to reads and scans."""
    remove: Callable[[str], Awaitable[None]]
    elsewhere: ServedIndex
    """The same kind of served index, looking where no index exists."""


def _refuse_bad_ids(index: str, doc_id: str) -> str | None:
    # The fake's stand-in for a document the cluster refuses (an undeclared field).
    return "undeclared field" if doc_id.startswith("bad") else None


@pytest.fixture(
    params=["memory", "opensearch", pytest.param("real", marks=pytest.mark.real_opensearch)]
)
async def leg(request: pytest.FixtureRequest) -> AsyncIterator[Leg]:
    if request.param == "memory":
        fake = InMemoryServedIndex(indexes=["users"], refuse=_refuse_bad_ids)

        async def put_memory(doc_id: str, body: dict[str, Any]) -> None:
            fake.put("users", doc_id, body)

        async def remove_memory(doc_id: str) -> None:
            fake.remove("users", doc_id)

        yield Leg(fake, put_memory, remove_memory, InMemoryServedIndex(indexes=[]))
        return
    if request.param == "real":
        url = os.environ.get(REAL_URL_ENV)
        if not url:
            pytest.skip(f"set {REAL_URL_ENV} to run the contract against a real cluster")
    else:
        url = request.getfixturevalue("embedded_opensearch").url
    client = open_opensearch_client(url, tls_verify=not url.startswith("https"))
    prefix = unique_prefix()
    sink = OpenSearchSink(
        client, sink_name="primary", config=sink_config(url, number_of_replicas=0), prefix=prefix
    )
    await sink.ensure_index(MAPPING)
    served = OpenSearchServedIndex(client, sink_name="primary", mappings=[MAPPING], prefix=prefix)

    async def put_cluster(doc_id: str, body: dict[str, Any]) -> None:
        await sink.write([Upsert(DocumentId("users", (doc_id,)), body)])
        await sink.flush(caught_up=True)

    async def remove_cluster(doc_id: str) -> None:
        await sink.write([Delete(DocumentId("users", (doc_id,)))])
        await sink.flush(caught_up=True)

    elsewhere = OpenSearchServedIndex(
        client, sink_name="primary", mappings=[MAPPING], prefix=unique_prefix()
    )
    try:
        yield Leg(served, put_cluster, remove_cluster, elsewhere)
    finally:
        await sink.close()
        await client.close()


def doc(key: str) -> DocumentId:
    return DocumentId("users", (key,))


async def test_fetch_reads_current_copies_with_a_version_per_write(leg: Leg) -> None:
    await leg.put("1", {"email": "a@x.io", "age": 3})
    await leg.put("2", {"email": "b@x.io"})
    first = await leg.served.fetch("users", ["1", "2", "9"])
    assert {i: dict(c.source) for i, c in first.items()} == {
        "1": {"email": "a@x.io", "age": 3}, "2": {"email": "b@x.io"},
    }
    again = await leg.served.fetch("users", ["1", "2"])
    assert {i: c.version for i, c in again.items()} == {i: c.version for i, c in first.items()}
    await leg.put("1", {"email": "a@x.io", "age": 3})  # the same body, written again
    assert (await leg.served.fetch("users", ["1"]))["1"].version != first["1"].version
    assert await leg.served.fetch("users", []) == {}
    assert await leg.served.count("users") == 2


async def test_compare_names_each_kind_of_difference(leg: Leg) -> None:
    await leg.put("1", {"email": "a@x.io", "age": 3})
    await leg.put("2", {"email": "b@x.io"})
    await leg.put("3", {"email": "c@x.io"})
    copies = await leg.served.fetch("users", ["1", "2", "3", "4", "5"])
    ops = [
        Upsert(doc("1"), {"age": 3, "email": "a@x.io"}),  # key order does not matter
        Upsert(doc("2"), {"email": "changed@x.io"}),
        Delete(doc("3")),
        Upsert(doc("4"), {"email": "d@x.io"}),
        Delete(doc("5")),
    ]
    verdicts = {c.op.id.render(): (c.verdict, c.version) for c in leg.served.compare(ops, copies)}
    assert verdicts == {
        "1": ("same", copies["1"].version),
        "2": ("stale", copies["2"].version),
        "3": ("orphaned", copies["3"].version),
        "4": ("missing", None),
        "5": ("same", None),
    }


async def test_scan_yields_every_served_id_once_in_bounded_pages(leg: Leg) -> None:
    for key in range(1, 8):
        await leg.put(str(key), {"age": key})
    pages = [page async for page in leg.served.scan("users", 3)]
    assert all(1 <= len(page) <= 3 for page in pages)
    seen = [s.id for page in pages for s in page]
    assert sorted(seen) == sorted(str(k) for k in range(1, 8))
    copies = await leg.served.fetch("users", seen)
    assert {s.id: s.version for page in pages for s in page} == {
        i: c.version for i, c in copies.items()
    }


async def test_sample_picks_distinct_served_ids(leg: Leg) -> None:
    for key in range(1, 6):
        await leg.put(str(key), {"age": key})
    picked = await leg.served.sample("users", 3)
    assert len(picked) == 3 and len({s.id for s in picked}) == 3
    assert {s.id for s in picked} <= {str(k) for k in range(1, 6)}
    assert len(await leg.served.sample("users", 50)) == 5


async def test_a_repair_lands_only_on_the_copy_it_was_decided_against(leg: Leg) -> None:
    await leg.put("1", {"email": "old@x.io"})
    seen = (await leg.served.fetch("users", ["1"]))["1"].version
    (applied,) = await leg.served.repair("users", [Repair(Upsert(doc("1"), {"email": "fixed@x.io"}), seen)])
    assert applied.version is not None and applied.version != seen
    assert dict((await leg.served.fetch("users", ["1"]))["1"].source) == {"email": "fixed@x.io"}

    await leg.put("1", {"email": "newest@x.io"})  # live sync wrote after our look
    (lost,) = await leg.served.repair("users", [Repair(Upsert(doc("1"), {"email": "late@x.io"}), applied.version)])
    assert lost == RepairResult()
    assert dict((await leg.served.fetch("users", ["1"]))["1"].source) == {"email": "newest@x.io"}


async def test_a_repair_creates_only_where_the_index_still_has_no_copy(leg: Leg) -> None:
    (created,) = await leg.served.repair("users", [Repair(Upsert(doc("7"), {"age": 7}), None)])
    assert created.version is not None
    assert (await leg.served.fetch("users", ["7"]))["7"].version == created.version
    (lost,) = await leg.served.repair("users", [Repair(Upsert(doc("7"), {"age": 70}), None)])
    assert lost == RepairResult()
    assert dict((await leg.served.fetch("users", ["7"]))["7"].source) == {"age": 7}


async def test_a_repair_deletes_only_the_copy_it_saw(leg: Leg) -> None:
    await leg.put("1", {"age": 1})
    await leg.put("2", {"age": 2})
    copies = await leg.served.fetch("users", ["1", "2"])
    await leg.put("2", {"age": 22})  # rewritten after the look
    await leg.remove("3")
    results = await leg.served.repair("users", [
        Repair(Delete(doc("1")), copies["1"].version),
        Repair(Delete(doc("2")), copies["2"].version),
        Repair(Delete(doc("3")), copies["1"].version),  # already gone
    ])
    assert results[0].version is not None
    assert results[1] == RepairResult() and results[2] == RepairResult()
    assert set(await leg.served.fetch("users", ["1", "2", "3"])) == {"2"}


async def test_a_document_the_index_refuses_is_reported_and_the_rest_applied(leg: Leg) -> None:
    results = await leg.served.repair("users", [
        Repair(Upsert(doc("bad1"), {"undeclared": 1}), None),
        Repair(Upsert(doc("5"), {"age": 5}), None),
    ])
    assert results[0].refused and results[0].version is None
    assert results[1].version is not None
    assert set(await leg.served.fetch("users", ["bad1", "5"])) == {"5"}


async def test_an_index_the_sink_lacks_is_a_sink_error(leg: Leg) -> None:
    with pytest.raises(SinkError, match="users"):
        await leg.elsewhere.count("users")
    with pytest.raises(SinkError, match="users"):
        await leg.elsewhere.fetch("users", ["1"])
    with pytest.raises(SinkError, match="users"):
        [page async for page in leg.elsewhere.scan("users", 10)]
