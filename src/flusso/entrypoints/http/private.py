"""The private control surface: `GET /indexes`, `POST /reindex`, behind HTTP Basic.

Authentication wraps the whole listener, before routing, so an unknown path answers 401
to a stranger and 404 only to an operator.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from litestar import Litestar, Response, get, post
from litestar.params import FromQuery, SkipValidation
from litestar.status_codes import (
    HTTP_202_ACCEPTED,
    HTTP_400_BAD_REQUEST,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from flusso.app.ports import ReindexControl
from flusso.app.services.reindex_requests import normalize_index_name
from flusso.entrypoints.http.app import create_app
from flusso.entrypoints.http.security import BasicAuthGate

_TRUE = {"true", "1", "yes", "on"}


class IndexStates(Protocol):
    def index_states(self) -> Mapping[str, str]: ...


# Litestar cannot validate a value against a Protocol; the factory below is what typed them.
States = SkipValidation[IndexStates]
Control = SkipValidation[ReindexControl]


def _text(status: int, line: str) -> Response[str]:
    return Response(line + "\n", status_code=status, media_type="text/plain")


def _json(value: Any) -> Response[bytes]:
    body = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return Response(body, media_type="application/json")


@get("/indexes")
async def list_indexes(
    status: States, control: Control, detail: FromQuery[str | None] = None
) -> Response[bytes]:
    states = status.index_states()
    if detail is None or detail.strip().lower() not in _TRUE:
        return _json(states)
    sinks = await control.detail()
    return _json({name: {"state": state, "sinks": sinks.get(name, {})} for name, state in states.items()})


@post("/reindex")
async def request_reindex(control: Control, index: FromQuery[str | None] = None) -> Response[str]:
    if index is None:
        return _text(HTTP_400_BAD_REQUEST, "missing query parameter ?index=<name>")
    name = normalize_index_name(index)
    if name is None:
        return _text(HTTP_400_BAD_REQUEST, f"invalid index name {json.dumps(index, ensure_ascii=False)}")
    if name not in control.enabled_indexes():
        return _text(HTTP_404_NOT_FOUND, f"unknown index {name}")
    outcome = await control.request(name)
    if outcome == "in_progress":
        return _text(HTTP_409_CONFLICT, f"reindex of {name} already in progress")
    if outcome == "needs_backfill":
        return _text(
            HTTP_409_CONFLICT, f"reindex of {name} needs a backfill; server runs with --skip-backfill"
        )
    if outcome == "full":
        return _text(HTTP_503_SERVICE_UNAVAILABLE, "reindex queue is full or closed")
    return _text(HTTP_202_ACCEPTED, f"reindex of {name} queued")


def create_private_app(
    status: IndexStates,
    control: ReindexControl,
    *,
    user: str,
    password: str,
    on_auth_failure: Callable[[], None] = lambda: None,
) -> Litestar:
    app = create_app([list_indexes, request_reindex], {"status": status, "control": control})
    # Litestar middleware runs only after a route matched; the gate must see every request.
    app.asgi_handler = BasicAuthGate(
        app.asgi_handler, user=user, password=password, on_failure=on_auth_failure
    )
    return app
