"""The editor-assist JSON Schema of `*.schema.yml` printed by `flusso schema index`.

Authored as YAML beside this module; the scalar type names and type keys are filled in
from the field type registry, so a new type appears without editing the template.
"""

from __future__ import annotations

import json
import textwrap
from importlib import resources

from flusso.domain.config.field_types import SCALAR_FIELD_TYPES

_TYPE_NAMES_MARK = "    # @type_names:"
_TYPE_KEYS_MARK = "      # @type_keys:"


def index_json_schema_yaml() -> str:
    """The draft-07 JSON Schema for `*.schema.yml`, as YAML text."""
    text = resources.files(__package__).joinpath("index_jsonschema.yml").read_text(
        encoding="utf-8"
    )
    lines = []
    for line in text.rstrip().split("\n"):
        if line.startswith(_TYPE_NAMES_MARK):
            lines += _type_names()
        elif line.startswith(_TYPE_KEYS_MARK):
            lines += _type_keys()
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"


def _type_names() -> list[str]:
    listed = ", ".join(SCALAR_FIELD_TYPES)
    wrapped = textwrap.wrap(f"enum: [{listed}]", width=86, subsequent_indent="       ")
    return ["    " + line for line in wrapped]


def _type_keys() -> list[str]:
    lines = []
    for row in SCALAR_FIELD_TYPES.values():
        lines += [
            f"      {row.name}:",
            f"        description: {json.dumps(row.description, ensure_ascii=False)}",
            '        $ref: "#/definitions/field_name"',
        ]
    return lines
