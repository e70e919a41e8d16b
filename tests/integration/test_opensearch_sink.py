"""The OpenSearch sink's index lifecycle against the embedded server (and a real cluster when set).

First builds, restarts, schema changes and reverts, orphans and vanished generations,
reindex staging, skipped backfills and item rejections, at the sink's level.
"""

from __future__ import annotations

import logging

import pytest

from flusso.adapters.opensearch.sink import OpenSearchSink
from flusso.app.ports import SinkWriteError
from flusso.domain.documents.change import Delete, DocumentId, Upsert
from flusso.domain.errors import ConfigError
from opensearch_fixtures import ClusterProbe, sink_config, unique_prefix, users_mapping

H = "0123abcd"
K = "89abcdef"


def upsert(key, doc, index="users"):
    return Upsert(DocumentId(index, (key,)), doc)


def delete(key, index="users"):
    return Delete(DocumentId(index, (key,)))


@pytest.fixture
def prefix() -> str:
    return unique_prefix()


@pytest.fixture
def probe(opensearch_client, prefix) -> ClusterProbe:
    return ClusterProbe(opensearch_client, prefix)


@pytest.fixture
def new_sink(opensearch_client, prefix):
    """A sink as a (re)started run builds it: fresh state, same cluster and prefix."""

    def build(**kwargs) -> OpenSearchSink:
        return OpenSearchSink(
            opensearch_client, sink_name="primary", config=sink_config(), prefix=prefix, **kwargs
        )

    return build


async def seed(sink: OpenSearchSink, mapping, docs):
    await sink.ensure_index(mapping)
    await sink.write([upsert(k, d, mapping.index) for k, d in docs.items()])
    assert (await sink.flush(caught_up=True)).rejected == ()
    await sink.mark_seeded(mapping.index)


async def test_a_fresh_run_builds_generation_one_behind_both_aliases(new_sink, probe, prefix):
    sink = new_sink()
    mapping = users_mapping(H)
    await sink.ensure_index(mapping)
    assert await sink.is_seeded("users") is False
    await seed(sink, mapping, {1: {"email": "a@x.io"}, 2: {"email": "b@x.io"}})

    gen1 = f"{prefix}users_{H}_1"
    assert await probe.holders(f"{prefix}users_{H}") == [gen1]
    assert await probe.holders(f"{prefix}users") == [gen1]
    assert await probe.meta(f"{prefix}users_{H}") == {"active_generation": 1, "seeded": True}
    assert (await probe.settings(gen1))["refresh_interval"] == "10s"
    assert (await probe.mapping(gen1))["dynamic"] == "strict"
    assert await sink.is_seeded("users") is True
    assert await probe.documents(f"{prefix}users") == {
        "1": {"email": "a@x.io"},
        "2": {"email": "b@x.io"},
    }
    # Every object carries the prefix, the meta index included.
    assert await probe.exists(f"{prefix}flusso_meta")


async def test_a_new_generation_is_created_with_refresh_off_until_seeded(new_sink, probe, prefix):
    sink = new_sink()
    await sink.ensure_index(users_mapping(H))
    gen1 = f"{prefix}users_{H}_1"
    settings = await probe.settings(gen1)
    assert settings["refresh_interval"] == "-1"
    assert (str(settings["number_of_shards"]), str(settings["number_of_replicas"])) == ("1", "1")
    assert {"flusso_code", "flusso_text"} <= set(settings["analysis"]["analyzer"])
    assert "flusso_lowercase" in settings["analysis"]["normalizer"]
    assert await probe.meta(f"{prefix}users_{H}") == {"active_generation": 1, "seeded": False}
    await sink.mark_seeded("users")
    assert (await probe.settings(gen1))["refresh_interval"] == "10s"


async def test_a_restart_after_seeding_reuses_the_generation_and_answers_seeded(
    new_sink, probe, prefix
):
    await seed(new_sink(), users_mapping(H), {1: {"email": "a@x.io"}})
    restarted = new_sink()
    await restarted.ensure_index(users_mapping(H))
    assert await restarted.is_seeded("users") is True
    assert await probe.indices(f"{prefix}users_{H}_*") == [f"{prefix}users_{H}_1"]
    assert await probe.documents(f"{prefix}users_{H}") == {"1": {"email": "a@x.io"}}


