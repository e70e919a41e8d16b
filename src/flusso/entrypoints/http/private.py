"""The private control surface (surfaces spec §5.3): `GET /indexes`, `POST /reindex`, behind HTTP Basic.

Authentication wraps the whole listener, before routing, so an unknown path answers 401
to a stranger and 404 only to an operator.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Mapping
from typing import Any, Protocol

from litestar import Litestar, Response, get, post
from litestar.di import Provide
from litestar.params import FromQuery, SkipValidation
from litestar.status_codes import (
    HTTP_202_ACCEPTED,
    HTTP_400_BAD_REQUEST,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from litestar.types import ASGIApp, Receive, Scope, Send

from flusso.app.services.reindex_requests import ReindexControl, normalize_index_name
from flusso.entrypoints.http.problems import EXCEPTION_HANDLERS

CHALLENGE = b'Basic realm="flusso", charset="UTF-8"'
_TRUE = {"true", "1", "yes", "on"}


class IndexStates(Protocol):
    def index_states(self) -> Mapping[str, str]: ...


# Litestar cannot validate a value against a Protocol; the factory below is what typed them.
States = SkipValidation[IndexStates]
Control = SkipValidation[ReindexControl]


def credentials_match(authorization: bytes | None, user: str, password: str) -> bool:
    """True for `Basic <base64 of user:password>` naming exactly these credentials."""
    if authorization is None or not authorization.startswith(b"Basic "):
        return False
    try:
        decoded = base64.b64decode(authorization[len(b"Basic "):].strip(), validate=True)
        given_user, sep, given_password = decoded.decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    if not sep:
        return False
    # `&`, not `and`: both comparisons always run, so timing tells nothing about which failed.
    return hmac.compare_digest(given_user.encode(), user.encode()) & hmac.compare_digest(
        given_password.encode(), password.encode()
    )


class BasicAuthGate:
    """ASGI middleware answering 401 to any request without the right Basic credentials."""

    def __init__(self, app: ASGIApp, *, user: str, password: str) -> None:
        self._app = app
        self._user = user
        self._password = password

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
            if not credentials_match(header, self._user, self._password):
                await _refuse(scope, send)
                return
        await self._app(scope, receive, send)


async def _refuse(scope: Scope, send: Send) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})  # type: ignore[typeddict-item]
        return
    body = b"unauthorized\n"
    await send({
        "type": "http.response.start",
        "status": 401,
        "headers": [
            (b"www-authenticate", CHALLENGE),
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
        ],
    })  # type: ignore[typeddict-item]
    await send({"type": "http.response.body", "body": body})  # type: ignore[typeddict-item]


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
    status: IndexStates, control: ReindexControl, *, user: str, password: str
) -> Litestar:
    app = Litestar(
        route_handlers=[list_indexes, request_reindex],
        dependencies={
            "status": Provide(lambda: status, sync_to_thread=False),
            "control": Provide(lambda: control, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        logging_config=None,
        openapi_config=None,
    )
    # Litestar middleware runs only after a route matched; the gate must see every request.
    app.asgi_handler = BasicAuthGate(app.asgi_handler, user=user, password=password)
    return app
