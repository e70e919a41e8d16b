"""What `flusso check` shows: the human report and the JSON document, offline and online."""

from __future__ import annotations

import io
import json
import re

import pytest
from mapping_examples import WORKED_EXAMPLE_HASH, worked_example
from rich.console import Console

from flusso.app.services.check import CheckResult
from flusso.domain.config.model import (
    ConnectionParts,
    Deployment,
    IndexConfig,
    IndexSchema,
    OpenSearchSinkConfig,
    Secret,
    SourceConfig,
    StdoutSinkConfig,
)
from flusso.domain.config.secrets import redact_password
from flusso.domain.documents.change import TableRef
from flusso.domain.mapping import index_mapping
from flusso.domain.publication import Coverage
from flusso.domain.validation import Diagnostic
from flusso.entrypoints.cli.check_json import check_document
from flusso.entrypoints.cli.check_report import render_report


def _deployment(**changes) -> Deployment:
    base = Deployment(
        source=SourceConfig(connection=Secret(env="DATABASE_URL")),
        sinks={
            "audit": StdoutSinkConfig(pretty=True),
            "primary": OpenSearchSinkConfig(
                url=Secret(value="https://admin:hunter2@localhost:9200"),
                username=Secret(value="admin"),
                password=Secret(value="hunter2"),
                tls_verify=False,
            ),
        },
        indexes=(
            IndexConfig(name="users", enabled=True, schema=worked_example()),
            IndexConfig(name="archive", enabled=False, schema=IndexSchema(table="old", fields=())),
        ),
    )
    return Deployment(**{**base.__dict__, **changes})


def _mappings(deployment: Deployment):
    return tuple(index_mapping(i.name, i.schema) for i in deployment.enabled_indexes())


def _result(deployment: Deployment | None = None, **kwargs) -> CheckResult:
    deployment = deployment or _deployment()
    return CheckResult(deployment, _mappings(deployment), **kwargs)


def _human(deployment: Deployment | None = None, **kwargs) -> str:
    return render_report(_result(deployment, **kwargs), config_path="flusso.toml").plain


def _printed(*, terminal: bool) -> str:
    """The report as a console prints it, to a terminal (colour) or to a pipe."""
    stream = io.StringIO()
    colours = "standard" if terminal else None
    console = Console(file=stream, force_terminal=terminal, color_system=colours)
    console.print(render_report(_result(), config_path="flusso.toml"), end="")
    return stream.getvalue()


def _row(text: str, name: str) -> list[str]:
    """The words of the tree row for `name`, dot leader dropped."""
    for line in text.splitlines():
        words = line.split()
        if words and words[0] == name and len(words) >= 3 and set(words[1]) == {"."}:
            return [words[0], *words[2:]]
    raise AssertionError(f"no tree row for {name!r} in:\n{text}")


def test_the_offline_report_opens_with_the_config_path_and_ends_with_the_banner():
    text = _human()
    lines = text.splitlines()
    assert lines[0] == "✓ config valid: flusso.toml"
    assert lines[-1] == "[offline] skipped database validation — types and nullability not checked"


def test_the_offline_report_has_its_sections_in_order():
    text = _human()
    titles = ["Source", "Sinks", "Indexes", "Index  users"]
    positions = [text.index(f"\n{title}\n{'─' * len(title)}\n") for title in titles]
    assert positions == sorted(positions)
    assert "Index  archive" not in text


def test_the_source_line_shows_an_env_reference_as_a_variable():
    assert "  postgres  ${DATABASE_URL}" in _human().splitlines()


@pytest.mark.parametrize(
    ("connection", "shown"),
    [
        (None, "(from DATABASE_URL at runtime)"),
        (Secret(value="postgresql://app:s3cret@db:5432/app"), "postgresql://app:***@db:5432/app"),
        (ConnectionParts(database="app", host="db", port=5433, user="app",
                         password=Secret(value="s3cret")), "app@db:5433/app"),
    ],
)
def test_the_source_line_never_shows_a_password(connection, shown):
    text = _human(_deployment(source=SourceConfig(connection=connection)))
    assert f"postgres  {shown}" in text
    assert "s3cret" not in text