async def test_a_concrete_convenience_index_only_costs_a_warning(new_sink, probe, prefix, caplog):
    await probe.client.indices.create(index=f"{prefix}users")
    sink = new_sink()
    with caplog.at_level(logging.WARNING, logger="flusso.adapters.opensearch.sink"):
        await seed(sink, users_mapping(H), {1: {"email": "a@x.io"}})
    assert await probe.holders(f"{prefix}users_{H}") == [f"{prefix}users_{H}_1"]
    assert any(
        r.getMessage()
        == "could not point the convenience alias at the index; writes are unaffected"
        for r in caplog.records
    )


async def test_a_concrete_index_named_like_the_hash_alias_stops_the_start(new_sink, probe, prefix):
    await probe.client.indices.create(index=f"{prefix}users_{H}")
    with pytest.raises(SinkWriteError) as caught:
        await new_sink().ensure_index(users_mapping(H))
    assert "exists as a concrete index from an older flusso version" in str(caught.value)
    assert not await probe.exists(f"{prefix}users_{H}_1")


async def test_an_invalid_prefix_is_refused_before_any_call(opensearch_client):
    with pytest.raises(ConfigError, match="invalid index prefix"):
        OpenSearchSink(opensearch_client, sink_name="primary", config=sink_config(), prefix="Dev_")


async def test_a_schema_change_builds_a_new_hash_and_keeps_the_bare_name_until_seeded(
    new_sink, probe, prefix
):
    await seed(new_sink(), users_mapping(H), {1: {"email": "a@x.io"}})
    sink = new_sink()
    await sink.ensure_index(users_mapping(K))
    old_gen, new_gen = f"{prefix}users_{H}_1", f"{prefix}users_{K}_1"
    assert await probe.holders(f"{prefix}users_{K}") == [new_gen]
    assert await probe.holders(f"{prefix}users") == [old_gen]  # the bare name keeps serving the seeded hash
    assert await probe.meta(f"{prefix}users_{H}") == {
        "active_generation": 2,
        "seeded": False,
    }  # the old hash is restaged: reverting to it rebuilds
    await sink.write([upsert(1, {"email": "new@x.io"})])
    await sink.flush(caught_up=True)
    await sink.mark_seeded("users")
    assert await probe.holders(f"{prefix}users") == [new_gen]
    assert await probe.exists(old_gen)
    assert await probe.exists(f"{prefix}users_{H}")
    assert await probe.documents(f"{prefix}users") == {"1": {"email": "new@x.io"}}


async def test_reverting_to_an_older_hash_rebuilds_it_instead_of_serving_stale_data(
    new_sink, probe, prefix
):
    await seed(new_sink(), users_mapping(H), {1: {"email": "old@x.io"}, 3: {"email": "c@x.io"}})
    await seed(new_sink(), users_mapping(K), {1: {"email": "k@x.io"}})
    reverted = new_sink()
    await reverted.ensure_index(users_mapping(H))
    assert await reverted.is_seeded("users") is False
    assert await probe.holders(f"{prefix}users_{H}") == [f"{prefix}users_{H}_1"]
    await reverted.write([upsert(1, {"email": "fresh@x.io"})])
    await reverted.flush(caught_up=True)
    await reverted.mark_seeded("users")
    assert await probe.indices(f"{prefix}users_{H}_*") == [f"{prefix}users_{H}_2"]
    assert await probe.documents(f"{prefix}users_{H}") == {"1": {"email": "fresh@x.io"}}
    assert await probe.meta(f"{prefix}users_{H}") == {"active_generation": 2, "seeded": True}


async def test_a_generation_left_without_meta_is_superseded_and_dropped(new_sink, probe, prefix):
    # A crash after `PUT users_H_1`, before its meta was written.
    await probe.client.indices.create(index=f"{prefix}users_{H}_1")
    sink = new_sink()
    await seed(sink, users_mapping(H), {1: {"email": "a@x.io"}})
    assert await probe.indices(f"{prefix}users_{H}_*") == [f"{prefix}users_{H}_2"]
    assert await probe.meta(f"{prefix}users_{H}") == {"active_generation": 2, "seeded": True}


