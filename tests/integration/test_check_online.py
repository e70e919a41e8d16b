"""`flusso check` against a real Postgres: column types and nullability, server settings,
publication coverage and the exit code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from devstack.store import load_store
from tests.conftest import unique_name

from flusso.entrypoints.cli.main import cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_TABLES = [
    "addresses", "categories", "order_items", "orders", "product_tags", "products",
    "profiles", "reviews", "tags", "users",
]

PEOPLE_SQL = """
CREATE TYPE mood AS ENUM ('happy', 'sad');
CREATE TABLE people (
    id int PRIMARY KEY, name text, age text NOT NULL, mood mood NOT NULL,
    lat double precision, lon text, nick text
);
"""

CONFIG = """\
[source]
type = "postgres"

[[index]]
name = "people"
schema = "people.schema.yml"
enabled = true
"""

MATCHING = """\
version: 1
table: people
primary_key: id
fields:
  - integer: id
    required: true
  - keyword: name
    required: true
  - enum: mood
    required: true
  - keyword: nick
    required: false
"""

DISAGREEING = """\
version: 1
table: people
primary_key: id
filters:
  - { column: kind, op: eq, value: person }
fields:
  - integer: id
    required: true
  - keyword: name
    required: true
  - integer: age
    required: true
  - enum: mood
    required: true
  - keyword: nickname
    required: false
  - geo: spot
    lat: lat
    lon: lon
    required: false
  - has_many: pets
    table: pets
    foreign_key: person_id
    primary_key: id
    fields:
      - keyword: name
        required: true
