"""The IndexAdmin contract: the generation-level steps of an online rebuild, held by the fake
and the OpenSearch sink alike. Every step is idempotent; alias moves are atomic; writes to
a generation wait for `flush_generations`, apart from the live buffer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.contract.admin_legs import LEGS, MAPPING, Leg, admin_leg

from flusso.app.ports import SinkError
from flusso.domain.documents.change import Delete, DocumentId, Upsert
from flusso.domain.reindex import AliasAction


@pytest.fixture(params=LEGS)
async def leg(request: pytest.FixtureRequest) -> AsyncIterator[Leg]:
    async with admin_leg(request) as leg:
        yield leg


def upsert(key: Any, doc: dict[str, Any]) -> Upsert:
    return Upsert(DocumentId("users", (key,)), doc)


async def test_creating_a_generation_twice_creates_it_once_with_refresh_off(leg: Leg):
    names = leg.admin.index_names(MAPPING)
    gen = names.generation(1)
    assert await leg.admin.create_generation(MAPPING, gen) is True
    assert await leg.admin.create_generation(MAPPING, gen) is False
    assert await leg.probe.documents(gen) == {}
    assert await leg.probe.refresh_interval(gen) == "-1"


async def test_refresh_sets_the_configured_interval(leg: Leg):
    names = leg.admin.index_names(MAPPING)
    gen = names.generation(1)
    await leg.admin.create_generation(MAPPING, gen)
    await leg.admin.refresh(gen, leg.admin.refresh_interval)
    assert leg.admin.refresh_interval == "10s"
    assert await leg.probe.refresh_interval(gen) == "10s"


async def test_an_alias_moves_in_one_step_and_a_repeated_move_changes_nothing(leg: Leg):
    names = leg.admin.index_names(MAPPING)
    one, two = names.generation(1), names.generation(2)
    for gen in (one, two):
        await leg.admin.create_generation(MAPPING, gen)
    await leg.admin.swap_aliases([AliasAction("add", one, names.hash_alias)])
    move = [AliasAction("remove", one, names.hash_alias), AliasAction("add", two, names.hash_alias)]
    await leg.admin.swap_aliases(move)
    await leg.admin.swap_aliases([AliasAction("add", two, names.hash_alias)])
    await leg.admin.swap_aliases([])
    assert await leg.probe.holders(names.hash_alias) == [two]


async def test_an_alias_call_naming_a_missing_index_fails_and_moves_nothing(leg: Leg):
    names = leg.admin.index_names(MAPPING)
    one = names.generation(1)
    await leg.admin.create_generation(MAPPING, one)
    await leg.admin.swap_aliases([AliasAction("add", one, names.hash_alias)])
    with pytest.raises(SinkError):
        await leg.admin.swap_aliases([
            AliasAction("remove", one, names.hash_alias),
            AliasAction("add", names.generation(9), names.hash_alias),
        ])
    assert await leg.probe.holders(names.hash_alias) == [one]


async def test_dropping_removes_the_generation_and_a_missing_one_is_fine(leg: Leg):
    names = leg.admin.index_names(MAPPING)
    one = names.generation(1)
    await leg.admin.create_generation(MAPPING, one)
    await leg.admin.swap_aliases([AliasAction("add", one, names.hash_alias)])
    await leg.admin.drop([one, names.generation(7)])
    await leg.admin.drop([one])
    assert await leg.probe.documents(one) is None
    assert await leg.probe.holders(names.hash_alias) == []
    assert (await leg.admin.cluster_view(names)).generations == ()


async def test_generation_writes_wait_for_their_own_flush_and_skip_the_live_buffer(leg: Leg):
    names = leg.admin.index_names(MAPPING)
    one, two = names.generation(1), names.generation(2)
    for gen in (one, two):
        await leg.admin.create_generation(MAPPING, gen)
    leg.admin.route_writes("users", [one])
    await leg.admin.write_generation(two, [upsert(1, {"email": "seed@x.io"})])
    await leg.sink.write([upsert(2, {"email": "live@x.io"})])
    await leg.sink.flush(caught_up=True)
    await leg.admin.refresh(two, "1s")
    assert await leg.probe.documents(two) == {}
    report = await leg.admin.flush_generations()
    assert report.rejected == ()
    await leg.admin.refresh(two, "1s")
    assert await leg.probe.documents(two) == {"1": {"email": "seed@x.io"}}
    assert await leg.probe.documents(one) == {"2": {"email": "live@x.io"}}


async def test_routed_live_writes_reach_every_generation_named(leg: Leg):
    names = leg.admin.index_names(MAPPING)
    one, two = names.generation(1), names.generation(2)
    for gen in (one, two):
        await leg.admin.create_generation(MAPPING, gen)
    leg.admin.route_writes("users", [one, two])
    await leg.sink.write([upsert(1, {"email": "a@x.io"}), upsert(2, {"email": "b@x.io"})])
    await leg.sink.flush(caught_up=True)
    leg.admin.route_writes("users", [two])
    await leg.sink.write([Delete(DocumentId("users", (1,)))])
    await leg.sink.flush(caught_up=True)
    assert await leg.probe.documents(one) == {"1": {"email": "a@x.io"}, "2": {"email": "b@x.io"}}
    assert await leg.probe.documents(two) == {"2": {"email": "b@x.io"}}


async def test_a_refused_generation_write_is_reported_by_logical_index(leg: Leg):
    names = leg.admin.index_names(MAPPING)
    gen = names.generation(1)
    await leg.admin.create_generation(MAPPING, gen)
    await leg.admin.write_generation(
        gen, [upsert(1, {"email": "a@x.io"}), upsert("bad7", {"undeclared": 1})]
    )
    report = await leg.admin.flush_generations()
    assert [(r.index, r.id) for r in report.rejected] == [("users", "bad7")]
    await leg.admin.refresh(gen, "1s")
    assert await leg.probe.documents(gen) == {"1": {"email": "a@x.io"}}
