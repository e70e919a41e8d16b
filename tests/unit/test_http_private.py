"""The private control surface and the in-process reindex queue."""

from __future__ import annotations

import base64

import pytest
from litestar.testing import TestClient

from flusso.app.ports import JournalRow
from flusso.app.services.reindex_requests import ReindexRequests, normalize_index_name
from flusso.app.status import LiveStatus
from flusso.domain.lifecycle import LifecycleState, State
from flusso.entrypoints.http.private import create_private_app
from flusso.entrypoints.http.security import credentials_match

CHALLENGE = 'Basic realm="flusso", charset="UTF-8"'


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


AUTH = basic("admin", "s3cret")


@pytest.fixture
def status() -> LiveStatus:
    return LiveStatus(["users", "orders"])


@pytest.fixture
def control() -> ReindexRequests:
    # `archive` is configured but disabled: only enabled indexes are known.
    return ReindexRequests(["users", "orders"])


def client_for(status, control):
    return TestClient(create_private_app(status, control, user="admin", password="s3cret"))


@pytest.fixture
def client(status, control):
    with client_for(status, control) as test_client:
        yield test_client


# -- authentication ---------------------------------------------------------------


@pytest.mark.parametrize("path", ["/indexes", "/nope"])
def test_a_request_without_credentials_is_refused_before_routing(client, path):
    response = client.get(path)
    assert response.status_code == 401
    assert response.content == b"unauthorized\n"
    assert response.headers["www-authenticate"] == CHALLENGE


@pytest.mark.parametrize(
    "header",
    [
        basic("admin", "wrong")["Authorization"],
        basic("root", "s3cret")["Authorization"],
        "Bearer abc",
        "Basic !!!",
        "basic " + base64.b64encode(b"admin:s3cret").decode(),
        "Basic " + base64.b64encode(b"admins3cret").decode(),
        "Basic",
        "Basic " + base64.b64encode(b"\xffadmin:s3cret").decode(),
    ],
    ids=["wrong-password", "wrong-user", "bearer", "not-base64", "lowercase-scheme",
         "no-colon", "no-token", "not-utf8"],
)
def test_anything_but_the_exact_credentials_is_refused(client, header):
    response = client.get("/indexes", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.content == b"unauthorized\n"


def test_an_authenticated_unknown_path_is_404_and_a_wrong_method_405(client):
    assert client.get("/nope", headers=AUTH).status_code == 404
    assert client.post("/indexes", headers=AUTH).status_code == 405


def test_the_password_may_contain_colons_since_the_split_is_at_the_first_one():
    token = base64.b64encode(b"admin:a:b").decode().encode()
    assert credentials_match(b"Basic " + token, "admin", "a:b")
    assert credentials_match(b"Basic  " + token + b"  ", "admin", "a:b")
    assert not credentials_match(b"Basic " + token, "admin:a", "b")
    assert not credentials_match(None, "admin", "a:b")


def test_base64_without_its_padding_is_refused():
    token = base64.b64encode(b"admin:pw")
    assert token.endswith(b"=")
    assert credentials_match(b"Basic " + token, "admin", "pw")
    assert not credentials_match(b"Basic " + token.rstrip(b"="), "admin", "pw")


def test_the_default_credentials_are_refused_once_the_password_is_changed(client):
    assert client.get("/indexes", headers=basic("admin", "flusso")).status_code == 401


# -- GET /indexes -----------------------------------------------------------------


def test_indexes_lists_enabled_indexes_and_their_state_sorted(client, status):
    status.on_backfill_started(["users"])
    response = client.get("/indexes", headers=AUTH)
    assert response.status_code == 200
    assert response.content == b'{"orders":"pending","users":"backfilling"}'


def row(sink: str, logical: str, alias: str, state: State, serving: int, target: int | None,
        event_id: int) -> JournalRow:
    lifecycle = LifecycleState(state=state, serving_generation=serving, target_generation=target)
    return JournalRow(sink, logical, alias, lifecycle, event_id, "2026-06-03T10:20:30.123Z")


class RowsJournal:
    def __init__(self, rows: list[JournalRow]) -> None:
        self.rows = rows

    async def all_current(self) -> list[JournalRow]:
        return self.rows


def test_indexes_detail_adds_each_sinks_lifecycle_from_the_journal(status):
    journal = RowsJournal([
        row("primary", "users", "users_0000aaaa", State.RETIRED, 1, None, 3),
        row("primary", "users", "users_3f2a9c01", State.REINDEXING, 1, 2, 9),
    ])
    control = ReindexRequests(["users", "orders"], journal=journal)  # type: ignore[arg-type]
    status.on_backfill_started(["users"])
    with client_for(status, control) as client:
        detail = client.get("/indexes?detail=true", headers=AUTH).json()
        plain = client.get("/indexes?detail=false", headers=AUTH).json()
    assert detail == {
        "orders": {"state": "pending", "sinks": {}},
        "users": {
            "state": "backfilling",
            "sinks": {
                "primary": {
                    "lifecycle": "reindexing",
                    "hash_alias": "users_3f2a9c01",
                    "serving_generation": 1,
                    "target_generation": 2,
                    "pending_request": False,
                    "updated_at": "2026-06-03T10:20:30.123Z",
                }
            },
        },
    }
    assert plain == {"orders": "pending", "users": "backfilling"}


# -- POST /reindex ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "code", "body"),
    [
        ("", 400, "missing query parameter ?index=<name>\n"),
        ("?index=Bad-Name", 400, 'invalid index name "Bad-Name"\n'),
        ("?index=", 400, 'invalid index name ""\n'),
        ("?index=" + "a" * 64, 400, f'invalid index name "{"a" * 64}"\n'),
        ("?index=nope", 404, "unknown index nope\n"),
        ("?index=archive", 404, "unknown index archive\n"),
        ("?index=%20USERS%20", 202, "reindex of users queued\n"),
        ("?index=" + "a" * 63, 404, f"unknown index {'a' * 63}\n"),
    ],
    ids=["missing", "invalid", "empty", "too-long", "unknown", "disabled", "normalized", "max-len"],
)
def test_reindex_checks_the_request_in_the_documented_order(client, query, code, body):
    response = client.post("/reindex" + query, headers=AUTH)
    assert (response.status_code, response.text) == (code, body)
    assert response.headers["content-type"].startswith("text/plain")


