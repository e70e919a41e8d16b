"""OpenSearch test fixtures: one embedded server per session, an optional real-cluster leg,
a read-back probe, and a recording stub OpenSearch for bulk/HTTP cases.

Import the fixtures into a directory's conftest.py:
`from opensearch_fixtures import embedded_opensearch, opensearch_url, opensearch_client  # noqa`.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from devstack.opensearch import EmbeddedOpenSearch
from opensearchpy import AsyncOpenSearch
from opensearchpy.exceptions import NotFoundError

from flusso.adapters.opensearch.client import open_opensearch_client
from flusso.domain.config.model import OpenSearchSinkConfig, Secret
from flusso.domain.types import IndexMapping, ResolvedField

REAL_URL_ENV = "FLUSSO_TEST_OPENSEARCH_URL"

_shared: EmbeddedOpenSearch | None = None


def shared_embedded_opensearch() -> EmbeddedOpenSearch:
    """One osmem-server per test process, however many conftest files ask for it."""
    global _shared
    if _shared is None or not _shared.running:
        _shared = EmbeddedOpenSearch().start()
    return _shared


@pytest.fixture(scope="session")
def embedded_opensearch() -> EmbeddedOpenSearch:
    # Stopped at interpreter exit (EmbeddedOpenSearch registers an atexit hook).
    return shared_embedded_opensearch()


@pytest.fixture(params=["embedded", pytest.param("real", marks=pytest.mark.real_opensearch)])
def opensearch_url(request: pytest.FixtureRequest) -> str:
    """The embedded server, and a real cluster when FLUSSO_TEST_OPENSEARCH_URL is set."""
    if request.param == "real":
        url = os.environ.get(REAL_URL_ENV)
        if not url:
            pytest.skip(
                f"set {REAL_URL_ENV} (e.g. https://admin:pw@localhost:9200) to run this leg"
            )
        return url
    return request.getfixturevalue("embedded_opensearch").url


@pytest.fixture
async def opensearch_client(opensearch_url: str) -> AsyncIterator[AsyncOpenSearch]:
    client = open_opensearch_client(
        opensearch_url, tls_verify=not opensearch_url.startswith("https")
    )
    try:
        yield client
    finally:
        await client.close()


def unique_prefix() -> str:
    """An index prefix no other test uses, so tests share one server safely."""
    return f"t{uuid.uuid4().hex[:12]}_"


def sink_config(url: str = "http://127.0.0.1:9200", **overrides: Any) -> OpenSearchSinkConfig:
    return OpenSearchSinkConfig(url=Secret(value=url), **overrides)


def users_mapping(hash: str = "0123abcd", *, index: str = "users") -> IndexMapping:
    return IndexMapping(
        index=index,
        hash=hash,
        fields=(
            ResolvedField("email", "keyword", True, "keyword"),
            ResolvedField("name", "text", True, "text"),
            ResolvedField("age", "integer", True, "integer"),
        ),
    )


class ClusterProbe:
    """Reads cluster state back for assertions (never through the sink under test)."""

    def __init__(self, client: AsyncOpenSearch, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    async def documents(self, name: str) -> dict[str, dict[str, Any]]:
        """Documents readable through `name` (an alias or an index), by `_id`."""
        try:
            await self.client.indices.refresh(index=name)
            reply = await self.client.search(
                index=name, body={"size": 1000, "query": {"match_all": {}}}
            )
        except NotFoundError:
            return {}
        return {hit["_id"]: hit["_source"] for hit in reply["hits"]["hits"]}

    async def holders(self, alias: str) -> list[str]:
        try:
            reply = await self.client.transport.perform_request("GET", f"/_alias/{alias}")
        except NotFoundError:
            return []
        return sorted(reply)

    async def indices(self, pattern: str) -> list[str]:
        try:
            rows = await self.client.transport.perform_request(
                "GET", f"/_cat/indices/{pattern}", params={"h": "index", "format": "json"}
            )
        except NotFoundError:
            return []
        return sorted(row["index"] for row in rows)

    async def exists(self, index: str) -> bool:
        return bool(await self.client.transport.perform_request("HEAD", f"/{index}"))

    async def meta(self, hash_alias: str) -> dict[str, Any] | None:
        try:
            reply = await self.client.transport.perform_request(
                "GET", f"/{self.prefix}flusso_meta/_doc/{hash_alias}"
            )
        except NotFoundError:
            return None
        return reply.get("_source")

    async def put_meta(self, hash_alias: str, generation: int, seeded: bool) -> None:
        await self.client.transport.perform_request(
            "PUT",
            f"/{self.prefix}flusso_meta/_doc/{hash_alias}",
            body={"active_generation": generation, "seeded": seeded},
        )

    async def settings(self, index: str) -> dict[str, Any]:
        reply = await self.client.transport.perform_request("GET", f"/{index}/_settings")
        return reply[index]["settings"]["index"]

    async def mapping(self, index: str) -> dict[str, Any]:
        reply = await self.client.transport.perform_request("GET", f"/{index}/_mapping")
        return reply[index]["mappings"]


# ---------------------------------------------------------------------------
# Recording stub OpenSearch (aiohttp, real HTTP on a free loopback port)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str  # with the query string
    body: str
    content_type: str

    @property
    def bulk_actions(self) -> list[dict[str, Any]]:
        """The action lines of a bulk body (source lines skipped)."""
        actions: list[dict[str, Any]] = []
        skip = False
        for line in self.body.splitlines():
            if skip:
                skip = False
                continue
            action = json.loads(line)
            actions.append(action)
            skip = "index" in action or "create" in action
        return actions

    @property
    def json(self) -> Any:
        return json.loads(self.body)


BulkReply = Callable[[list[dict[str, Any]]], tuple[int, Any]]


def accept_all(actions: list[dict[str, Any]]) -> tuple[int, Any]:
    items = [{op: {"status": 200 if op == "delete" else 201}} for a in actions for op in a]
    return 200, {"took": 1, "errors": False, "items": items}


def answer(status: int, body: Any = None) -> BulkReply:
    """A whole-request reply, whatever the actions."""
    return lambda actions: (status, body if body is not None else {"error": f"stub {status}"})


def item_statuses(*statuses: int | tuple[int, str]) -> BulkReply:
    """A 200 reply giving each action, by position, a status (and optionally a reason)."""

    def reply(actions: list[dict[str, Any]]) -> tuple[int, Any]:
        items = []
        for action, spec in zip(actions, statuses, strict=False):
            status, reason = spec if isinstance(spec, tuple) else (spec, None)
            (op,) = action
            item: dict[str, Any] = {
                "_index": action[op]["_index"],
                "_id": action[op]["_id"],
                "status": status,
            }
            if reason is not None:
                item["error"] = {"type": "stub_exception", "reason": reason}
            if op == "delete" and status == 404:
                item["result"] = "not_found"
            items.append({op: item})
        errors = any(item[next(iter(item))]["status"] >= 400 for item in items)
        return 200, {"took": 1, "errors": errors, "items": items}

    return reply


@dataclass
class StubOpenSearch:
    """Records every request; `/_bulk` replies come from `bulk_replies` in order, then `bulk_default`.

    Other calls get OpenSearch-like defaults for an empty cluster: HEAD and GET
    answer 404, writes answer 200 `{"acknowledged": true}`.
    """

    bulk_replies: list[BulkReply] = field(default_factory=list)
    bulk_default: BulkReply = accept_all
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    @property
    def bulk_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.split("?")[0] == "/_bulk"]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        recorded = Recorded(
            request.method, request.path_qs, body, request.headers.get("Content-Type", "")
        )
        self.requests.append(recorded)
        if request.path == "/_bulk":
            reply = self.bulk_replies.pop(0) if self.bulk_replies else self.bulk_default
            status, payload = reply(recorded.bulk_actions)
            return web.json_response(payload, status=status)
        if request.method == "HEAD":
            return web.Response(status=404)
        if request.method == "GET":
            return web.json_response({"error": "not found", "status": 404}, status=404)
        return web.json_response({"acknowledged": True})

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def stub_opensearch() -> AsyncIterator[StubOpenSearch]:
    stub = StubOpenSearch()
    await stub.start()
    try:
        yield stub
    finally:
        await stub.stop()
