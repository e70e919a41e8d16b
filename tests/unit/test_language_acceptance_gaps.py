"""Config-language acceptance cases that other files prove only in part, and the issue-level
checks: a mutation fuzz of `flusso.toml` (ConfigError only, never a traceback) and a
build → load lock round trip over random *loader-valid* schemas with joins,
aggregates and filters.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import replace
from pathlib import Path
from unittest.mock import patch

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mapping_examples import WORKED_EXAMPLE_YAML
from test_lock_property import schemas as model_schemas
from test_schema_fuzz import COLUMNS, FILTER, LEAVES, NAMES, emit, level

from flusso.app.services.compile import build_lock, load_lock
from flusso.domain.config import config_shape, schema_file
from flusso.domain.config.config_file import parse_config
from flusso.domain.config.model import (
    Aggregate,
    Comparison,
    Deployment,
    Field,
    GroupSource,
    HasMany,
    HasOne,
    IndexSchema,
    Join,
    ManyToMany,
)
from flusso.domain.config.schema_file import parse_index_schema
from flusso.domain.errors import ConfigError
from flusso.domain.mapping import build_index_body, index_mapping
from flusso.domain.types import resolve_fields
from flusso.entrypoints.cli.main import cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SOURCE = '[source]\ntype = "postgres"\n'
TINY_SCHEMA = "version: 1\ntable: users\nprimary_key: id\nfields:\n  - integer: id\n    required: true\n"


def schema_of(fields: str) -> IndexSchema:
    text = "version: 1\ntable: users\nprimary_key: id\nfields:\n" + fields
    return parse_index_schema(text, path="users.schema.yml", index="users")


def test_case6_public_address_accepts_an_ip_socket_address():
    deployment = parse_config(SOURCE + '[server]\npublic_address = "0.0.0.0:9464"\n',
                              path="flusso.toml", read_schema=read_valid_schema)
    assert deployment.server.public_address == "0.0.0.0:9464"


# ---------------------------------------------------------------------------
# Case 8 through the CLI: schema paths start at the config file, not the cwd
# ---------------------------------------------------------------------------


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A project in tmp/project/conf and a working directory that is not its parent."""
    conf = tmp_path / "project" / "conf"
    (conf / "s").mkdir(parents=True)
    cwd = tmp_path / "unrelated"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    for name in ("FLUSSO_CONFIG", "FLUSSO_OUT", "FLUSSO_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    return conf


def test_case8_build_reads_schemas_beside_the_config_from_any_working_directory(elsewhere):
    (elsewhere / "flusso.toml").write_text(
        SOURCE + '[[index]]\nname = "users"\nschema = "s/users.schema.yml"\nenabled = true\n'
    )
    (elsewhere / "s" / "users.schema.yml").write_text(TINY_SCHEMA)
    out = elsewhere.parent / "flusso.lock"
    result = CliRunner().invoke(cli, ["build", "-c", str(elsewhere / "flusso.toml"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    lock = json.loads(out.read_text())
    (index,) = lock["config"]["indexes"]
    assert index["name"] == "users"
    assert index["schema"]["table"] == "users"


def test_case8_a_missing_schema_names_the_index_and_the_resolved_path(elsewhere):
    (elsewhere / "flusso.toml").write_text(
        SOURCE + '[[index]]\nname = "users"\nschema = "s/missing.schema.yml"\nenabled = true\n'
    )
    result = CliRunner().invoke(cli, ["build", "-c", str(elsewhere / "flusso.toml")])
    assert result.exit_code == 1
    assert "`users`" in result.output
    assert str(elsewhere / "s" / "missing.schema.yml") in result.output
    assert "Traceback" not in result.output


# ---------------------------------------------------------------------------
# Cases 26, 29, 36, 38: the loaded file all the way to the resolved result
# ---------------------------------------------------------------------------


def test_case26_a_loaded_keyword_ids_aggregate_is_a_non_null_keyword_array():
    loaded = schema_of("  - ids: tagIds\n    table: tags\n    foreign_key: user_id\n"
                       "    element_type: keyword\n")
    (resolved,) = resolve_fields(loaded)
    assert (resolved.type, resolved.array, resolved.nullable) == ("keyword", True, False)


def test_case29_a_loaded_keyword_map_maps_to_a_dynamic_object():
    loaded = schema_of("  - map: attrs\n    values: keyword\n    required: false\n")
    body = build_index_body(index_mapping("users", loaded))
    assert json.loads(json.dumps(body))["mappings"]["properties"]["attrs"] == {
        "type": "object", "dynamic": True,
    }


CASE36_SCHEMA = (
    "version: 1\ntable: users\nprimary_key: id\nfields:\n"
    "  - integer: id\n    required: false\n  - keyword: email\n    required: {required}\n"
)
CASE36_BASE = SOURCE + (
    '[[index]]\nname = "users"\nschema = "users.schema.yml"\nenabled = true\n'
)


def hash_of(config: str, schema: str = CASE36_SCHEMA.format(required="true")) -> str:
    deployment = parse_config(config, path="flusso.toml", read_schema=lambda _: schema)
    (index,) = deployment.indexes
    return index_mapping(index.name, index.schema).hash


@pytest.mark.parametrize(
    "config",
    [
        CASE36_BASE.replace("enabled = true", "enabled = false"),
        CASE36_BASE + 'on_error = "skip"\n',
        'prefix = "dev_"\non_error = "skip"\n' + CASE36_BASE,
        CASE36_BASE + '[sinks.primary]\ntype = "opensearch"\nurl = "https://os:9200"\n'
        'number_of_shards = 3\nnumber_of_replicas = 0\nrefresh_interval = "1s"\n'
        'text_analysis = "icu"\nauto_subfields = false\nbatch_size = 5\nusername = "u"\n'
        'password = { env = "P" }\ntls_verify = false\n',
        CASE36_BASE + '[sinks.audit]\ntype = "stdout"\npretty = true\n',
    ],
    ids=["enabled", "index-on_error", "prefix-and-global-on_error", "opensearch-options", "stdout"],
)
def test_case36_settings_outside_the_schema_keep_the_golden_hash(config):
    assert hash_of(CASE36_BASE) == "47ad4360"
    assert hash_of(config) == "47ad4360"


def test_case36_schema_cosmetics_keep_the_hash_and_required_toggles_it():
    cosmetic = (
        "# users\nversion: 1\ntable: ' Users '\nschema: public\nprimary_key: id\nfields:\n"
        "  - required: false   # key order inside a field is free\n    integer: id\n"
        "  - required: true\n    keyword: email\n"
    )
    assert hash_of(CASE36_BASE, cosmetic) == "47ad4360"
    assert hash_of(CASE36_BASE, CASE36_SCHEMA.format(required="false")) == "9f82a713"


def test_case38_offline_check_of_the_worked_example_prints_the_tree_and_banner(tmp_path,
                                                                              monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("FLUSSO_CONFIG", "FLUSSO_OFFLINE", "FLUSSO_FORMAT", "NO_COLOR", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "flusso.toml").write_text(CASE36_BASE)
    (tmp_path / "users.schema.yml").write_text(WORKED_EXAMPLE_YAML)
    result = CliRunner().invoke(cli, ["check", "--offline"])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "✓ config valid: flusso.toml" in text
    assert "Index  users" in text
    rows = {
        "id": r"^  id \.+ integer\s+required$",
        "email": r"^  email \.+ keyword\s+required$",
        "fullName": r"^  fullName \.+ text\s+optional$",
        "location": r"^  location \.+ geo_point\s+optional$",
        "audit": r"^  audit \.+ object\s+required$",
        "createdAt": r"^    createdAt \.+ date\s+required$",
        "organization": r"^  organization \.+ object\s+optional$",
        "orders": r"^  orders \.+ nested\s+required$",
        "tagIds": r"^  tagIds \.+ long\s+required$",
    }
    for name, row in rows.items():
        assert re.search(row, text, re.M), f"no tree row for {name}"
    assert text.rstrip().endswith(
        "[offline] skipped database validation — types and nullability not checked"
    )


# ---------------------------------------------------------------------------
# Issue check (a): mutated flusso.toml files only ever raise ConfigError
# ---------------------------------------------------------------------------

RICH_SEED = """\
# every section, both sink types, connection parts and overrides
prefix = "dev_"
on_error = "skip"

[source]
type = "postgres"
connection_url = { host = "db", port = 5433, user = "app", password = { env = "PGPASS" }, database = "shop" }
manage_publication = false

[sinks.primary]
type = "opensearch"
url = { env = "OS_URL" }
username = "admin"
password = { env = "OS_PASSWORD" }
tls_verify = false
batch_size = 0
max_bytes = 1048576
timeout_secs = 5
max_retries = 2
pipeline = "ingest"
number_of_shards = 2
number_of_replicas = 0
refresh_interval = "5s"
text_analysis = "icu"
auto_subfields = false

[sinks.audit]
type = "stdout"
pretty = true

[server]
public_address = "0.0.0.0:9464"
private_address = "[::1]:9465"

[[index]]
name = "users"
schema = "schemas/users.schema.yml"
enabled = true
on_error = "stop"

[[index]]
name = "orders"
schema = "schemas/orders.schema.yml"
enabled = false
"""

TOML_KEYS = sorted({
    *config_shape.TOP_LEVEL_KEYS, *config_shape.SOURCE_KEYS, *config_shape.CONNECTION_PART_KEYS,
    *config_shape.OPENSEARCH_SINK_KEYS, *config_shape.STDOUT_SINK_KEYS, *config_shape.INDEX_KEYS,
    *config_shape.SERVER_KEYS, "env", "value", "oops", "manage_publicaton", "Type", "1abc",
    '"quoted key"', "a.b", "sinks.x", "index", "",
})
TOML_VALUES = [
    '""', '"x"', "1", "-1", "0", "true", "false", "1.5", "[]", "{}", '{ env = "X" }',
    "{ env = 1 }", '{ env = "X", oops = 1 }', '{ database = "d", port = 99999 }',
    '{ host = "h" }', '"0.0.0.0:1"', '"not-an-address"', '"localhost:9464"',
    "1979-05-27T07:32:00Z", "07:32:00", "inf", "nan", '"""x"""', "'lit'", '[1, "a"]',
    "99999999999999999999999", "18446744073709551616", '"stop"', '"skip"', '"icu"', '"fancy"',
    '"postgres"', '"mysql"', '"opensearch"', '"stdout"', '"kafka"', '"../x.yml"', '"/abs.yml"',
    '"\\u0000"', '"Users"', '"1users"', '"a b"', "[[1]]", "{ a = { b = 1 } }", "0x1F", "1e400",
]
HEADERS = [
    "[source]", "[sinks.x]", "[[index]]", "[server]", "[sinks]", "[index]", "[[sinks.x]]",
    "[bogus]", "[ source ]", '[sinks."A b"]', "[sinks.Primary]", "[[server]]", "[source.x]",
    "[sinks.primary]", "[sinks.x.y]",
]
TOML_GARBAGE = list("=[]{}\"',.#\\\n\t \x00\x7f\ufeff\u2028é") + ['"""', "'''", " = ", "[[", "]]"]

_TOML_KEY_LINE = re.compile(r"^(\s*)([A-Za-z_][\w]*)(\s*=\s*)(.*)$")


@functools.cache
def toml_seeds() -> tuple[str, ...]:
    return ((EXAMPLES / "flusso.toml").read_text(), RICH_SEED)


@functools.cache
def example_schemas() -> dict[str, str]:
    return {p.name: p.read_text() for p in (EXAMPLES / "schemas").glob("*.schema.yml")}


def read_valid_schema(path: str) -> str:
    """Every schema path reads a valid schema: the example of that name, else a tiny one."""
    return example_schemas().get(Path(path).name, TINY_SCHEMA)


@st.composite
def mutated_toml(draw) -> str:
    text = draw(st.sampled_from(toml_seeds()))
    for _ in range(draw(st.integers(1, 4))):
        lines = text.split("\n")
        at = draw(st.integers(0, max(len(lines) - 1, 0)))
        line = lines[at] if lines else ""
        match = _TOML_KEY_LINE.match(line)
        op = draw(st.sampled_from(
            ["delete", "duplicate", "rename", "revalue", "header", "truncate", "garbage",
             "indent", "swap"]))
        if op == "delete" and lines:
            del lines[at]
        elif op == "duplicate" and lines:
            lines.insert(at, line)
        elif op == "rename" and match:
            lines[at] = match[1] + draw(st.sampled_from(TOML_KEYS)) + match[3] + match[4]
        elif op == "revalue" and match:
            lines[at] = match[1] + match[2] + match[3] + draw(st.sampled_from(TOML_VALUES))
        elif op == "header":
            lines.insert(at, draw(st.sampled_from(HEADERS)))
        elif op == "indent" and lines:
            lines[at] = " " * draw(st.integers(1, 4)) + line
        elif op == "swap" and len(lines) > 1:
            other = draw(st.integers(0, len(lines) - 1))
            lines[at], lines[other] = lines[other], lines[at]
        text = "\n".join(lines)
        if op == "truncate":
            text = text[: draw(st.integers(0, len(text)))]
        elif op == "garbage":
            pos = draw(st.integers(0, len(text)))
            text = text[:pos] + draw(st.sampled_from(TOML_GARBAGE)) + text[pos:]
    return text


# The schema loader has its own fuzz (test_schema_fuzz.py); here every schema read is
# valid, so its (immutable) result is cached to keep 2,000 TOML cases fast.
_cached_parse_index_schema = functools.lru_cache(maxsize=64)(schema_file.parse_index_schema)


def assert_loads_or_config_error(text: str) -> None:
    try:
        with patch.object(schema_file, "parse_index_schema", _cached_parse_index_schema):
            result = parse_config(text, path="conf/flusso.toml", read_schema=read_valid_schema)
    except ConfigError as error:
        assert error.problems
        for problem in error.problems:
            assert problem.message.startswith("conf/flusso.toml: "), problem.message
        return
    assert isinstance(result, Deployment)


def test_every_toml_seed_is_valid():
    for seed in toml_seeds():
        deployment = parse_config(seed, path="conf/flusso.toml", read_schema=read_valid_schema)
        assert deployment.indexes


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_toml())
def test_mutated_configs_only_ever_raise_config_error(text):
    assert_loads_or_config_error(text)


@pytest.mark.slow
@settings(max_examples=20000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_toml())
def test_mutated_configs_only_ever_raise_config_error_long_run(text):
    assert_loads_or_config_error(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_as_a_config_only_ever_raises_config_error(text):
    assert_loads_or_config_error(text)


# ---------------------------------------------------------------------------
# Issue check (b): random valid schemas → build lock → load lock → equal
# ---------------------------------------------------------------------------


FILTERS = st.lists(FILTER, min_size=1, max_size=2)
ORDER_BY = st.lists(st.fixed_dictionaries(
    {"column": COLUMNS}, optional={"direction": st.sampled_from(["asc", "desc"])}), max_size=2)
THROUGH = st.fixed_dictionaries({"table": COLUMNS, "left_key": COLUMNS, "right_key": COLUMNS})


MAYBE_FILTERS = st.lists(FILTER, max_size=2)


def relations(children, names=NAMES, filters=MAYBE_FILTERS):
    """Every join kind, with filters, order and limit where the kind allows them."""
    fields = level(children)
    return st.one_of(
        st.fixed_dictionaries(
            {"has_many": names, "table": COLUMNS, "primary_key": COLUMNS,
             "foreign_key": COLUMNS, "fields": fields, "filters": filters},
            optional={"order_by": ORDER_BY, "limit": st.integers(0, 100)}),
        st.fixed_dictionaries(
            {"has_one": names, "table": COLUMNS, "primary_key": COLUMNS,
             "foreign_key": COLUMNS, "fields": fields, "filters": filters},
            optional={"order_by": ORDER_BY, "required": st.booleans()}),
        st.fixed_dictionaries(
            {"many_to_many": names, "table": COLUMNS, "primary_key": COLUMNS,
             "through": THROUGH, "fields": fields, "filters": filters},
            optional={"order_by": ORDER_BY, "limit": st.integers(0, 100)}),
        st.fixed_dictionaries(
            {"belongs_to": names, "table": COLUMNS, "primary_key": COLUMNS, "fields": fields,
             "filters": filters},
            optional={"required": st.booleans(), "column": COLUMNS}),
    )


def grouped(children):
    return st.one_of(st.fixed_dictionaries({"object": NAMES, "fields": level(children)}),
                     relations(children))


def filtered_aggregate(name: str):
    fk = {"table": COLUMNS, "foreign_key": COLUMNS, "filters": FILTERS}
    return st.one_of(
        st.fixed_dictionaries({"count": st.just(name), **fk}),
        st.fixed_dictionaries({"sum": st.just(name), "column": COLUMNS,
                               "value_type": st.sampled_from(["long", "decimal"]), **fk}),
        st.fixed_dictionaries({"ids": st.just(name), "element_type": st.just("long"), **fk}),
    )


# Names longer than NAMES allows, so the always-present fields never collide with others.
ALWAYS = st.tuples(
    relations(LEAVES, names=st.just("zzRelation"), filters=FILTERS).flatmap(
        lambda join: filtered_aggregate("zzNestedAgg").map(
            lambda aggregate: {**join, "fields": [aggregate, *join["fields"]]})),
    filtered_aggregate("zzAggregate"),
)
VALID_FIELDS = st.tuples(ALWAYS, level(st.recursive(LEAVES, grouped, max_leaves=6))).map(
    lambda pair: [*pair[0], *pair[1]])
VALID_SCHEMAS = st.fixed_dictionaries(
    {"version": st.just(1), "table": COLUMNS, "primary_key": st.just("id"),
     "fields": VALID_FIELDS},
    optional={
        "filters": FILTERS,
        "soft_delete": st.fixed_dictionaries(
            {"column": COLUMNS}, optional={"when": FILTERS}),
    },
).map(lambda document: emit(document) + "\n")


class MemoryFiles:
    """The `Files` port over a dict, so `build_lock` and `load_lock` run as `flusso build` does."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = dict(files)

    def exists(self, path: str) -> bool:
        return path in self.files

    def read_text(self, path: str) -> str:
        if path not in self.files:
            raise FileNotFoundError(2, "No such file or directory", path)
        return self.files[path]

    def write_text(self, path: str, text: str) -> None:
        self.files[path] = text


def walk(fields: tuple[Field, ...]):
    for field in fields:
        yield field
        if isinstance(field.source, GroupSource | Join):
            yield from walk(field.source.fields)


def features(schema: IndexSchema) -> set[str]:
    """Which structural features one converted schema exercises."""
    found = set()
    if schema.filters:
        found.add("root filters")
    if schema.soft_delete is not None:
        found.add("soft delete")
    for field in walk(schema.fields):
        source = field.source
        if isinstance(source, Join):
            found.add(type(source.kind).__name__)
            if source.filters:
                found.add("join filter")
                if any(isinstance(f, Comparison) for f in source.filters):
                    found.add("join comparison filter")
            if isinstance(source.kind, HasMany | HasOne | ManyToMany) and any(
                isinstance(child.source, Join | Aggregate) for child in source.fields
            ):
                found.add("nested relation")
        elif isinstance(source, Aggregate):
            found.add(f"aggregate {source.op}")
            if source.filters:
                found.add("aggregate filter")
    return found


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(VALID_SCHEMAS, min_size=1, max_size=2))
def test_random_valid_schemas_survive_build_lock_then_load_lock(schemas):
    config = SOURCE + "".join(
        f'[[index]]\nname = "i{n}"\nschema = "s/{n}.schema.yml"\nenabled = true\n'
        for n in range(len(schemas))
    )
    files = MemoryFiles({"conf/flusso.toml": config} | {
        f"conf/s/{n}.schema.yml": text for n, text in enumerate(schemas)
    })
    built = build_lock("conf/flusso.toml", "conf/flusso.lock", files, "9.9.9")
    loaded = load_lock("conf/flusso.lock", files)
    # The lock keeps no schema paths (they are build-time only); all else is equal.
    assert loaded == replace(
        built, indexes=tuple(replace(i, schema_path=None) for i in built.indexes)
    )
    for before, after in zip(built.indexes, loaded.indexes, strict=True):
        assert index_mapping(after.name, after.schema) == index_mapping(before.name, before.schema)
        # Not only scalars: every generated schema has a filtered join and aggregate.
        found = features(before.schema)
        assert found >= IN_EVERY_SCHEMA
        assert found & {"HasMany", "HasOne", "ManyToMany", "BelongsTo"}


ALL_FEATURES = {
    "HasMany", "HasOne", "ManyToMany", "BelongsTo", "join filter", "join comparison filter",
    "nested relation",
    "aggregate count", "aggregate sum", "aggregate ids", "aggregate filter", "root filters",
    "soft delete",
}


def features_reached(strategy, schemas_of, examples: int) -> set[str]:
    """The features a fixed-seed sample of `strategy` exercises (no shrinking, no database)."""
    seen: set[str] = set()

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def sample(value) -> None:
        for schema in schemas_of(value):
            seen.update(features(schema))

    sample()
    return seen


IN_EVERY_SCHEMA = {"join filter", "aggregate filter"}


@settings(max_examples=25, deadline=None)
@given(model_schemas)
def test_every_lock_property_schema_has_a_filtered_join_and_aggregate(schema):
    """tests/unit/test_lock_property.py's model-level generator, checked the same way."""
    found = features(schema)
    assert found >= IN_EVERY_SCHEMA
    assert found & {"HasMany", "HasOne", "ManyToMany", "BelongsTo"}


def test_a_sample_of_the_valid_schema_generator_reaches_every_feature():
    reached = features_reached(
        VALID_SCHEMAS, lambda text: [parse_index_schema(text, path="x", index="x")], 60)
    assert ALL_FEATURES - reached == set()


def test_a_sample_of_the_lock_property_strategy_reaches_every_feature():
    reached = features_reached(model_schemas, lambda schema: [schema], 100)
    assert ALL_FEATURES - reached == set()


# Found by the round trip above: ruamel keeps `\u` surrogate halves apart, which
# crashed hashing and the lock write with a UnicodeEncodeError (a traceback).


def test_a_json_style_surrogate_pair_escape_is_one_character():
    loaded = schema_of('  - constant: c\n    value: "\\ud800\\udc00"\n')
    assert loaded.fields[0].source.value == "\U00010000"


def test_an_unpaired_surrogate_escape_is_a_config_error_with_its_position():
    with pytest.raises(ConfigError) as caught:
        schema_of('  - constant: c\n    value: "x\\ud800"\n')
    assert "unpaired UTF-16 surrogate" in caught.value.message
    assert "--> line 6" in caught.value.message

