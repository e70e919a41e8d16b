"""The CLI's consoles and the one place errors are turned into `Error:`/`hint:` lines."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import rich_click as click
from rich.console import Console

from flusso.domain.errors import ConfigError, FlussoError

T = TypeVar("T")


def _color() -> bool | None:
    return False if os.environ.get("NO_COLOR") else None


def out() -> Console:
    """Standard output (results a user asked for)."""
    return Console(no_color=bool(os.environ.get("NO_COLOR")), highlight=False, soft_wrap=True)


def err() -> Console:
    """Standard error (diagnostics)."""
    return Console(
        stderr=True, no_color=bool(os.environ.get("NO_COLOR")), highlight=False, soft_wrap=True
    )


def report_error(exc: FlussoError) -> None:
    problems = exc.problems if isinstance(exc, ConfigError) else [exc]
    for problem in problems:
        sys.stderr.write(f"Error: {problem.message}\n")
        if problem.hint:
            sys.stderr.write(f"hint: {problem.hint}\n")
    cause = exc.__cause__
    if cause is not None and not isinstance(exc, ConfigError):
        sys.stderr.write("\nCaused by:\n")
        while cause is not None:
            sys.stderr.write(f"    {cause}\n")
            cause = cause.__cause__


@contextmanager
def user_errors(debug: bool = False) -> Iterator[None]:
    """Map FlussoError to a clean message and exit 1; a traceback only with --debug."""
    try:
        yield
    except FlussoError as exc:
        if debug:
            raise
        report_error(exc)
        raise SystemExit(1) from None


def debug_flag(ctx: click.Context | None = None) -> bool:
    ctx = ctx or click.get_current_context(silent=True)
    while ctx is not None:
        if ctx.obj and isinstance(ctx.obj, dict) and "debug" in ctx.obj:
            return bool(ctx.obj["debug"])
        ctx = ctx.parent
    return False


def run_guarded(fn: Callable[[], T]) -> T:
    with user_errors(debug_flag()):
        return fn()
