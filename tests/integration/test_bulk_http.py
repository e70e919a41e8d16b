"""Bulk requests over real HTTP against a recording stub OpenSearch: chunking, retries,
rejections and the bodies of generation creation and seeding.

The client is never mocked: the sink talks to an aiohttp server on a free port
that scripts its replies and records every request.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from flusso.adapters.opensearch.client import open_opensearch_client
from flusso.adapters.opensearch.sink import OpenSearchSink
from flusso.app.ports import SinkUnavailableError, SinkWriteError
from flusso.domain.documents.change import Delete, DocumentId, Upsert
from opensearch_fixtures import answer, item_statuses, sink_config, users_mapping

SINK_LOGGER = "flusso.adapters.opensearch.sink"


def upsert(key, doc=None):
    return Upsert(DocumentId("users", (key,)), doc if doc is not None else {"email": f"{key}@x.io"})


def delete(key):
    return Delete(DocumentId("users", (key,)))


@pytest.fixture
async def client(stub_opensearch):
    client = open_opensearch_client(stub_opensearch.url, timeout_secs=5)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def make_sink(client):
    def build(backoff_base: float = 0.001, **config) -> OpenSearchSink:
        return OpenSearchSink(
            client, sink_name="primary", config=sink_config(**config), backoff_base=backoff_base
        )

    return build


def ids(recorded):
    return [next(iter(a.values()))["_id"] for a in recorded.bulk_actions]


async def test_an_empty_flush_sends_nothing(make_sink, stub_opensearch):
    report = await make_sink().flush(caught_up=True)
    assert report.rejected == ()
    assert stub_opensearch.requests == []


async def test_five_upserts_with_batch_size_two_go_out_as_two_two_one(make_sink, stub_opensearch):
    sink = make_sink(batch_size=2)
    await sink.write([upsert(k) for k in range(1, 6)])
    await sink.flush(caught_up=False)
    assert [ids(r) for r in stub_opensearch.bulk_requests] == [["1", "2"], ["3", "4"], ["5"]]
    assert all(
        r.content_type.startswith("application/x-ndjson") for r in stub_opensearch.bulk_requests
    )


async def test_the_byte_cap_splits_requests_and_warns_about_an_oversized_document(
    make_sink, stub_opensearch, caplog
):
    small = {"e": "x"}  # a 49-byte fragment with ids 1, 3 and 4
    sink = make_sink(max_bytes=100)
    await sink.write(
        [upsert(1, small), upsert(2, {"e": "y" * 100}), upsert(3, small), upsert(4, small)]
    )
    with caplog.at_level(logging.WARNING, logger=SINK_LOGGER):
        await sink.flush(caught_up=False)
    assert [ids(r) for r in stub_opensearch.bulk_requests] == [["1"], ["2"], ["3", "4"]]
    oversized = [
        r
        for r in caplog.records
        if r.getMessage()
        == "a single document exceeds the bulk byte cap; sending it in its own request"
    ]
    assert len(oversized) == 1
    assert oversized[0].max_bytes == 100 and oversized[0].bytes > 100


@pytest.mark.parametrize(
    ("caught_up", "path"),
    [(True, "/_bulk?pipeline=p&refresh=true"), (False, "/_bulk?pipeline=p")],
)
async def test_the_pipeline_and_refresh_ride_on_every_bulk_url(
    make_sink, stub_opensearch, caught_up, path
):
    sink = make_sink(pipeline="p", batch_size=1)
    await sink.write([upsert(1), upsert(2)])
    await sink.flush(caught_up=caught_up)
    assert [r.path for r in stub_opensearch.bulk_requests] == [path, path]


async def test_whole_request_failures_are_retried_on_the_backoff_schedule(
    make_sink, stub_opensearch, caplog
):
    stub_opensearch.bulk_replies[:] = [answer(503), answer(503)]
    sink = make_sink(backoff_base=0.2)
    await sink.write([upsert(1)])
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger=SINK_LOGGER):
        report = await sink.flush(caught_up=True)
    elapsed = time.monotonic() - started
    assert report.rejected == ()
    assert len(stub_opensearch.bulk_requests) == 3
    assert 0.6 <= elapsed < 1.5  # 0.2 s + 0.4 s
    retries = [r for r in caplog.records if r.getMessage() == "retrying OpenSearch bulk request"]
    assert [r.attempt for r in retries] == [1, 2]


async def test_a_request_refused_every_time_fails_the_flush_after_all_attempts(
    make_sink, stub_opensearch
):
    stub_opensearch.bulk_default = answer(429, {"error": "slow down"})
    sink = make_sink(max_retries=3)
    await sink.write([upsert(1)])
    with pytest.raises(SinkUnavailableError) as caught:
        await sink.flush(caught_up=True)
    assert len(stub_opensearch.bulk_requests) == 4
    assert str(caught.value).startswith(
        'write failed: bulk request failed: HTTP 429 Too Many Requests: {"error":"slow down"}'
    )
    assert caught.value.__cause__ is not None


async def test_client_errors_such_as_400_are_retried_too(make_sink, stub_opensearch):
    stub_opensearch.bulk_replies[:] = [answer(400), answer(401)]
    sink = make_sink()
    await sink.write([upsert(1)])
    assert (await sink.flush(caught_up=False)).rejected == ()
    assert len(stub_opensearch.bulk_requests) == 3


async def test_an_unreachable_cluster_is_a_transport_error_after_the_retries(
    client, make_sink, stub_opensearch
):
    await stub_opensearch.stop()
    sink = make_sink(max_retries=1)
    await sink.write([upsert(1)])
    with pytest.raises(SinkUnavailableError, match="^write failed: bulk request error: "):
        await sink.flush(caught_up=True)


async def test_an_unparsable_success_body_fails_at_once_without_retry(make_sink, stub_opensearch):
    stub_opensearch.bulk_default = lambda actions: (200, ["not", "a", "reply"])
    sink = make_sink()
    await sink.write([upsert(1)])
    with pytest.raises(SinkWriteError, match="failed to read bulk response"):
        await sink.flush(caught_up=True)
    assert len(stub_opensearch.bulk_requests) == 1


async def test_a_throttled_item_is_resent_alone_and_is_not_a_rejection(make_sink, stub_opensearch):
    # Throttled items are re-sent alone, not rejected.
    stub_opensearch.bulk_replies[:] = [item_statuses(201, (429, "too many requests"), 201)]
    sink = make_sink()
    await sink.write([upsert(1), upsert(2), upsert(3)])
    report = await sink.flush(caught_up=True)
    assert report.rejected == ()
    assert [ids(r) for r in stub_opensearch.bulk_requests] == [["1", "2", "3"], ["2"]]


async def test_items_throttled_until_the_budget_runs_out_fail_the_flush(make_sink, stub_opensearch):
    stub_opensearch.bulk_default = item_statuses((503, "unavailable"), (503, "unavailable"))
    sink = make_sink(max_retries=2)
    await sink.write([upsert(1)])
    with pytest.raises(SinkWriteError) as caught:
        await sink.flush(caught_up=True)
    assert str(caught.value) == (
        "write failed: bulk items still rejected as transient after 3 attempts: unavailable"
    )
    assert len(stub_opensearch.bulk_requests) == 3


async def test_a_400_item_is_rejected_once_and_the_others_stay_applied(make_sink, stub_opensearch):
    # The rejection is reported, never retried.
    stub_opensearch.bulk_replies[:] = [
        item_statuses(201, (400, "failed to parse field [age]"), 201)
    ]
    sink = make_sink()
    await sink.write([upsert(1), upsert(42), upsert(3)])
    report = await sink.flush(caught_up=True)
    assert [(r.index, r.id, r.reason) for r in report.rejected] == [
        ("users", "42", "failed to parse field [age]")
    ]
    assert len(stub_opensearch.bulk_requests) == 1


async def test_a_missing_delete_is_not_a_rejection_next_to_a_real_one(make_sink, stub_opensearch):
    # A delete of a missing document succeeded.
    stub_opensearch.bulk_replies[:] = [item_statuses(400, 404)]
    sink = make_sink()
    await sink.write([upsert(42), delete(7)])
    report = await sink.flush(caught_up=True)
    assert [(r.id, r.reason) for r in report.rejected] == [("42", "rejected with status 400")]


async def test_a_failing_chunk_raises_after_earlier_chunks_were_sent(make_sink, stub_opensearch):
    stub_opensearch.bulk_replies[:] = [item_statuses((400, "bad")), answer(500), answer(500)]
    sink = make_sink(batch_size=1, max_retries=1)
    await sink.write([upsert(1), upsert(2)])
    with pytest.raises(SinkWriteError, match="HTTP 500 Internal Server Error"):
        await sink.flush(caught_up=False)
    assert [ids(r) for r in stub_opensearch.bulk_requests] == [["1"], ["2"], ["2"]]
    # The buffer was drained: the batch is redelivered by the source, not re-sent from here.
    assert (await sink.flush(caught_up=False)).rejected == ()
    assert len(stub_opensearch.bulk_requests) == 3


async def test_writes_go_to_the_announced_generation_and_rejections_name_the_logical_index(
    make_sink, stub_opensearch
):
    sink = make_sink()
    await sink.ensure_index(users_mapping("0123abcd"))
    stub_opensearch.bulk_replies[:] = [item_statuses((400, "bad"))]
    await sink.write([upsert(1)])
    report = await sink.flush(caught_up=True)
    (request,) = stub_opensearch.bulk_requests
    assert request.bulk_actions == [{"index": {"_index": "users_0123abcd_1", "_id": "1"}}]
    assert [(r.index, r.id) for r in report.rejected] == [("users", "1")]


async def test_generation_creation_and_seeding_send_the_expected_bodies(make_sink, stub_opensearch):
    sink = make_sink(number_of_shards=2, number_of_replicas=0, refresh_interval="5s")
    await sink.ensure_index(users_mapping("0123abcd"))
    await sink.mark_seeded("users")
    by_call = {(r.method, r.path): r for r in stub_opensearch.requests}
    body = by_call[("PUT", "/users_0123abcd_1")].json
    assert body["settings"]["index"] == {
        "refresh_interval": "-1",
        "number_of_shards": 2,
        "number_of_replicas": 0,
    }
    assert body["mappings"]["dynamic"] == "strict"
    assert {"flusso_code", "flusso_text"} <= set(body["settings"]["analysis"]["analyzer"])
    assert "flusso_lowercase" in body["settings"]["analysis"]["normalizer"]
    assert by_call[("PUT", "/users_0123abcd_1/_settings")].json == {
        "index": {"refresh_interval": "5s"}
    }
    assert by_call[("PUT", "/flusso_meta/_doc/users_0123abcd")].json == {
        "active_generation": 1,
        "seeded": True,
    }


async def test_an_unreachable_cluster_during_ensure_index_is_a_transient_error(
    make_sink, stub_opensearch
):
    sink = make_sink()
    await stub_opensearch.stop()
    with pytest.raises(SinkUnavailableError, match="^write failed: listing indices failed: "):
        await sink.ensure_index(users_mapping("0123abcd"))


async def test_retry_sleeps_follow_the_doubling_schedule(make_sink, stub_opensearch, monkeypatch):
    stub_opensearch.bulk_default = answer(502)
    sleeps: list[float] = []
    real_sleep = asyncio.sleep

    async def recording_sleep(delay):
        sleeps.append(delay)
        await real_sleep(0)

    monkeypatch.setattr("flusso.adapters.opensearch.sink.asyncio.sleep", recording_sleep)
    sink = make_sink(backoff_base=0.2, max_retries=3)
    await sink.write([upsert(1)])
    with pytest.raises(SinkUnavailableError, match="HTTP 502 Bad Gateway"):
        await sink.flush(caught_up=True)
    assert sleeps == [0.2, 0.4, 0.8]  # ≈1.4 s over four attempts