def test_a_second_request_for_a_queued_index_is_409(client, control):
    assert client.post("/reindex?index=users", headers=AUTH).status_code == 202
    second = client.post("/reindex?index=users", headers=AUTH)
    assert (second.status_code, second.text) == (409, "reindex of users already in progress\n")
    assert control.take_pending() == ["users"]


def test_a_request_while_the_rebuild_runs_is_409_until_it_finished(client, control):
    client.post("/reindex?index=users", headers=AUTH)
    assert control.take_pending() == ["users"]
    assert client.post("/reindex?index=users", headers=AUTH).status_code == 409
    control.finished("users")
    assert client.post("/reindex?index=users", headers=AUTH).status_code == 202


def test_under_skip_backfill_every_request_is_409(status):
    control = ReindexRequests(["users"], skip_backfill=True)
    with client_for(status, control) as client:
        response = client.post("/reindex?index=users", headers=AUTH)
    assert (response.status_code, response.text) == (
        409, "reindex of users needs a backfill; server runs with --skip-backfill\n"
    )


def test_a_full_or_closed_queue_is_503(status):
    control = ReindexRequests(["users", "orders"], capacity=1)
    with client_for(status, control) as client:
        assert client.post("/reindex?index=users", headers=AUTH).status_code == 202
        full = client.post("/reindex?index=orders", headers=AUTH)
        control.take_pending()
        control.close()
        closed = client.post("/reindex?index=orders", headers=AUTH)
    assert (full.status_code, full.text) == (503, "reindex queue is full or closed\n")
    assert (closed.status_code, closed.text) == (503, "reindex queue is full or closed\n")


# -- the queue --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "name"),
    [(" USERS ", "users"), ("_x9", "_x9"), ("9x", None), ("a-b", None), ("", None),
     ("a" * 63, "a" * 63), ("a" * 64, None)],
)
def test_index_names_are_trimmed_lowercased_and_checked(raw, name):
    assert normalize_index_name(raw) == name


async def test_the_run_loop_takes_requests_in_order_and_a_busy_check_can_refuse():
    busy = {"orders"}

    async def is_busy(name: str) -> bool:
        return name in busy

    control = ReindexRequests(["users", "orders", "items"], is_busy=is_busy)
    assert await control.request("orders") == "in_progress"
    assert await control.request("users") == "queued"
    assert await control.request("items") == "queued"
    assert await control.next() == "users"
    assert control.take_pending() == ["items"]
    assert await control.request("users") == "in_progress"


async def test_a_queued_request_shows_as_pending_in_the_detail():
    journal = RowsJournal([row("primary", "users", "users_3f2a9c01", State.SERVING, 1, None, 4)])
    control = ReindexRequests(["users"], journal=journal)  # type: ignore[arg-type]
    await control.request("users")
    assert (await control.detail())["users"]["primary"]["pending_request"] is True
    await control.next()
    assert (await control.detail())["users"]["primary"]["pending_request"] is False
