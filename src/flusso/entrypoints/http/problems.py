"""How the HTTP surfaces answer errors: problem-details JSON, each error logged once here."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from flusso.domain.errors import FlussoError

logger = logging.getLogger("flusso.http")

PROBLEM_JSON = "application/problem+json"


def _problem(status: int, title: str, detail: str) -> Response[dict[str, Any]]:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return Response(body, status_code=status, media_type=PROBLEM_JSON)


def flusso_problem(request: Request[Any, Any, Any], exc: FlussoError) -> Response[dict[str, Any]]:
    logger.warning("request %s %s failed: %s", request.method, request.url.path, exc)
    return _problem(HTTP_500_INTERNAL_SERVER_ERROR, "Internal Server Error", exc.message)


def unexpected_problem(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    logger.error("request %s %s failed", request.method, request.url.path, exc_info=exc)
    return _problem(HTTP_500_INTERNAL_SERVER_ERROR, "Internal Server Error", "unexpected error")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    FlussoError: flusso_problem,
    HTTP_500_INTERNAL_SERVER_ERROR: unexpected_problem,
}
