"""What both HTTP surfaces share: a Litestar app over route handlers and the values they take."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from litestar import Litestar
from litestar.di import Provide

from flusso.entrypoints.http.problems import EXCEPTION_HANDLERS


def _constant(value: object) -> Callable[[], object]:
    return lambda: value


def create_app(route_handlers: Sequence[Any], values: Mapping[str, object]) -> Litestar:
    """Each handler parameter named in `values` receives that value; errors answer problem JSON."""
    return Litestar(
        route_handlers=list(route_handlers),
        dependencies={
            name: Provide(_constant(value), sync_to_thread=False) for name, value in values.items()
        },
        exception_handlers=EXCEPTION_HANDLERS,
        # flusso configures logging itself; Litestar's default would reconfigure the root logger.
        logging_config=None,
        openapi_config=None,
    )
