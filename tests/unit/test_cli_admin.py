"""`flusso indexes` / `flusso reindex` against a real private surface on a free port."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from flusso.app.services.reindex_requests import ReindexRequests
from flusso.app.status import LiveStatus
from flusso.entrypoints.cli.admin import base_url
from flusso.entrypoints.cli.main import cli
from flusso.entrypoints.http.private import create_private_app
from flusso.entrypoints.http.serve import HttpSurfaces, bind_surface

_ENV = ("FLUSSO_SERVER", "FLUSSO_ADMIN_USER", "FLUSSO_ADMIN_PASSWORD", "FLUSSO_TIMEOUT",
        "FLUSSO_DETAIL", "FLUSSO_FORMAT", "FLUSSO_WAIT", "FLUSSO_DEBUG", "NO_COLOR")


class RebuildingControl(ReindexRequests):
    """Accepts a request, then plays the rebuild on the status: backfilling for two polls, then seeded."""

    def __init__(self, status: LiveStatus, names: list[str]) -> None:
        super().__init__(names)
        self.status = status
        self.polls_left: int | None = None

    async def request(self, name: str) -> Any:
        outcome = await super().request(name)
        if outcome == "queued":
            self.status.on_backfill_started([name])
            self.polls_left = 2
        return outcome

    async def detail(self) -> dict[str, dict[str, dict[str, Any]]]:
        if self.polls_left is not None:
            self.polls_left -= 1
            if self.polls_left < 0:
                self.status.on_live_started()
        return await super().detail()


class BackgroundServer:
    """The private app served by uvicorn in its own thread and event loop."""

    def __init__(self, status: LiveStatus, control: ReindexRequests) -> None:
        self.listener = bind_surface("private", "127.0.0.1:0")
        self.app = create_private_app(status, control, user="admin", password="s3cret")
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        surfaces = HttpSurfaces([(self.listener, self.app)])
        await surfaces.start()
        self._ready.set()
        await self._stop.wait()
        await surfaces.stop()

    def __enter__(self) -> str:
        self._thread.start()
        assert self._ready.wait(10), "the private surface did not start"
        return self.listener.address

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@pytest.fixture
def status() -> LiveStatus:
    return LiveStatus(["users", "orders"])


@pytest.fixture
def server(status) -> Iterator[str]:
    control = RebuildingControl(status, ["users", "orders"])
    with BackgroundServer(status, control) as address:
        yield address


@pytest.fixture
def flusso(monkeypatch):
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(cli, list(args), catch_exceptions=False)

    return invoke


def test_indexes_with_a_wrong_password_prints_the_servers_401(flusso, server):
    result = flusso("indexes", "--server", server, "--admin-password", "wrong")
    assert result.exit_code == 1
    first, hint = result.stderr.splitlines()
    assert first == "Error: server returned 401 Unauthorized: unauthorized"
    assert hint.startswith("hint: check --admin-user and --admin-password")
    assert result.stdout == ""


def test_indexes_against_a_server_that_is_down_names_the_request(flusso):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = flusso("indexes", "--server", f"127.0.0.1:{port}", "--timeout", "5")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: requesting /indexes\n")
    assert "Caused by:" in result.stderr


def test_indexes_as_json_prints_the_sorted_states_re_indented(flusso, server, status):
    status.on_backfill_started(["users"])
    result = flusso("indexes", "--server", server, "--admin-password", "s3cret", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == '{\n  "orders": "pending",\n  "users": "backfilling"\n}\n'


def test_indexes_in_human_format_is_a_table(flusso, server):
    result = flusso("indexes", "--server", f"http://{server}/", "--admin-password", "s3cret")
    assert result.exit_code == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines()]
    assert lines == [["INDEX", "STATE"], ["orders", "pending"], ["users", "pending"]]


def test_indexes_detail_as_json_has_state_and_sinks(flusso, server, monkeypatch):
    monkeypatch.setenv("FLUSSO_ADMIN_PASSWORD", "s3cret")
    monkeypatch.setenv("FLUSSO_SERVER", server)
    result = flusso("indexes", "--detail", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "orders": {"state": "pending", "sinks": {}},
        "users": {"state": "pending", "sinks": {}},
    }


def test_reindex_prints_the_servers_answer(flusso, server):
    result = flusso("reindex", " USERS ", "--server", server, "--admin-password", "s3cret")
    assert (result.exit_code, result.stdout) == (0, "reindex of users queued\n")
    again = flusso("reindex", "users", "--server", server, "--admin-password", "s3cret")
    assert again.exit_code == 1
    assert again.stderr == "Error: server returned 409 Conflict: reindex of users already in progress\n"


def test_reindex_of_an_unknown_index_is_a_404_error(flusso, server):
    result = flusso("reindex", "nope", "--server", server, "--admin-password", "s3cret")
    assert result.exit_code == 1
    assert result.stderr == "Error: server returned 404 Not Found: unknown index nope\n"


def test_reindex_wait_follows_the_index_until_it_is_seeded_again(flusso, server, status):
    status.on_live_started()
    result = flusso(
        "reindex", "users", "--wait", "--poll-interval", "0.01",
        "--server", server, "--admin-password", "s3cret",
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "reindex of users queued\nreindex of users complete\n"
    assert "users: backfilling" in result.stderr
    assert "users: seeded" in result.stderr
    assert status.index_states()["users"] == "seeded"


@pytest.mark.parametrize(
    ("server", "url"),
    [
        ("127.0.0.1:9465", "http://127.0.0.1:9465"),
        ("https://h:9465/", "https://h:9465"),
        ("http://h:9465//", "http://h:9465"),
        ("[::1]:9465", "http://[::1]:9465"),
    ],
)
def test_the_base_url_gets_a_scheme_and_loses_trailing_slashes(server, url):
    assert base_url(server) == url
