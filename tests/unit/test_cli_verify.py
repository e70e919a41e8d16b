"""`flusso verify` through the CLI where no database is reached: usage errors and config choice."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from flusso.entrypoints.cli.main import cli

SCHEMA = """\
version: 1
table: notes
primary_key: id
fields:
  - integer: id
    required: true
"""

CONFIG = """\
[source]
type = "postgres"

[sinks.primary]
type = "opensearch"
url = "http://127.0.0.1:9"

[[index]]
name = "notes"
schema = "notes.schema.yml"
enabled = true

[[index]]
name = "drafts"
schema = "notes.schema.yml"
enabled = false

[[index]]
name = "archive"
schema = "notes.schema.yml"
enabled = true
"""

_ENV = (
    "FLUSSO_CONFIG", "FLUSSO_LOCK", "FLUSSO_VERIFY_INDEX", "FLUSSO_VERIFY_REPAIR",
    "FLUSSO_VERIFY_SAMPLE", "FLUSSO_VERIFY_SETTLE", "FLUSSO_INDEX_PREFIX", "FLUSSO_JSON",
    "FLUSSO_VERBOSE", "FLUSSO_DEBUG", "DATABASE_URL",
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "notes.schema.yml").write_text(SCHEMA)
    (tmp_path / "flusso.toml").write_text(CONFIG)
    return tmp_path


def test_an_unknown_index_is_a_usage_error_naming_the_known_ones(project: Path) -> None:
    result = CliRunner().invoke(cli, ["verify", "--index", "notes", "--index", "nope"])
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: unknown index 'nope': it is not in the config\n"
        "hint: the enabled indexes are: notes, archive\n"
    )
    assert result.stdout == ""


def test_a_disabled_index_is_named_as_such(project: Path) -> None:
    result = CliRunner().invoke(cli, ["verify", "--index", "drafts"])
    assert result.exit_code == 2
    assert "Error: unknown index 'drafts': it is disabled in the config\n" in result.stderr


def test_the_index_variable_takes_several_names(project: Path) -> None:
    result = CliRunner().invoke(cli, ["verify"], env={"FLUSSO_VERIFY_INDEX": "notes nope"})
    assert result.exit_code == 2
    assert "unknown index 'nope'" in result.stderr


def test_config_and_lock_together_are_a_usage_error(project: Path) -> None:
    result = CliRunner().invoke(cli, ["verify", "-c", "flusso.toml", "--lock", "flusso.lock"])
    assert result.exit_code == 2
    assert "give --config or --lock, not both" in result.stderr


def test_a_missing_lock_is_a_clear_error(project: Path) -> None:
    result = CliRunner().invoke(cli, ["verify", "--lock", "elsewhere.lock"])
    assert result.exit_code == 1
    assert "Error: compiled lock elsewhere.lock not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_verify_never_writes_the_lock(project: Path) -> None:
    CliRunner().invoke(cli, ["verify", "--index", "nope"])
    assert not (project / "flusso.lock").exists()


@pytest.mark.parametrize("sample", ["0", "-3", "many"])
def test_a_sample_must_be_a_positive_count(project: Path, sample: str) -> None:
    result = CliRunner().invoke(cli, ["verify", "--sample", sample])
    assert result.exit_code == 2


def test_a_config_without_an_opensearch_sink_is_a_clear_error(project: Path) -> None:
    (project / "flusso.toml").write_text(
        CONFIG.replace('type = "opensearch"\nurl = "http://127.0.0.1:9"', 'type = "stdout"')
    )
    result = CliRunner().invoke(
        cli, ["verify"], env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none"}
    )
    assert result.exit_code == 1
    assert "the config has no OpenSearch sink" in result.stderr
    assert "Traceback" not in result.stderr
