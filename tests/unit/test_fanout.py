"""Several sinks behind one port: name order, AND of seeded, reindex reaches every sink."""

from __future__ import annotations

import io
import json

import pytest

from flusso.adapters.fakes.sink import InMemorySink
from flusso.adapters.stdout.sink import StdoutSink
from flusso.app.fanout import FanOutSink, combine_sinks
from flusso.app.ports import SinkWriteError
from flusso.domain.documents.change import DocumentId, Upsert
from flusso.domain.types import IndexMapping

MAPPING = IndexMapping("users", "0123abcd", ())


def upsert(key):
    return Upsert(DocumentId("users", (key,)), {"email": f"{key}@x.io"})


def test_sinks_are_ordered_by_name_whatever_the_declaration_order():
    fan = FanOutSink({"primary": InMemorySink(), "audit": InMemorySink()})
    assert fan.names == ("audit", "primary")


async def test_writes_and_flushes_reach_every_sink_and_rejections_are_concatenated():
    audit = InMemorySink(reject=lambda index, doc_id: "audit says no" if doc_id == "1" else None)
    primary = InMemorySink(
        reject=lambda index, doc_id: "primary says no" if doc_id == "2" else None
    )
    fan = FanOutSink({"primary": primary, "audit": audit})
    await fan.ensure_index(MAPPING)
    await fan.write([upsert(1), upsert(2), upsert(3)])
    report = await fan.flush(caught_up=True)
    assert [(r.id, r.reason) for r in report.rejected] == [
        ("1", "audit says no"),
        ("2", "primary says no"),
    ]
    assert set(audit.documents("users")) == {"2", "3"}
    assert set(primary.documents("users")) == {"1", "3"}


async def test_the_first_failing_flush_aborts_the_rest():
    audit = InMemorySink(fail_flushes=1)
    primary = InMemorySink()
    fan = FanOutSink({"audit": audit, "primary": primary})
    await fan.write([upsert(1)])
    with pytest.raises(SinkWriteError):
        await fan.flush(caught_up=True)
    assert primary.documents("users") == {}
    assert primary.pending == (upsert(1),)


async def test_an_index_is_seeded_only_when_every_sink_says_so_and_stdout_never_does():
    primary = InMemorySink(seeded=["users"])
    fan = FanOutSink({"audit": StdoutSink(io.StringIO()), "primary": primary})
    assert await fan.is_seeded("users") is False
    assert primary.seeded_queries == []  # short-circuited on the first false
    both = FanOutSink({"a": InMemorySink(seeded=["users"]), "b": InMemorySink(seeded=["users"])})
    assert await both.is_seeded("users") is True


async def test_mark_seeded_and_reindex_are_forwarded_to_every_sink():
    a, b = InMemorySink(), InMemorySink()
    fan = FanOutSink({"a": a, "b": b})
    await fan.ensure_index(MAPPING)
    await fan.mark_seeded("users")
    assert a.is_marked_seeded("users") and b.is_marked_seeded("users")
    await fan.reindex(MAPPING)  # every destination is rebuilt
    assert not a.is_marked_seeded("users") and not b.is_marked_seeded("users")


async def test_closing_closes_every_sink():
    a, b = InMemorySink(), InMemorySink()
    await FanOutSink({"a": a, "b": b}).close()
    assert a.closed and b.closed


async def test_stdout_next_to_another_sink_emits_one_envelope_per_document():
    out = io.StringIO()
    primary = InMemorySink()
    fan = FanOutSink({"audit": StdoutSink(out), "primary": primary})
    await fan.write([upsert(1), upsert(2)])
    await fan.flush(caught_up=True)
    assert [json.loads(line)["id"] for line in out.getvalue().splitlines()] == ["1", "2"]
    assert set(primary.documents("users")) == {"1", "2"}


def test_combining_uses_a_single_sink_directly_and_falls_back_when_there_is_none():
    only = InMemorySink()
    fallback = InMemorySink()
    assert combine_sinks({"primary": only}, fallback=lambda: fallback) is only
    assert combine_sinks({}, fallback=lambda: fallback) is fallback
    assert isinstance(combine_sinks({"a": only, "b": fallback}, fallback=InMemorySink), FanOutSink)
