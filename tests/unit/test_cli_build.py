"""`flusso build`, `flusso schema` and run's choice of config or lock."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from flusso.app.services.compile import CompiledPlan, load_deployment
from flusso.domain.config.lock import encode_lock
from flusso.domain.config.model import Deployment, Secret, SourceConfig
from flusso.domain.errors import ConfigError, FlussoError
from flusso.entrypoints.cli.files import LocalFiles
from flusso.entrypoints.cli.main import cli

CONFIG = '[source]\ntype = "postgres"\nconnection_url = { env = "DATABASE_URL" }\n'
INDEXED = CONFIG + (
    '[[index]]\nname = "users"\nschema = "schemas/users.schema.yml"\nenabled = true\n'
    '[[index]]\nname = "orders"\nschema = "schemas/users.schema.yml"\nenabled = false\n'
)
TINY_SCHEMA = "version: 1\ntable: users\nprimary_key: id\nfields:\n  - integer: id\n    required: true\n"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("FLUSSO_CONFIG", "FLUSSO_OUT", "FLUSSO_SCHEMA", "FLUSSO_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


# -- flusso build ------------------------------------------------------------


def test_build_writes_the_lock_and_reports_the_index_count(runner, workdir, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)  # an unset reference is fine for build
    (workdir / "flusso.toml").write_text(CONFIG)
    result = runner.invoke(cli, ["build"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "✓ compiled 0 index(es) → flusso.lock"
    lock = json.loads((workdir / "flusso.lock").read_text())
    assert lock["format_version"] == 1
    assert lock["config"]["source"]["connection"] == {"url": {"env": "DATABASE_URL"}}


def test_build_never_writes_an_environment_value(runner, workdir, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:topsecret@h/db")
    (workdir / "flusso.toml").write_text(CONFIG)
    result = runner.invoke(cli, ["build"])
    assert result.exit_code == 0, result.output
    text = (workdir / "flusso.lock").read_text()
    assert '"env": "DATABASE_URL"' in text
    assert "topsecret" not in text


def test_build_counts_disabled_indexes_and_reads_schemas_beside_the_config(runner, workdir):
    conf = workdir / "conf"
    (conf / "schemas").mkdir(parents=True)
    (conf / "flusso.toml").write_text(INDEXED)
    (conf / "schemas" / "users.schema.yml").write_text(TINY_SCHEMA)
    result = runner.invoke(cli, ["build", "-c", "conf/flusso.toml", "-o", "out/x.lock"])
    assert result.exit_code == 1  # the out directory does not exist: writing is fatal
    assert "Error: writing compiled lock to out/x.lock" in result.output
    (workdir / "out").mkdir()
    result = runner.invoke(cli, ["build", "-c", "conf/flusso.toml", "-o", "out/x.lock"])
    assert result.exit_code == 0, result.output
    assert "compiled 2 index(es) → out/x.lock" in result.output
    lock = json.loads((workdir / "out" / "x.lock").read_text())
    assert [i["name"] for i in lock["config"]["indexes"]] == ["users", "orders"]


def test_build_takes_its_paths_from_the_environment(runner, workdir, monkeypatch):
    (workdir / "my.toml").write_text(CONFIG)
    monkeypatch.setenv("FLUSSO_CONFIG", "my.toml")
    monkeypatch.setenv("FLUSSO_OUT", "my.lock")
    result = runner.invoke(cli, ["build"])
    assert result.exit_code == 0, result.output
    assert (workdir / "my.lock").is_file()


def test_build_without_a_config_is_a_clean_error(runner, workdir):
    result = runner.invoke(cli, ["build"])
    assert result.exit_code == 1
    assert "Error: config file flusso.toml not found" in result.output
    assert "Traceback" not in result.output
    assert not (workdir / "flusso.lock").exists()


def test_build_reports_config_errors_with_hints(runner, workdir):
    (workdir / "flusso.toml").write_text(CONFIG + "manage_publicaton = true\n")
    result = runner.invoke(cli, ["build"])
    assert result.exit_code == 1
    assert "Error: flusso.toml: [source]: unknown key `manage_publicaton`" in result.output
    assert "hint: did you mean `manage_publication`?" in result.output


def test_build_help_names_the_environment_variables(runner):
    result = runner.invoke(cli, ["build", "--help"])
    assert result.exit_code == 0
    assert "FLUSSO_CONFIG" in result.output and "FLUSSO_OUT" in result.output


# -- flusso schema -----------------------------------------------------------


def test_schema_config_prints_the_draft_07_json_schema(runner, workdir):
    result = runner.invoke(cli, ["schema", "config"])
    assert result.exit_code == 0, result.output
    assert result.output.endswith("}\n")
    parsed = json.loads(result.output)
    assert parsed["$schema"] == "http://json-schema.org/draft-07/schema#"


def test_schema_reads_its_argument_from_the_environment(runner, workdir, monkeypatch):
    monkeypatch.setenv("FLUSSO_SCHEMA", "config")
    result = runner.invoke(cli, ["schema"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["title"] == "flusso.toml"


def test_schema_rejects_an_unknown_kind_as_a_usage_error(runner, workdir):
    result = runner.invoke(cli, ["schema", "lock"])
    assert result.exit_code == 2


def test_schema_index_prints_yaml_with_one_trailing_newline(runner, workdir):
    pytest.importorskip("flusso.domain.config.jsonschemas")
    result = runner.invoke(cli, ["schema", "index"])
    assert result.exit_code == 0, result.output
    assert result.output.endswith("\n") and not result.output.endswith("\n\n")
    assert "draft-07" in result.output


# -- run's config selection --------------------------------------------------


class MemoryFiles:
    def __init__(self, files: dict[str, str], *, read_only: bool = False) -> None:
        self.files = dict(files)
        self.read_only = read_only
        self.writes: list[str] = []

    def exists(self, path: str) -> bool:
        return path in self.files

    def read_text(self, path: str) -> str:
        if path not in self.files:
            raise FileNotFoundError(2, "No such file or directory", path)
        return self.files[path]

    def write_text(self, path: str, text: str) -> None:
        if self.read_only:
            raise PermissionError(13, "Permission denied", path)
        self.writes.append(path)
        self.files[path] = text


def a_lock(prefix: str) -> str:
    deployment = Deployment(source=SourceConfig(connection=Secret(env="PG")), prefix=prefix)
    return encode_lock(deployment, flusso_version="0.0.1")


def test_locked_loads_the_lock_as_is_even_when_a_config_exists():
    files = MemoryFiles({"flusso.toml": 'prefix = "cfg_"\n' + CONFIG, "flusso.lock": a_lock("lock_")})
    plan = load_deployment(None, "flusso.lock", True, files, "1.0")
    assert plan == CompiledPlan(plan.deployment, False, None, "flusso.lock")
    assert plan.deployment.prefix == "lock_"
    assert files.writes == []


def test_locked_without_a_lock_is_an_error():
    with pytest.raises(ConfigError, match="compiled lock flusso.lock not found"):
        load_deployment(None, "flusso.lock", True, MemoryFiles({}), "1.0")


def test_an_existing_config_is_compiled_and_the_lock_rewritten():
    files = MemoryFiles({"c.toml": 'prefix = "cfg_"\n' + CONFIG, "l.lock": a_lock("old_")})
    plan = load_deployment("c.toml", "l.lock", False, files, "1.0")
    assert (plan.wrote_lock, plan.config_path, plan.deployment.prefix) == (True, "c.toml", "cfg_")
    assert files.writes == ["l.lock"]
    assert '"prefix": "cfg_"' in files.files["l.lock"]


def test_a_given_config_that_is_missing_is_an_error_even_with_a_lock():
    files = MemoryFiles({"flusso.lock": a_lock("lock_")})
    with pytest.raises(ConfigError) as caught:
        load_deployment("nope.toml", "flusso.lock", False, files, "1.0")
    assert caught.value.message == "config file nope.toml not found"


def test_the_default_config_is_compiled_when_present():
    files = MemoryFiles({"flusso.toml": CONFIG})
    plan = load_deployment(None, "flusso.lock", False, files, "1.0")
    assert (plan.wrote_lock, plan.config_path) == (True, "flusso.toml")
    assert files.writes == ["flusso.lock"]


def test_without_any_config_the_lock_is_loaded():
    files = MemoryFiles({"flusso.lock": a_lock("lock_")})
    plan = load_deployment(None, "flusso.lock", False, files, "1.0")
    assert (plan.wrote_lock, plan.deployment.prefix) == (False, "lock_")


def test_without_config_or_lock_the_error_says_what_to_create():
    with pytest.raises(FlussoError) as caught:
        load_deployment(None, "x.lock", False, MemoryFiles({}), "1.0")
    assert caught.value.message == (
        "no flusso.toml to compile and no compiled lock at x.lock; "
        "create a config or build a lock first"
    )


def test_a_lock_of_another_format_is_the_cause_of_the_fallback_error():
    newer = json.dumps({**json.loads(a_lock("")), "format_version": 2})
    with pytest.raises(FlussoError) as caught:
        load_deployment(None, "flusso.lock", False, MemoryFiles({"flusso.lock": newer}), "1.0")
    assert "no flusso.toml to compile" in caught.value.message
    assert "format version 2" in str(caught.value.__cause__)


def test_a_failed_lock_write_is_fatal():
    files = MemoryFiles({"flusso.toml": CONFIG}, read_only=True)
    with pytest.raises(FlussoError, match="writing compiled lock to flusso.lock"):
        load_deployment(None, "flusso.lock", False, files, "1.0")


def test_the_default_config_is_found_in_the_working_directory(workdir):
    (workdir / "flusso.toml").write_text(CONFIG)
    plan = load_deployment(None, "flusso.lock", False, LocalFiles(), "1.0")
    assert plan.wrote_lock is True
    assert json.loads((workdir / "flusso.lock").read_text())["flusso_version"] == "1.0"
