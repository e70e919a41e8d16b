"""`flusso run` (not yet available)."""

from __future__ import annotations

import sys

import rich_click as click


@click.command("run")
def run() -> None:
    """Not yet available."""
    sys.stderr.write("Error: flusso run is not yet available in this build\n")
    raise SystemExit(1)
