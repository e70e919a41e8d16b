"""The Sink contract: both roles on one object, as the pipeline writes through it. Held by the
fake, the stdout sink and the OpenSearch sink; the legs are those of the DocumentSink suite.

What only the combination shows: writes made while a rebuild is staged reach readers when
the rebuild is marked seeded, and not before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.contract.sink_legs import LEGS, MAPPING, Leg, sink_leg

from flusso.domain.documents.change import DocumentId, Upsert


@pytest.fixture(params=LEGS)
async def leg(request: pytest.FixtureRequest) -> AsyncIterator[Leg]:
    async with sink_leg(request) as leg:
        yield leg


def upsert(key: Any, doc: dict[str, Any]) -> Upsert:
    return Upsert(DocumentId("users", (key,)), doc)


async def test_a_seeded_index_serves_every_flushed_write(leg):
    await leg.sink.ensure_index(MAPPING)
    await leg.sink.write([upsert(1, {"email": "a@x.io"})])
    await leg.sink.flush(caught_up=False)
    await leg.sink.mark_seeded("users")
    await leg.sink.write([upsert(2, {"email": "b@x.io"})])
    await leg.sink.flush(caught_up=True)
    assert await leg.documents("users") == {"1": {"email": "a@x.io"}, "2": {"email": "b@x.io"}}


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
    assert await leg.sink.is_seeded("users") is leg.keeps_marks
    rebuilt = {"1": {"email": "rebuilt@x.io"}}
    if not leg.keeps_marks:  # nothing to swap: readers have seen every write
        rebuilt["2"] = {"email": "b@x.io"}
    assert await leg.documents("users") == rebuilt
