"""`flusso schema config|index`: print an embedded editor-assist JSON Schema."""

from __future__ import annotations

import rich_click as click


def _config_schema() -> str:
    from flusso.domain.config.config_schema import config_json_schema

    return config_json_schema()


def _index_schema() -> str:
    from flusso.domain.config.jsonschemas import index_json_schema_yaml

    return index_json_schema_yaml()


@click.command("schema")
@click.argument(
    "which",
    type=click.Choice(["config", "index"]),
    envvar="FLUSSO_SCHEMA",
)
def schema(which: str) -> None:
    """Print the JSON Schema of flusso.toml (`config`, JSON) or of *.schema.yml (`index`, YAML).

    Needs no config and no database. WHICH may also come from FLUSSO_SCHEMA.
    """
    body = _config_schema() if which == "config" else _index_schema()
    click.echo(body.rstrip())
