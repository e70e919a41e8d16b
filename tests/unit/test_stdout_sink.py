"""The stdout sink's envelopes: one JSON line per document operation."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from flusso.adapters.stdout.sink import StdoutSink, format_timestamp
from flusso.app.ports import SinkSerializeError, SinkWriteError
from flusso.domain.documents.change import Delete, DocumentId, Upsert
from flusso.domain.types import IndexMapping

FIXED = datetime(2026, 6, 3, 10, 20, 30, 123456, tzinfo=UTC)


def _sink(stream, **kwargs):
    return StdoutSink(stream, version="0.15.1", clock=lambda: FIXED, **kwargs)


def _upsert(index, key, doc):
    return Upsert(DocumentId(index, (key,)), doc)


async def test_an_upsert_then_a_delete_print_the_exact_envelopes():
    out = io.StringIO()
    sink = _sink(out)
    await sink.write([_upsert("users", 42, {"email": "ada@x.io"})])
    await sink.write([Delete(DocumentId("users", (7,)))])
    report = await sink.flush(caught_up=True)
    assert report.rejected == ()
    assert out.getvalue().splitlines() == [
        '{"document":{"email":"ada@x.io"},"id":"42","index":"users","meta":{"bytes":20,"fields":1},'
        '"op":"upsert","seq":1,"sink":"stdout","ts":"2026-06-03T10:20:30.123Z","version":"0.15.1"}',
        '{"id":"7","index":"users","op":"delete","seq":2,"sink":"stdout",'
        '"ts":"2026-06-03T10:20:30.123Z","version":"0.15.1"}',
    ]


async def test_pretty_envelopes_span_several_lines_with_two_space_indent():
    out = io.StringIO()
    await _sink(out, pretty=True).write([_upsert("users", 42, {"email": "ada@x.io"})])
    text = out.getvalue()
    assert text.count("\n") > 5
    assert '\n  "document": {\n    "email": "ada@x.io"\n  },' in text
    assert json.loads(text)["seq"] == 1


async def test_documents_are_rendered_with_sorted_keys_and_meta_counts_utf8_bytes():
    out = io.StringIO()
    await _sink(out).write([_upsert("users", 1, {"z": Decimal("1.5"), "a": "é"})])
    envelope = json.loads(out.getvalue())
    assert out.getvalue().index('"a"') < out.getvalue().index('"z"')
    assert envelope["document"] == {"a": "é", "z": 1.5}
    assert envelope["meta"] == {"bytes": len('{"a":"é","z":1.5}'.encode()), "fields": 2}


async def test_each_sink_instance_counts_from_one():
    first, second = io.StringIO(), io.StringIO()
    await _sink(first).write([_upsert("users", 1, {}), _upsert("users", 2, {})])
    await _sink(second).write([_upsert("users", 3, {})])
    assert [json.loads(line)["seq"] for line in first.getvalue().splitlines()] == [1, 2]
    assert json.loads(second.getvalue())["seq"] == 1


async def test_the_stdout_sink_is_never_seeded_and_seeding_calls_do_nothing():
    out = io.StringIO()
    sink = _sink(out)
    mapping = IndexMapping("users", "ab12cd34", ())
    await sink.ensure_index(mapping)
    await sink.mark_seeded("users")
    await sink.reindex(mapping)
    assert await sink.is_seeded("users") is False
    assert out.getvalue() == ""


async def test_writing_to_a_closed_stream_is_a_write_error():
    out = io.StringIO()
    out.close()
    with pytest.raises(SinkWriteError, match="^write failed: stdout: "):
        await _sink(out).write([_upsert("users", 1, {})])


class _BrokenPipe(io.StringIO):
    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")


async def test_a_broken_pipe_on_flush_is_a_write_error():
    with pytest.raises(SinkWriteError, match="Broken pipe"):
        await _sink(_BrokenPipe()).flush(caught_up=False)


async def test_an_unrenderable_document_is_a_serialization_error():
    with pytest.raises(SinkSerializeError, match="^serialization failed: document users/1: "):
        await _sink(io.StringIO()).write([_upsert("users", 1, {"x": object()})])


def test_timestamps_have_exactly_three_fraction_digits_and_z():
    assert format_timestamp(FIXED) == "2026-06-03T10:20:30.123Z"
    assert format_timestamp(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00.000Z"
