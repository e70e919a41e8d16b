"""Registers every subcommand on the group."""

from __future__ import annotations

import rich_click as click


def register(group: click.Group) -> None:
    from flusso.entrypoints.cli import admin, build, check, run, schema, verify

    group.add_command(build.build)
    group.add_command(check.check)
    group.add_command(schema.schema)
    group.add_command(run.run)
    group.add_command(admin.indexes)
    group.add_command(admin.reindex)
    group.add_command(verify.verify)
