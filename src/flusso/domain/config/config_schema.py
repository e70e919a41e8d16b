"""The editor-assist JSON Schema of `flusso.toml`, shipped as package data beside this module."""

from __future__ import annotations

from importlib.resources import files


def config_json_schema() -> str:
    """The draft-07 JSON Schema text printed by `flusso schema config`."""
    # Reading our own package data is part of the program, not the outside world.
    return files("flusso.domain.config").joinpath("config_jsonschema.json").read_text("utf-8")
