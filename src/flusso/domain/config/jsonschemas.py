"""The embedded editor-assist JSON Schemas printed by `flusso schema` (§10.4)."""

from __future__ import annotations

from importlib import resources


def index_json_schema_yaml() -> str:
    """The draft-07 JSON Schema for `*.schema.yml`, authored and returned as YAML."""
    text = resources.files(__package__).joinpath("index_jsonschema.yml").read_text(
        encoding="utf-8"
    )
    return text.rstrip() + "\n"
