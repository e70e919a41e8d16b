"""`flusso check`: validate the config and schemas, and unless `--offline` compare them with Postgres."""

from __future__ import annotations

import asyncio
import json
import os

import rich_click as click

from flusso.app.services.check import FAILED_MESSAGE, CheckResult, check_offline
from flusso.app.services.compile import DEFAULT_CONFIG
from flusso.domain.errors import FlussoError
from flusso.entrypoints.cli.check_report import render_report
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
        if offline:
            result = check_offline(config, LocalFiles())
        else:
            result = asyncio.run(_check_online(config, publication, manage_publication))
        _print(result, config, output_format.lower())
        if result.failed:
            raise FlussoError(FAILED_MESSAGE)


async def _check_online(
    config: str, publication: str, manage_publication: bool | None
) -> CheckResult:
    # Imported here: the container loads every adapter, which an offline check never needs.
    from flusso.entrypoints.container import Container

    container = Container(env=dict(os.environ))
    return await container.check(
        config, publication=publication, manage_publication=manage_publication
    )


def _print(result: CheckResult, config: str, output_format: str) -> None:
    console = out()
    if output_format == "json":
        from flusso.entrypoints.cli.check_json import check_document

        document = check_document(result)
        console.out(json.dumps(document, indent=2, ensure_ascii=False), highlight=False)
        return
    console.print(render_report(result, config_path=config), end="")