"""


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def store_url(pg_url: str) -> str:
    load_store(pg_url, scale=1)
    return pg_url


@pytest.fixture
def people_url(pg_url: str) -> str:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(PEOPLE_SQL.encode())
    return pg_url


def execute(url: str, sql: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.encode())


def check(runner: CliRunner, url: str, *args: str):
    return runner.invoke(
        cli, ["check", *args],
        env={"DATABASE_URL": url, "FLUSSO_OFFLINE": None, "FLUSSO_FORMAT": None,
             "FLUSSO_CONFIG": None, "FLUSSO_MANAGE_PUBLICATION": None,
             "FLUSSO_PUBLICATION": None, "NO_COLOR": "1"},
    )


def people_config(root: Path, schema: str) -> str:
    (root / "flusso.toml").write_text(CONFIG)
    (root / "people.schema.yml").write_text(schema)
    return str(root / "flusso.toml")


def quoted(tables: list[str]) -> str:
    return ", ".join(f'"public"."{t}"' for t in tables)


# -- the demo store ----------------------------------------------------------------


def test_the_examples_match_the_demo_store(runner, store_url):
    result = check(runner, store_url, "-c", str(EXAMPLES / "flusso.toml"), "--format", "json")
    assert json.loads(result.stdout)["diagnostics"] == []
    assert result.exit_code == 0, result.output


def test_without_a_publication_check_passes_and_offers_create_publication(runner, store_url, tmp_path):
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    schema = tmp_path / "examples" / "schemas" / "orders.schema.yml"
    # Keeps this case about coverage whatever examples/ declares for itemCount.
    schema.write_text(schema.read_text().replace("value_type: long", "value_type: integer"))
    config = str(tmp_path / "examples" / "flusso.toml")

    result = check(runner, store_url, "-c", config)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "(schema matches the database)" in text
    assert "10 table(s) the indexes read are not yet streamed" in text
    assert "will be added automatically on the next `flusso run`" in text
    create = f'CREATE PUBLICATION "flusso" FOR TABLE {quoted(EXAMPLE_TABLES)};'
    assert f"  {create}" in text.splitlines()
    assert text.rstrip().endswith("✓ check passed")

    coverage = json.loads(check(runner, store_url, "-c", config, "--format", "json").stdout)[
        "coverage"
    ]
    assert coverage == {
        "satisfied": False, "manageable": True, "will_manage": True, "present": [],
        "missing": [f"public.{t}" for t in EXAMPLE_TABLES], "blockers": [],
        "remediation": [create], "exists": False, "missing_actions": [], "via_root_fix": None,
    }

    execute(store_url, 'CREATE PUBLICATION "flusso" FOR TABLE "public"."users", "public"."tags"')
    result = check(runner, store_url, "-c", config, "--format", "json")
    assert result.exit_code == 0, result.output
    coverage = json.loads(result.stdout)["coverage"]
    assert coverage["present"] == ["public.tags", "public.users"]
    rest = [t for t in EXAMPLE_TABLES if t not in ("tags", "users")]
    assert coverage["remediation"] == [f'ALTER PUBLICATION "flusso" ADD TABLE {quoted(rest)};']

    execute(store_url, f'ALTER PUBLICATION "flusso" ADD TABLE {quoted(rest)}')
    result = check(runner, store_url, "-c", config)
    assert result.exit_code == 0, result.output
    assert "source streams all 10 required table(s)" in result.stdout
    assert "PUBLICATION" not in result.stdout


def test_the_publication_name_and_management_flag_shape_the_report(runner, store_url, tmp_path):
    """A publication `run` would not make itself fails the check, with the statement to run."""
    config = people_config(tmp_path, "version: 1\ntable: tags\nprimary_key: id\nfields: []\n")
    publication = unique_name("pub")
    result = check(runner, store_url, "-c", config, "--publication", publication,
                   "--manage-publication", "false")
    assert result.exit_code == 1, result.output
    assert "automatic management is disabled (manage_publication = false)" in result.stdout
    create = f'CREATE PUBLICATION "{publication}" FOR TABLE "public"."tags";'
    assert f"[error] source.publication {publication}  publication {publication} does not " \
        "exist; flusso does not manage publications (manage_publication = false)" in result.stdout
    assert f"fix: {create}" in result.stdout
    document = json.loads(check(runner, store_url, "-c", config, "--publication", publication,
                                "--manage-publication", "false", "--format", "json").stdout)
    assert document["coverage"]["will_manage"] is False
    execute(store_url, create)
    result = check(runner, store_url, "-c", config, "--publication", publication,
                   "--manage-publication", "false")
    assert result.exit_code == 0, result.output


# -- disagreements -------------------------------------------------------------------


def test_a_disagreeing_schema_fails_after_printing_every_diagnostic(runner, people_url, tmp_path):
    config = people_config(tmp_path, DISAGREEING)
    result = check(runner, people_url, "-c", config)
    assert result.exit_code == 1
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert lines[lines.index("Database validation") + 2:][:7] == [
        "[error] people.filters  `filters` references unknown column `public.people.kind`",
        "[warning] people.name  declared non-null (`required`) but the database column "
        "allows null",
        "[error] people.age  declared type does not accept the column's database type `text`",
        "fix: declare one of `keyword`, `text`, `identifier`, `enum`",
        "[error] people.nickname  references unknown column `public.people.nickname`",
        "[error] people.spot  geo_point coordinate column `lon` must be numeric, found `text`",
        "[error] people.pets  references unknown table `public.pets` (no such table in the "
        "database)",
    ]
    assert "[failed] schema disagrees with database" in result.stdout
    assert result.stderr == "Error: schema validation failed against the database\n"
    # The missing table is a diagnostic, not fatal: coverage is still inspected.
    assert 'CREATE PUBLICATION "flusso" FOR TABLE "public"."people", "public"."pets";' in (
        result.stdout
    )


def test_json_reports_diagnostics_and_fails_too(runner, people_url, tmp_path):
    config = people_config(tmp_path, DISAGREEING)
    result = check(runner, people_url, "-c", config, "--format", "json")
    assert result.exit_code == 1
    diagnostics = json.loads(result.stdout)["diagnostics"]
    assert [(d["field"], d["severity"]) for d in diagnostics] == [
        ("filters", "error"), ("name", "warning"), ("age", "error"), ("nickname", "error"),
        ("spot", "error"), ("pets", "error"),
    ]
    assert {d["index"] for d in diagnostics} == {"people"}
    assert "schema validation failed against the database" in result.stderr


def test_a_nullable_warning_does_not_fail_and_enum_accepts_a_postgres_enum(
    runner, people_url, tmp_path
):
    config = people_config(tmp_path, MATCHING)
    result = check(runner, people_url, "-c", config)
    assert result.exit_code == 0, result.output
    validation = result.stdout.split("Database validation")[1].split("Publication coverage")[0]
    assert [line.strip() for line in validation.splitlines() if line.strip().startswith("[")] == [
        "[warning] people.name  declared non-null (`required`) but the database column "
        "allows null",
    ]
    assert result.stdout.rstrip().endswith("✓ check passed")
    assert result.stderr == ""


def test_a_role_that_may_not_publish_fails_with_the_blockers_and_the_statement(
    runner, people_url, tmp_path
):
    role = unique_name("checker")
    execute(people_url, f'CREATE ROLE "{role}" LOGIN REPLICATION; '
                        f'GRANT SELECT ON "public"."people" TO "{role}"')
    try:
        url = people_url.replace("postgresql://postgres@", f"postgresql://{role}@")
        config = people_config(tmp_path, MATCHING)
        result = check(runner, url, "-c", config, "--format", "json")
        assert result.exit_code == 1, result.output
        document = json.loads(result.stdout)
        coverage = document["coverage"]
        assert coverage["manageable"] is False
        assert coverage["blockers"] == [
            "role does not own table public.people",
            "role lacks the CREATE privilege on the database",
        ]
        create = 'CREATE PUBLICATION "flusso" FOR TABLE "public"."people";'
        assert [(d["field"], d["fix"]) for d in document["diagnostics"]
                if d["severity"] == "error"] == [("publication flusso", create)]
        human = check(runner, url, "-c", config).stdout
        assert "flusso will not add these automatically" in human
        assert f"fix: {create}" in human
        execute(people_url, create)
        assert check(runner, url, "-c", config).exit_code == 0
    finally:
        execute(people_url, f'DROP PUBLICATION IF EXISTS "flusso"; DROP OWNED BY "{role}"; '
                            f'DROP ROLE "{role}"')


def test_a_role_that_may_not_stream_fails_the_check_with_the_grant_to_run(
    runner, people_url, tmp_path
):
    role = unique_name("reader")
    execute(people_url, f'CREATE ROLE "{role}" LOGIN')
    try:
        url = people_url.replace("postgresql://postgres@", f"postgresql://{role}@")
        result = check(runner, url, "-c", people_config(tmp_path, MATCHING))
        assert result.exit_code == 1
        assert f'ALTER ROLE "{role}" REPLICATION;' in result.stdout
        assert "schema validation failed against the database" in result.stderr
    finally:
        execute(people_url, f'DROP ROLE "{role}"')


def test_a_server_without_logical_wal_fails_the_check(runner, tmp_path):
    from devstack.postgres import throwaway_postgres

    with throwaway_postgres(settings={"wal_level": "replica"}) as server:
        execute(server.url, PEOPLE_SQL)
        result = check(runner, server.url, "-c", people_config(tmp_path, MATCHING))
    assert result.exit_code == 1
    assert "wal_level = logical" in result.stdout
