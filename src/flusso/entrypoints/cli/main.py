"""The `flusso` command group; each subcommand lives in its own module."""

from __future__ import annotations

import rich_click as click

from flusso import __version__
from flusso.entrypoints.cli.commands import register

click.rich_click.TEXT_MARKUP = None
click.rich_click.SHOW_ARGUMENTS = True


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="flusso", message="%(prog)s %(version)s")
@click.option(
    "--debug",
    is_flag=True,
    envvar="FLUSSO_DEBUG",
    show_envvar=True,
    help="Show a traceback when a command fails.",
)
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Keep OpenSearch in sync with PostgreSQL from declarative config.

    Write a flusso.toml and one *.schema.yml per index, check them, then run.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


register(cli)


def main() -> None:
    cli(prog_name="flusso")
