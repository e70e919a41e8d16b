"""`flusso indexes` and `flusso reindex`: clients of a running server's private surface (not yet available)."""

from __future__ import annotations

import sys

import rich_click as click


@click.command("indexes")
def indexes() -> None:
    """List the indexes of a running server (not yet available)."""
    sys.stderr.write("Error: flusso indexes is not yet available in this build\n")
    raise SystemExit(1)


@click.command("reindex")
@click.argument("name")
def reindex(name: str) -> None:
    """Rebuild one index on a running server (not yet available)."""
    sys.stderr.write("Error: flusso reindex is not yet available in this build\n")
    raise SystemExit(1)
