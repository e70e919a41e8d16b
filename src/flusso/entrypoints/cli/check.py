"""`flusso check` (not yet available)."""

from __future__ import annotations

import sys

import rich_click as click


@click.command("check")
def check() -> None:
    """Not yet available."""
    sys.stderr.write("Error: flusso check is not yet available in this build\n")
    raise SystemExit(1)
