"""The `flusso run` loop wired by the container, with in-memory parts swapped in by overriding
providers: nothing here reaches Postgres or OpenSearch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, get_args

import httpx
import pytest
from dependency_injector import providers

from flusso.adapters.fakes.builder import InMemoryDocumentBuilder, InMemoryIndex
from flusso.adapters.fakes.capture import InMemoryChangeCapture
from flusso.adapters.fakes.catalog import InMemoryCatalog, InMemoryTable
from flusso.adapters.fakes.journal import InMemoryJournal
from flusso.adapters.fakes.sink import InMemorySink
from flusso.app.ports import SourceError
from flusso.domain.config.model import (
    Deployment,
    IndexConfig,
    IndexSchema,
    OpenSearchSinkConfig,
    Secret,
    ServerConfig,
    SinkConfig,
    SourceConfig,
    StdoutSinkConfig,
)
from flusso.domain.documents.change import ChangeEvent, TableRef
from flusso.domain.errors import ConfigError
from flusso.domain.validation import ColumnFacts
from flusso.entrypoints.container import SINK_KINDS, Container, build_sinks
from flusso.entrypoints.daemon import Daemon, PipelineStoppedError
from flusso.entrypoints.settings import RunSettings

USERS = TableRef("public", "users")


def key(value: Any) -> tuple[tuple[str, Any], ...]:
    return (("id", value),)


def catalog(*tables: TableRef) -> InMemoryCatalog:
    """A source where each of `tables` exists with an integer `id` key."""
    columns = {"id": ColumnFacts(pg_type="integer", nullable=False, is_enum=False)}
    return InMemoryCatalog({table: InMemoryTable(columns) for table in tables})


def opener(found: InMemoryCatalog) -> Callable[[str], Any]:
    @asynccontextmanager
    async def open_catalog(url: str) -> AsyncIterator[InMemoryCatalog]:
        yield found

    return open_catalog


def deployment(**changes: Any) -> Deployment:
    base = Deployment(
        source=SourceConfig(connection=Secret(value="postgresql://app@db.invalid/app")),
        indexes=(IndexConfig("users", True, IndexSchema(table="users", fields=(), primary_key="id")),),
        server=ServerConfig(public_address="127.0.0.1:0", private_address="127.0.0.1:0"),
    )
    return Deployment(**{**base.__dict__, **changes})


class World:
    """A container whose capture, builder, sink, journal and catalog are in memory."""

    def __init__(self, settings: RunSettings | None = None) -> None:
        self.builder = InMemoryDocumentBuilder([InMemoryIndex("users", USERS)])
        self.capture = InMemoryChangeCapture()
        self.sink = InMemorySink()
        self.journal = InMemoryJournal()
        self.container = Container(
            deployment=deployment(),
            settings=settings or RunSettings(admin_password="s3cret"),
            env={},
        )
        self.container.capture.override(providers.Object(self.capture))
        self.container.builder.override(providers.Object(self.builder))
        self.container.sink.override(providers.Object(self.sink))
        self.container.index_admins.override(providers.Object(()))
        self.container.journal.override(providers.Object(self.journal))
        self.container.open_catalog.override(providers.Object(opener(catalog(USERS))))
        self.daemon = Daemon(self.container)

    def put(self, id: int, *, commit: bool = True, **row: Any) -> None:
        self.builder.put_row(USERS, key(id), {"id": id, **row})
        self.capture.set_rows(USERS, self.builder.keys(USERS))
        if commit:
            self.capture.push(ChangeEvent("upsert", USERS, key(id)))


async def until(condition: Callable[[], bool]) -> None:
    async def spin() -> None:
        while not condition():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(spin(), timeout=10)


async def test_the_daemon_backfills_follows_and_serves_status_through_overridden_parts():
    world = World()
    world.put(1, commit=False, name="ada")
    run = asyncio.create_task(world.daemon.run())
    await until(lambda: world.daemon.status.phase == "live")
    assert world.sink.documents("users") == {"1": {"id": 1, "name": "ada"}}

    world.put(2, name="grace")
    await until(lambda: "2" in world.sink.documents("users"))

    public, private = world.container.listeners()
    async with httpx.AsyncClient() as client:
        status = await client.get(f"http://{public.address}/status")
        indexes = await client.get(f"http://{private.address}/indexes", auth=("admin", "s3cret"))
    assert status.json()["phase"] == "live"
    assert indexes.json() == {"users": "seeded"}

    world.daemon.request_stop()
    await run
    assert world.capture.stopped
    assert world.daemon.status.phase == "stopped"
    assert public.sock.fileno() == -1 and private.sock.fileno() == -1
    assert not world.container.http.initialized


async def test_a_failing_pipeline_stops_the_daemon_with_its_cause_and_closes_everything():
    world = World(RunSettings(serve_http=False))
    run = asyncio.create_task(world.daemon.run())
    await until(lambda: world.daemon.status.phase == "live")
    world.capture.fail(SourceError("replication connection lost"))
    with pytest.raises(PipelineStoppedError) as raised:
        await run
    assert isinstance(raised.value.__cause__, SourceError)
    assert not world.container.telemetry.initialized


async def test_a_schema_naming_a_missing_table_stops_the_run_before_the_pipeline_starts():
    world = World(RunSettings(serve_http=False))
    world.container.open_catalog.override(providers.Object(opener(catalog())))
    with pytest.raises(ConfigError, match="users"):
        await world.daemon.run()
    assert world.capture.live_calls == 0
    assert world.daemon.status.phase == "starting"


def test_an_invalid_index_prefix_is_refused_before_anything_starts():
    container = Container(
        deployment=deployment(), settings=RunSettings(index_prefix="Bad Prefix"), env={}
    )
    with pytest.raises(ConfigError):
        Daemon(container)


# -- sinks from the registration table --------------------------------------------------


def test_every_sink_config_class_of_the_config_language_has_a_registered_kind():
    assert set(SINK_KINDS) == set(get_args(SinkConfig))


async def test_sinks_are_built_by_kind_and_only_generation_keeping_ones_administer_indexes():
    config = deployment(
        sinks={
            "audit": StdoutSinkConfig(),
            "primary": OpenSearchSinkConfig(url=Secret(value="http://127.0.0.1:9")),
        }
    )
    container = Container(deployment=config, settings=RunSettings(), env={})
    sinks = await container.sinks()
    try:
        assert sinks.sink.names == ("audit", "primary")  # a fan-out in name order
        assert [admin.sink_name for admin in sinks.admins] == ["primary"]
    finally:
        await container.shutdown_resources()


def test_no_configured_sink_means_the_stdout_fallback_and_no_index_admin():
    from flusso.adapters.stdout.sink import StdoutSink
    from flusso.app.ports import SinkContext

    sinks = build_sinks(deployment(), SinkContext(env={}), pretty=True)
    assert isinstance(sinks.sink, StdoutSink)
    assert sinks.admins == ()
