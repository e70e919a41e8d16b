"""`flusso check` through the CLI without a database: the human report, the JSON document, exit codes."""

from __future__ import annotations

import json
import re
import shutil
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner
from mapping_examples import WORKED_EXAMPLE_YAML  # noqa: E402 - the shared worked example

from flusso.entrypoints.cli.main import cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

WORKED_EXAMPLE = WORKED_EXAMPLE_YAML  # the worked example every mapping test shares

WORKED_CONFIG = """\
[source]
type = "postgres"
connection_url = { env = "DATABASE_URL" }

[sinks.primary]
type = "opensearch"
url = "https://admin:hunter2@localhost:9200"

[[index]]
name = "users"
schema = "users.schema.yml"
enabled = true
"""

_ENV = (
    "FLUSSO_CONFIG", "FLUSSO_OFFLINE", "FLUSSO_FORMAT", "FLUSSO_PUBLICATION",
    "FLUSSO_MANAGE_PUBLICATION", "FLUSSO_DEBUG", "DATABASE_URL", "NO_COLOR",
)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def examples_copy(root: Path) -> Path:
    shutil.copytree(EXAMPLES, root / "examples")
    return root / "examples"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


# -- offline, human ---------------------------------------------------------------


def test_offline_check_of_the_examples_passes_and_prints_every_index_mapping(runner, workdir):
    config = str(examples_copy(workdir) / "flusso.toml")
    result = runner.invoke(cli, ["check", "--offline", "-c", config])
    assert result.exit_code == 0, result.output
    text = result.output
    assert f"✓ config valid: {config}" in text
    for index in ("users", "products", "orders"):
        assert f"Index  {index}" in text
    assert re.search(r"^  email \.+ keyword\s+required$", text, re.M)
    assert re.search(r"^    createdAt \.+ date\s+required$", text, re.M)  # users.audit
    assert re.search(r"^  tagIds \.+ integer\s+required$", text, re.M)  # products
    assert re.search(r"^  itemCount \.+ integer\s+optional$", text, re.M)  # orders
    assert "(from DATABASE_URL at runtime)" in text
    assert "${DEMO_OPENSEARCH_URL}" in text
    assert text.rstrip().endswith(
        "[offline] skipped database validation — types and nullability not checked"
    )
    assert "\x1b[" not in text  # not a TTY, so no colour


def test_offline_check_needs_no_secret_and_never_prints_a_literal_password(runner, workdir):
    (workdir / "flusso.toml").write_text(WORKED_CONFIG)
    (workdir / "users.schema.yml").write_text(WORKED_EXAMPLE)
    result = runner.invoke(cli, ["check", "--offline"])
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output
    assert "https://admin:***@localhost:9200" in result.output
    assert "${DATABASE_URL}" in result.output