def test_sinks_are_listed_with_their_kind_and_details():
    lines = [line.split() for line in _human().splitlines()]
    assert ["audit", "stdout", "pretty"] in lines
    assert ["primary", "opensearch", "https://admin:***@localhost:9200", "tls-verify", "off"] in lines
    assert "hunter2" not in _human()


def test_no_sinks_says_a_stdout_sink_is_the_default():
    assert "(none — defaults to a stdout sink)" in _human(_deployment(sinks={}))


def test_indexes_are_listed_with_state_table_key_and_soft_delete():
    lines = [line.split() for line in _human().splitlines()]
    assert ["users", "enabled", "public.users", "pk", "id", "soft-delete", "column", '"deleted_at"'] in lines
    assert ["archive", "disabled", "public.old"] in lines


def test_the_tree_lists_every_field_with_type_and_nullability():
    text = _human()
    assert _row(text, "id") == ["id", "integer", "required"]
    assert _row(text, "fullName") == ["fullName", "text", "optional"]
    assert _row(text, "audit") == ["audit", "object", "required"]
    assert _row(text, "createdAt") == ["createdAt", "date", "required"]
    assert _row(text, "organization") == ["organization", "object", "optional"]
    assert _row(text, "orders") == ["orders", "nested", "required"]
    assert _row(text, "tagIds") == ["tagIds", "long", "required"]


def test_children_are_indented_two_spaces_per_depth_and_leaders_align():
    tree = [line for line in _human().splitlines() if re.match(r"^\s+\w+ \.+ ", line)]
    assert any(line.startswith("    createdAt ") for line in tree)
    assert any(line.startswith("  audit ") for line in tree)
    type_columns = {re.search(r"\.+ (\S)", line).start(1) for line in tree}
    assert len(type_columns) == 1


def test_the_widest_row_gets_a_one_dot_leader():
    assert "  organization . object" in _human()


def test_the_report_is_coloured_only_on_a_terminal():
    assert "\x1b[" not in _printed(terminal=False)
    assert _printed(terminal=False) == _human()
    assert "\x1b[32m✓\x1b[0m" in _printed(terminal=True)


# -- JSON ----------------------------------------------------------------------


def _json(deployment: Deployment | None = None, **kwargs) -> dict:
    return json.loads(json.dumps(check_document(_result(deployment, **kwargs))))


def test_the_offline_json_has_null_diagnostics_and_coverage():
    document = _json()
    assert set(document) == {"config", "mappings", "diagnostics", "coverage"}
    assert document["diagnostics"] is None
    assert document["coverage"] is None


def test_the_offline_json_lists_enabled_mappings_with_their_hash():
    mappings = _json()["mappings"]
    assert [m["index"] for m in mappings] == ["users"]
    assert mappings[0]["hash"] == WORKED_EXAMPLE_HASH


def test_mapping_fields_carry_type_options_nullability_array_and_children():
    fields = {f["name"]: f for f in _json()["mappings"][0]["fields"]}
    assert fields["id"] == {"name": "id", "mapping": {"type": "integer"}, "nullable": False}
    assert fields["sku"]["mapping"] == {"type": "text", "analyzer": "flusso_code"}
    assert fields["price"]["mapping"] == {"type": "scaled_float", "scaling_factor": 100}
    assert fields["tagIds"] == {
        "name": "tagIds", "mapping": {"type": "long"}, "nullable": False, "array": True,
    }
    assert fields["audit"]["children"] == [
        {"name": "createdAt", "mapping": {"type": "date"}, "nullable": False},
    ]
    assert "children" not in fields["email"]


def test_the_json_config_masks_literal_secrets_and_keeps_env_references():
    config = _json()["config"]
    assert config["source"]["connection"] == {"url": {"env": "DATABASE_URL"}}
    primary = config["sinks"]["primary"]["opensearch"]
    assert primary["url"] == {"value": "https://admin:***@localhost:9200"}
    assert primary["username"] == {"value": "***"}
    assert primary["password"] == {"value": "***"}
    assert "hunter2" not in json.dumps(config)


def test_the_json_config_masks_a_parts_password():
    parts = ConnectionParts(database="app", password=Secret(value="s3cret"))
    config = _json(_deployment(source=SourceConfig(connection=parts)))["config"]
    assert config["source"]["connection"]["parts"] == {
        "host": "127.0.0.1", "port": 5432, "user": "postgres",
        "password": {"value": "***"}, "database": "app",
    }


