"""Every example in the repo validates against the published JSON Schemas, and the copies
under docs/schemas/ are exactly what `flusso schema` prints (a drift test)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from flusso.entrypoints.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILES = sorted((ROOT / "examples").rglob("*.schema.yml"))
CONFIG_FILES = sorted((ROOT / "examples").rglob("*.toml"))


def _printed(kind: str) -> str:
    result = CliRunner().invoke(cli, ["schema", kind])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize(
    ("kind", "path"),
    [("index", "docs/schemas/index.schema.yml"), ("config", "docs/schemas/config.schema.json")],
)
def test_the_published_schema_files_match_the_command(kind, path):
    assert (ROOT / path).read_text() == _printed(kind), f"regenerate with: flusso schema {kind} > {path}"


def test_the_repo_has_examples_to_validate():
    assert len(SCHEMA_FILES) >= 3 and CONFIG_FILES


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_every_example_schema_validates(path):
    schema = YAML(typ="safe").load(_printed("index"))
    document = YAML(typ="safe", pure=True).load(path.read_text())
    jsonschema.Draft7Validator(schema).validate(document)


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_every_example_config_validates(path):
    schema = json.loads(_printed("config"))
    jsonschema.Draft7Validator(schema).validate(tomllib.loads(path.read_text()))