def test_the_offline_flag_and_format_come_from_the_environment(runner, workdir):
    (workdir / "conf.toml").write_text(WORKED_CONFIG)
    (workdir / "users.schema.yml").write_text(WORKED_EXAMPLE)
    result = runner.invoke(
        cli, ["check"],
        env={"FLUSSO_CONFIG": "conf.toml", "FLUSSO_OFFLINE": "yes", "FLUSSO_FORMAT": "json"},
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["diagnostics"] is None


# -- offline, JSON ----------------------------------------------------------------------


def test_json_offline_has_null_diagnostics_and_coverage_and_the_mapping_hash(runner, workdir):
    (workdir / "flusso.toml").write_text(WORKED_CONFIG)
    (workdir / "users.schema.yml").write_text(WORKED_EXAMPLE)
    result = runner.invoke(cli, ["check", "--offline", "--format", "json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert set(document) == {"config", "mappings", "diagnostics", "coverage"}
    assert document["diagnostics"] is None
    assert document["coverage"] is None
    mapping = document["mappings"][0]
    assert mapping["index"] == "users"
    assert re.fullmatch(r"[0-9a-f]{8}", mapping["hash"])
    first = mapping["fields"][0]
    assert first == {"name": "id", "mapping": {"type": "integer"}, "nullable": False}
    audit = next(f for f in mapping["fields"] if f["name"] == "audit")
    assert audit["children"][0]["name"] == "createdAt"
    tag_ids = next(f for f in mapping["fields"] if f["name"] == "tagIds")
    assert tag_ids["array"] is True
    assert "array" not in first and "children" not in first
    assert "hunter2" not in result.output


def test_json_offline_hash_of_the_worked_example_is_its_known_hash(runner, workdir):
    # `required: false` on the primary key is kept raw in the model; only resolution
    # forces it non-null, so the hash is the worked example's known one.
    (workdir / "flusso.toml").write_text(WORKED_CONFIG)
    (workdir / "users.schema.yml").write_text(WORKED_EXAMPLE)
    result = runner.invoke(cli, ["check", "--offline", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["mappings"][0]["hash"] == "4f961939"


def test_json_lists_the_enabled_examples_with_their_hashes(runner, workdir):
    config = str(examples_copy(workdir) / "flusso.toml")
    result = runner.invoke(cli, ["check", "--offline", "--format", "json", "-c", config])
    assert result.exit_code == 0, result.output
    mappings = json.loads(result.output)["mappings"]
    assert [m["index"] for m in mappings] == ["orders", "products", "users"]
    assert all(re.fullmatch(r"[0-9a-f]{8}", m["hash"]) for m in mappings)


# -- config problems ------------------------------------------------------------------


def test_a_broken_copy_of_the_examples_fails_with_one_error_per_problem(runner, workdir):
    root = examples_copy(workdir)
    schemas = root / "schemas"
    edit(schemas / "users.schema.yml",
         "  - keyword: email\n    required: true\n",
         "  - keyword: email\n    required: true\n    requierd: true\n")
    edit(schemas / "products.schema.yml",
         "  - integer: stock\n    required: true\n", "  - integer: stock\n")
    edit(schemas / "orders.schema.yml", "    column: user_id\n", "    column: User-Id\n")
    result = runner.invoke(cli, ["check", "--offline", "-c", str(root / "flusso.toml")])
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 3, result.stderr
    assert "users.schema.yml" in errors[0] and "email" in errors[0] and "`requierd`" in errors[0]
    assert "products.schema.yml" in errors[1] and "stock" in errors[1]
    assert "missing key `required`" in errors[1]
    assert "orders.schema.yml" in errors[2] and "buyer" in errors[2] and "User-Id" in errors[2]
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_an_unknown_key_in_flusso_toml_names_the_file(runner, workdir):
    (workdir / "flusso.toml").write_text(WORKED_CONFIG.replace('type = "postgres"', 'typ = "postgres"'))
    (workdir / "users.schema.yml").write_text(WORKED_EXAMPLE)
    result = runner.invoke(cli, ["check", "--offline"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: flusso.toml")
    assert "typ" in result.stderr


def test_a_missing_config_file_is_an_error_not_a_traceback(runner, workdir):
    result = runner.invoke(cli, ["check", "--offline", "-c", "nowhere.toml"])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == "Error: config file nowhere.toml not found"


# -- online without a reachable database ------------------------------------------------


def test_online_check_without_a_connection_url_says_which_variable_to_set(runner, workdir):
    config = WORKED_CONFIG.replace('connection_url = { env = "DATABASE_URL" }\n', "")
    (workdir / "flusso.toml").write_text(config)
    (workdir / "users.schema.yml").write_text(WORKED_EXAMPLE)
    result = runner.invoke(cli, ["check"])
    assert result.exit_code == 1
    assert "DATABASE_URL is not set" in result.stderr


def test_online_check_against_an_unreachable_database_fails_cleanly(runner, workdir):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (workdir / "flusso.toml").write_text(WORKED_CONFIG)
    (workdir / "users.schema.yml").write_text(WORKED_EXAMPLE)
    result = runner.invoke(
        cli, ["check"], env={"DATABASE_URL": f"postgresql://u:secret@127.0.0.1:{port}/db"}
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: cannot connect to Postgres at 127.0.0.1:")
    assert "secret" not in result.stderr
    assert "Traceback" not in result.output


def test_help_names_every_environment_variable(runner, workdir):
    result = runner.invoke(cli, ["check", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for variable in ("FLUSSO_CONFIG", "FLUSSO_OFFLINE", "FLUSSO_PUBLICATION",
                     "FLUSSO_MANAGE_PUBLICATION", "FLUSSO_FORMAT"):
        assert variable in result.output
