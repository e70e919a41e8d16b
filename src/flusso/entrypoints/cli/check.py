"""`flusso check`: validate the config and schemas, and unless `--offline` compare them with Postgres."""

from __future__ import annotations

import asyncio
import json
import os

import rich_click as click
from rich.text import Text

from flusso.app.services.check import FAILED_MESSAGE, CheckResult, check_offline, check_online
from flusso.app.services.compile import DEFAULT_CONFIG
from flusso.domain.errors import FlussoError
from flusso.entrypoints.cli.console import debug_flag, out, user_errors
from flusso.entrypoints.cli.files import LocalFiles


@click.command("check")
@click.option(
    "-c", "--config", default=DEFAULT_CONFIG, show_default=True,
    envvar="FLUSSO_CONFIG", show_envvar=True,
    help="Config file to check (always compiled from source; the lock is never read).",
)
@click.option(
    "--offline", is_flag=True, envvar="FLUSSO_OFFLINE", show_envvar=True,
    help="Validate the files only: no database, no secrets, no publication report.",
)
@click.option(
    "--publication", default="flusso", show_default=True,
    envvar="FLUSSO_PUBLICATION", show_envvar=True,
    help="Publication whose coverage to report (the one `flusso run` would use).",
)
@click.option(
    "--manage-publication", type=click.BOOL, default=None,
    envvar="FLUSSO_MANAGE_PUBLICATION", show_envvar=True,
    help="Whether `flusso run` would add missing tables to the publication; changes the "
         "report's wording only (default: [source] manage_publication).",
)
@click.option(
    "--format", "output_format", type=click.Choice(["human", "json"], case_sensitive=False),
    default="human", show_default=True, envvar="FLUSSO_FORMAT", show_envvar=True,
    help="A human report, or one JSON document for scripts.",
)
def check(
    config: str,
    offline: bool,
    publication: str,
    manage_publication: bool | None,
    output_format: str,
) -> None:
    """Validate the config and schemas and show every index's mapping.

    Unless --offline, connect to the source and confirm each column exists and its
    type and nullability agree with the schema, and report publication coverage.
    Exits 1 on a config problem or an error-level disagreement; warnings pass.
    Check never changes the database.
    """
    with user_errors(debug_flag()):
        files = LocalFiles()
        if offline:
            result = check_offline(config, files)
        else:
            result = asyncio.run(check_online(
                config, files, dict(os.environ), _open_catalog(),
                publication=publication, manage_publication=manage_publication,
            ))
        _print(result, config, output_format.lower())
        if result.failed:
            raise FlussoError(FAILED_MESSAGE)


def _print(result: CheckResult, config: str, output_format: str) -> None:
    console = out()
    if output_format == "json":
        console.out(json.dumps(result.to_json(), indent=2, ensure_ascii=False), highlight=False)
        return
    color = console.is_terminal and not os.environ.get("NO_COLOR")
    console.print(Text.from_ansi(result.render(config_path=config, color=color)), end="")


def _open_catalog():  # noqa: ANN202 - the adapter's own context-manager factory
    """The Postgres catalog adapter, imported only for an online check."""
    from flusso.adapters.postgres.check_catalog import open_postgres_catalog

    return open_postgres_catalog