async def test_a_seeded_marker_whose_generation_vanished_triggers_a_rebuild(
    new_sink, probe, prefix
):
    # A seeded marker must not serve an index whose data is gone.
    await seed(new_sink(), users_mapping(H), {1: {"email": "a@x.io"}})
    await probe.client.indices.delete(index=f"{prefix}users_{H}_1")
    sink = new_sink()
    await sink.ensure_index(users_mapping(H))
    assert await sink.is_seeded("users") is False
    assert await probe.meta(f"{prefix}users_{H}") == {"active_generation": 2, "seeded": False}
    await sink.write([upsert(1, {"email": "a@x.io"})])
    await sink.flush(caught_up=True)
    await sink.mark_seeded("users")
    assert await probe.holders(f"{prefix}users_{H}") == [f"{prefix}users_{H}_2"]
    assert await probe.documents(f"{prefix}users_{H}") == {"1": {"email": "a@x.io"}}


async def test_a_staged_reindex_builds_behind_the_serving_generation_then_swaps(
    new_sink, probe, prefix
):
    await seed(new_sink(), users_mapping(H), {1: {"email": "a@x.io"}, 2: {"email": "b@x.io"}})
    await new_sink().reindex(users_mapping(H))
    assert await probe.meta(f"{prefix}users_{H}") == {"active_generation": 2, "seeded": False}
    assert not await probe.exists(f"{prefix}users_{H}_2")

    sink = new_sink()
    await sink.ensure_index(users_mapping(H))
    assert await sink.is_seeded("users") is False
    assert await probe.exists(f"{prefix}users_{H}_2")
    assert await probe.holders(f"{prefix}users_{H}") == [f"{prefix}users_{H}_1"]
    await sink.write([upsert(1, {"email": "a2@x.io"})])
    await sink.flush(caught_up=False)
    assert await probe.documents(f"{prefix}users_{H}") == {
        "1": {"email": "a@x.io"},
        "2": {"email": "b@x.io"},
    }
    await sink.mark_seeded("users")
    assert await probe.indices(f"{prefix}users_{H}_*") == [f"{prefix}users_{H}_2"]
    assert await probe.holders(f"{prefix}users") == [f"{prefix}users_{H}_2"]
    assert await probe.documents(f"{prefix}users_{H}") == {"1": {"email": "a2@x.io"}}
    assert await probe.meta(f"{prefix}users_{H}") == {"active_generation": 2, "seeded": True}


async def test_skip_backfill_with_a_staged_rebuild_writes_to_the_serving_generation(
    new_sink, probe, prefix
):
    # Nothing will seed the staged generation, so readers must stay current.
    await seed(new_sink(), users_mapping(H), {1: {"email": "a@x.io"}})
    await new_sink().reindex(users_mapping(H))
    sink = new_sink(skip_backfill=True)
    await sink.ensure_index(users_mapping(H))
    await sink.write([upsert(1, {"email": "live@x.io"})])
    await sink.flush(caught_up=True)
    assert await probe.documents(f"{prefix}users_{H}") == {"1": {"email": "live@x.io"}}
    assert await probe.documents(f"{prefix}users_{H}_2") == {}


async def test_refused_items_come_back_as_rejections_and_the_rest_is_applied(
    new_sink, probe, prefix
):
    sink = new_sink()
    await sink.ensure_index(users_mapping(H))
    await sink.write(
        [
            upsert(1, {"email": "a@x.io"}),
            upsert(42, {"undeclared": "x"}),
            delete(7),
            upsert(3, {"email": "c@x.io"}),
        ]
    )
    report = await sink.flush(caught_up=True)
    assert [(r.index, r.id) for r in report.rejected] == [("users", "42")]
    assert "strict" in report.rejected[0].reason
    assert set(await probe.documents(f"{prefix}users_{H}")) == {"1", "3"}


async def test_mark_seeded_without_ensure_index_is_an_error(new_sink):
    with pytest.raises(
        SinkWriteError, match="cannot mark users seeded: it has no active generation"
    ):
        await new_sink().mark_seeded("users")
