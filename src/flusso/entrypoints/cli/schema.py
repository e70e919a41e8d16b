"""`flusso schema` (not yet available)."""

from __future__ import annotations

import sys

import rich_click as click


@click.command("schema")
def schema() -> None:
    """Not yet available."""
    sys.stderr.write("Error: flusso schema is not yet available in this build\n")
    raise SystemExit(1)
