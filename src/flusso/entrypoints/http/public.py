"""The public HTTP surface: liveness, readiness, `/status`, `/metrics`.

No auth by default; with a password, `/status` and `/metrics` need HTTP Basic while the
probes (`/healthz`, `/readyz`) stay open.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from litestar import Litestar, Response, get
from litestar.params import SkipValidation
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from flusso.entrypoints.http.app import create_app
from flusso.entrypoints.http.security import PROBE_PATHS, BasicAuthGate


class StatusView(Protocol):
    def is_ready(self) -> bool: ...

    def snapshot(self) -> dict[str, Any]: ...


class MetricsText(Protocol):
    def render(self) -> tuple[bytes, str]: ...


# Litestar cannot validate a value against a Protocol; the factory below is what typed them.
Status = SkipValidation[StatusView]
Metrics = SkipValidation[MetricsText]


@get("/healthz", sync_to_thread=False)
def healthz() -> Response[bytes]:
    return Response(b"", status_code=HTTP_200_OK, media_type="text/plain")


@get("/readyz", sync_to_thread=False)
def readyz(status: Status) -> Response[bytes]:
    code = HTTP_200_OK if status.is_ready() else HTTP_503_SERVICE_UNAVAILABLE
    return Response(b"", status_code=code, media_type="text/plain")


@get("/status", sync_to_thread=False)
def status_route(status: Status) -> Response[bytes]:
    # Serialised here so the body is compact and keeps the snapshot's key order.
    body = json.dumps(status.snapshot(), separators=(",", ":"), ensure_ascii=False)
    return Response(body.encode("utf-8"), media_type="application/json")


@get("/metrics", sync_to_thread=False)
def metrics_route(metrics: Metrics) -> Response[bytes]:
    body, content_type = metrics.render()
    # Litestar appends the charset to every text/* type itself.
    media_type = content_type.replace("; charset=utf-8", "")
    return Response(body, media_type=media_type)


def create_public_app(
    status: StatusView,
    metrics: MetricsText,
    *,
    user: str = "",
    password: str | None = None,
    on_auth_failure: Callable[[], None] = lambda: None,
) -> Litestar:
    app = create_app(
        [healthz, readyz, status_route, metrics_route], {"status": status, "metrics": metrics}
    )
    if password is not None:
        # Litestar middleware runs only after a route matched; the gate must see every request.
        app.asgi_handler = BasicAuthGate(
            app.asgi_handler, user=user, password=password, on_failure=on_auth_failure,
            open_paths=PROBE_PATHS,
        )
    return app
