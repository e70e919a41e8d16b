"""The IndexFacts contract: what a generation-keeping sink shows about a logical index, held
by the fake and the OpenSearch sink alike. State is set up through the admin side of the
same sink; the facts are read back through the port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from tests.contract.admin_legs import LEGS, MAPPING, Leg, admin_leg

from flusso.domain.lifecycle import Meta
from flusso.domain.reindex import AliasAction, ClusterView


@pytest.fixture(params=LEGS)
async def leg(request: pytest.FixtureRequest) -> AsyncIterator[Leg]:
    async with admin_leg(request) as leg:
        yield leg


async def test_the_names_of_an_index_carry_the_prefix_and_the_schema_hash(leg: Leg):
    names = leg.admin.index_names(MAPPING)
    assert names.logical == "users"
    assert names.hash_alias == f"{leg.prefix}users_0123abcd"
    assert names.bare_alias == f"{leg.prefix}users"
    assert names.generation(3) == f"{leg.prefix}users_0123abcd_3"
    assert leg.admin.sink_name == "primary"


async def test_a_fresh_index_shows_no_marker_holders_or_generations(leg: Leg):
    names = leg.admin.index_names(MAPPING)
    assert await leg.admin.read_marker(names) is None
    assert await leg.admin.cluster_view(names) == ClusterView()


async def test_the_marker_reads_back_as_last_written(leg: Leg):
    names = leg.admin.index_names(MAPPING)
    await leg.admin.write_marker(names.hash_alias, 1, False)
    assert await leg.admin.read_marker(names) == Meta(1, False)
    await leg.admin.write_marker(names.hash_alias, 1, True)
    assert await leg.admin.read_marker(names) == Meta(1, True)


async def test_the_view_lists_generation_numbers_in_order_and_the_alias_holders(leg: Leg):
    names = leg.admin.index_names(MAPPING)
    for n in (3, 1, 2):
        await leg.admin.create_generation(MAPPING, names.generation(n))
    await leg.admin.swap_aliases([
        AliasAction("add", names.generation(2), names.hash_alias),
        AliasAction("add", names.generation(2), names.bare_alias),
    ])
    view = await leg.admin.cluster_view(names)
    assert view == ClusterView(
        hash_holders=(names.generation(2),),
        bare_holders=(names.generation(2),),
        generations=(1, 2, 3),
    )


async def test_indexes_of_another_hash_are_not_generations_of_this_one(leg: Leg):
    names = leg.admin.index_names(MAPPING)
    other = f"{leg.prefix}users_89abcdef_1"
    await leg.admin.create_generation(MAPPING, other)
    await leg.admin.create_generation(MAPPING, names.generation(1))
    await leg.admin.swap_aliases([AliasAction("add", other, names.bare_alias)])
    view = await leg.admin.cluster_view(names)
    assert view.generations == (1,)
    assert view.hash_holders == ()
    assert view.bare_holders == (other,)