def test_the_json_config_follows_the_lock_layout():
    config = _json()["config"]
    assert set(config) == {"source", "sinks", "indexes", "on_error", "server", "prefix"}
    assert list(config["indexes"]) == ["archive", "users"]
    users = config["indexes"]["users"]
    assert users["enabled"] is True
    schema = users["schema"]
    assert schema["soft_delete"] == {"column": {"column": "deleted_at"}}
    assert schema["filters"] == [
        {"value_op": {"column": "kind", "op": "eq", "value": {"single": "customer"}}},
    ]
    sku = next(f for f in schema["fields"] if f["field"] == "sku")
    assert sku == {
        "field": "sku", "options": {"analyzer": "flusso_code"},
        "source": {"column": {"column": "sku", "ty": "identifier", "nullable": True}},
    }
    tag_ids = next(f for f in schema["fields"] if f["field"] == "tagIds")
    assert tag_ids["source"]["relation"]["aggregate"]["op"] == {"ids": {"element_type": "long"}}
    assert config["sinks"]["audit"] == {"stdout": {"pretty": True}}


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("https://u:p@h:9200", "https://u:***@h:9200"),
        ("https://h:9200", "https://h:9200"),
        ("https://u@h", "https://u@h"),
        ("not a url", "not a url"),
    ],
)
def test_urls_lose_only_their_password(url, redacted):
    assert redact_password(url) == redacted


# -- online additions ------------------------------------------------------------


USERS, TAGS, ORDERS = (TableRef("public", name) for name in ("users", "tags", "orders"))

_GAP = Coverage(
    satisfied=False, manageable=False, will_manage=False, present=(USERS,), missing=(TAGS,),
    blockers=("role does not own table public.tags",),
    remediation=('ALTER PUBLICATION "flusso" ADD TABLE "public"."tags";',),
)


def test_an_online_report_with_errors_fails_and_shows_them():
    deployment = _deployment()
    diagnostics = (Diagnostic("users", "email", "error", "references unknown column `public.users.email`"),)
    text = _human(deployment, diagnostics=diagnostics, coverage=_GAP)
    assert "[offline]" not in text
    assert "[error] users.email  references unknown column `public.users.email`" in text
    assert "role does not own table public.tags" in text
    assert '  ALTER PUBLICATION "flusso" ADD TABLE "public"."tags";' in text
    assert text.splitlines()[-1] == "[failed] schema disagrees with database"


def test_an_online_report_without_diagnostics_passes():
    deployment = _deployment()
    satisfied = Coverage(True, True, False, (ORDERS, USERS), (), (), ())
    text = _human(deployment, diagnostics=(), coverage=satisfied)
    assert "(schema matches the database)" in text
    assert "source streams all 2 required table(s)" in text
    assert text.splitlines()[-1] == "✓ check passed"


def test_the_online_json_carries_diagnostics_and_coverage():
    document = _json(
        diagnostics=(Diagnostic("users", "email", "warning", "allows null"),), coverage=_GAP,
    )
    assert document["diagnostics"] == [
        {"index": "users", "field": "email", "severity": "warning", "message": "allows null",
         "fix": None},
    ]
    assert document["coverage"] == {
        "satisfied": False, "manageable": False, "will_manage": True,
        "present": ["public.users"], "missing": ["public.tags"],
        "blockers": ["role does not own table public.tags"],
        "remediation": ['ALTER PUBLICATION "flusso" ADD TABLE "public"."tags";'],
        "exists": True, "missing_actions": [], "via_root_fix": None,
    }


def test_a_finding_shows_its_fix_on_the_next_line():
    deployment = _deployment()
    diagnostics = (Diagnostic("source", "role", "error", "role r may not stream changes",
                              fix='ALTER ROLE "r" REPLICATION;'),)
    text = _human(deployment, diagnostics=diagnostics, coverage=_GAP)
    lines = text.splitlines()
    at = lines.index("  [error] source.role  role r may not stream changes")
    assert lines[at + 1] == '      fix: ALTER ROLE "r" REPLICATION;'
    assert _json(diagnostics=diagnostics, coverage=_GAP)["diagnostics"][0]["fix"] == (
        'ALTER ROLE "r" REPLICATION;'
    )
