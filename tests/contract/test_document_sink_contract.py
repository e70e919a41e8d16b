"""The DocumentSink contract: where documents go, held by the in-memory fake, the stdout
sink, the OpenSearch sink on the embedded server and (when FLUSSO_TEST_OPENSEARCH_URL is
set) on a real cluster alike.

One fixture yields the sink and a read-back of the documents readers see for a logical
index (for stdout: the envelopes flushed so far, folded by id).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.contract.sink_legs import LEGS, MAPPING, Leg, sink_leg

from flusso.domain.documents.change import Delete, DocumentId, Upsert


@pytest.fixture(params=LEGS)
async def leg(request: pytest.FixtureRequest) -> AsyncIterator[Leg]:
    async with sink_leg(request) as leg:
        yield leg


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


async def test_refused_documents_are_reported_by_logical_index_and_the_rest_applied(leg):
    await leg.sink.ensure_index(MAPPING)
    await leg.sink.write(
        [upsert(1, {"email": "a@x.io"}), upsert("bad42", {"undeclared": 1}), upsert(3, {"age": 5})]
    )
    report = await leg.sink.flush(caught_up=True)
    assert [(r.index, r.id) for r in report.rejected] == [("users", i) for i in leg.refused]
    assert all(r.reason for r in report.rejected)
    applied = {"1": {"email": "a@x.io"}, "bad42": {"undeclared": 1}, "3": {"age": 5}}
    for refused in leg.refused:
        del applied[refused]
    assert await leg.documents("users") == applied


async def test_an_empty_flush_reports_nothing(leg):
    await leg.sink.ensure_index(MAPPING)
    assert (await leg.sink.flush(caught_up=False)).rejected == ()
