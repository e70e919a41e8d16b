"""`flusso build` (not yet available)."""

from __future__ import annotations

import sys

import rich_click as click


@click.command("build")
def build() -> None:
    """Not yet available."""
    sys.stderr.write("Error: flusso build is not yet available in this build\n")
    raise SystemExit(1)
