"""The IndexSeeding contract: whether an index holds every document, held by the fake, the
stdout sink (which keeps no marks, so every start backfills it) and the OpenSearch sink.

The legs are those of the DocumentSink suite; seeding is asked after `ensure_index`. A
staged reindex, which needs writes too, is in the Sink suite.
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


async def test_a_fresh_index_is_unseeded_until_marked(leg):
    await leg.sink.ensure_index(MAPPING)
    assert await leg.sink.is_seeded("users") is False
    await leg.sink.mark_seeded("users")
    assert await leg.sink.is_seeded("users") is leg.keeps_marks


async def test_marking_twice_is_the_same_as_marking_once(leg):
    await leg.sink.ensure_index(MAPPING)
    await leg.sink.write([upsert(1, {"email": "a@x.io"})])
    await leg.sink.flush(caught_up=True)
    await leg.sink.mark_seeded("users")
    await leg.sink.mark_seeded("users")
    assert await leg.sink.is_seeded("users") is leg.keeps_marks
    assert await leg.documents("users") == {"1": {"email": "a@x.io"}}
