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
    """`Error: …` (and `hint: …`) per problem, then the chain of causes, one per line.

    A wrapper without a hint of its own shows the first hint found down its causes
    (e.g. `sync engine stopped` shows the source's hint). A cause whose text the
    line above already contains is skipped, so a driver message is not shown twice.
    """
    problems = exc.problems if isinstance(exc, ConfigError) else [exc]
    for problem in problems:
        sys.stderr.write(f"Error: {problem.message}\n")
        hint = problem.hint or (None if problem is not exc else _cause_hint(exc))
        if hint:
            sys.stderr.write(f"hint: {hint}\n")
    if isinstance(exc, ConfigError):
        return
    lines: list[str] = []
    shown = exc.message
    cause = exc.__cause__
    while cause is not None:
        text = str(cause).strip() or type(cause).__name__
        if text not in shown:
            lines.append(text)
            shown = text
        cause = cause.__cause__
    if lines:
        sys.stderr.write("\nCaused by:\n")
        for text in lines:
            sys.stderr.write("    " + text.replace("\n", "\n    ") + "\n")


def _cause_hint(exc: BaseException) -> str | None:
    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, FlussoError) and cause.hint:
            return cause.hint
        cause = cause.__cause__
    return None


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
