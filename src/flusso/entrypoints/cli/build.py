"""`flusso build`: compile flusso.toml and its schemas into the lock; no database, no secrets."""

from __future__ import annotations

import rich_click as click
from rich.markup import escape

from flusso import __version__
from flusso.app.services.compile import DEFAULT_CONFIG, DEFAULT_LOCK, build_lock
from flusso.entrypoints.cli.console import debug_flag, out, user_errors
from flusso.entrypoints.cli.files import LocalFiles


@click.command("build")
@click.option(
    "-c",
    "--config",
    default=DEFAULT_CONFIG,
    show_default=True,
    envvar="FLUSSO_CONFIG",
    show_envvar=True,
    help="Config file to compile.",
)
@click.option(
    "-o",
    "--out",
    "out_path",
    default=DEFAULT_LOCK,
    show_default=True,
    envvar="FLUSSO_OUT",
    show_envvar=True,
    help="Where to write the compiled lock.",
)
def build(config: str, out_path: str) -> None:
    """Compile the config and its schemas into a lock that `flusso run --locked` executes.

    Needs no database and reads no secret: `{ env = "X" }` references are kept as names.
    """
    with user_errors(debug_flag()):
        deployment = build_lock(config, out_path, LocalFiles(), __version__)
    out().print(
        f"[green]✓[/green] compiled {len(deployment.indexes)} index(es) → {escape(out_path)}"
    )
