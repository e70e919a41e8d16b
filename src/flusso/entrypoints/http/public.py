"""The public HTTP surface (surfaces spec §5.2): liveness, readiness, `/status`, `/metrics`; no auth."""

from __future__ import annotations

import json
from typing import Any, Protocol

from litestar import Litestar, Response, get
from litestar.di import Provide
from litestar.params import SkipValidation
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from flusso.entrypoints.http.problems import EXCEPTION_HANDLERS


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


def create_public_app(status: StatusView, metrics: MetricsText) -> Litestar:
    return Litestar(
        route_handlers=[healthz, readyz, status_route, metrics_route],
        dependencies={
            "status": Provide(lambda: status, sync_to_thread=False),
            "metrics": Provide(lambda: metrics, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        # flusso configures logging itself; Litestar's default would reconfigure the root logger.
        logging_config=None,
        openapi_config=None,
    )
