"""flusso.toml loading (acceptance cases 1–8)."""

from __future__ import annotations

import pytest

from flusso.domain.config.config_file import parse_config, resolve_schema_path
from flusso.domain.config.model import (
    ConnectionParts,
    OpenSearchSinkConfig,
    Secret,
    ServerConfig,
    StdoutSinkConfig,
)
from flusso.domain.errors import ConfigError

SOURCE = '[source]\ntype = "postgres"\n'
TINY_SCHEMA = "version: 1\ntable: users\nprimary_key: id\nfields:\n  - integer: id\n    required: true\n"


def no_files(path: str) -> str:
    raise FileNotFoundError(2, "No such file or directory", path)


def load(text: str, *, path: str = "flusso.toml", files: dict[str, str] | None = None):
    def read(resolved: str) -> str:
        if files is not None and resolved in files:
            return files[resolved]
        return no_files(resolved)

    return parse_config(text, path=path, read_schema=read)


def error_of(text: str, **kwargs) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(text, **kwargs)
    return caught.value


def all_messages(error: ConfigError) -> str:
    return "\n".join(f"{p.message}\n{p.hint or ''}" for p in error.problems)


# -- case 1 ------------------------------------------------------------------


def test_a_source_alone_gives_the_defaults_everywhere():
    deployment = load(SOURCE)
    assert deployment.source.connection is None
    assert deployment.source.manage_publication is True
    assert deployment.sinks == {}
    assert deployment.indexes == ()
    assert deployment.on_error == "stop"
    assert deployment.prefix == ""
    assert deployment.server == ServerConfig()


# -- case 2 ------------------------------------------------------------------


def test_a_missing_source_table_is_named():
    error = error_of('on_error = "stop"\n')
    assert "missing key `source`" in error.message
    assert error.message.startswith("flusso.toml: ")


def test_an_unknown_source_type_lists_postgres():
    error = error_of('[source]\ntype = "mysql"\n')
    assert "postgres" in error.message
    assert '"mysql"' in error.message


def test_an_unknown_key_in_source_is_named_with_the_allowed_keys():
    error = error_of(SOURCE + 'extra_field = "oops"\n')
    assert "unknown key `extra_field`" in error.message
    assert "`connection_url`" in error.message
    assert "[source]" in error.message


def test_a_misspelt_key_gets_a_did_you_mean_hint():
    error = error_of(SOURCE + "manage_publicaton = true\n")
    assert error.hint == "did you mean `manage_publication`?"


# -- case 3 ------------------------------------------------------------------


def test_an_opensearch_sink_without_url_fails_at_load_even_with_the_reserved_variable_set(
    monkeypatch,
):
    monkeypatch.setenv("ES_OPENSEARCH_URL", "https://from-env:9200")
    error = error_of(SOURCE + '[sinks.es]\ntype = "opensearch"\n')
    assert "[sinks.es]" in error.message
    assert "missing key `url`" in error.message


# -- case 4 ------------------------------------------------------------------


def test_a_numeric_sink_url_explains_the_accepted_shapes():
    error = error_of(SOURCE + '[sinks.es]\ntype = "opensearch"\nurl = 9200\n')
    assert 'env = "VAR"' in error.message
    assert "found an integer" in error.message
    assert "untagged enum" not in error.message


def test_a_numeric_connection_url_lists_the_three_shapes():
    error = error_of(SOURCE + "connection_url = 9200\n")
    assert "connection URL string" in error.message
    assert "connection-parts table" in error.message
    assert "found an integer" in error.message


def test_an_extra_key_in_an_env_reference_is_named():
    error = error_of(SOURCE + 'connection_url = { env = "DB", oops = "x" }\n')
    assert "`oops`" in error.message
    assert '{ env = "VAR" }' in error.message


def test_an_env_reference_with_a_wrong_first_key_is_an_unknown_key():
    error = error_of(SOURCE + '[sinks.es]\ntype = "opensearch"\nurl = { var = "X" }\n')
    assert "unknown key `var`" in error.message


def test_an_empty_table_is_not_an_env_reference():
    error = error_of(SOURCE + '[sinks.es]\ntype = "opensearch"\nurl = {}\n')
    assert "found an empty table" in error.message


# -- case 5 ------------------------------------------------------------------


def test_an_opensearch_sink_with_only_url_takes_every_default():
    deployment = load(SOURCE + '[sinks.primary]\ntype = "opensearch"\nurl = "https://os:9200"\n')
    assert deployment.sinks == {
        "primary": OpenSearchSinkConfig(url=Secret(value="https://os:9200"))
    }
    sink = deployment.sinks["primary"]
    assert isinstance(sink, OpenSearchSinkConfig)
    assert (sink.tls_verify, sink.batch_size, sink.max_bytes, sink.timeout_secs) == (
        True, 1000, 10_485_760, 30,
    )
    assert (sink.max_retries, sink.number_of_shards, sink.number_of_replicas) == (3, 1, 1)
    assert (sink.refresh_interval, sink.text_analysis, sink.auto_subfields) == (
        "10s", "builtin", True,
    )
    assert sink.username is None and sink.password is None and sink.pipeline is None


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ('text_analysis = "fancy"', "'builtin' or 'icu'"),
        ('batch_size = "10"', "expected an integer, found a string"),
        ("tls_verify = 1", "expected a boolean"),
        ("number_of_shards = -1", "between 0 and"),
        ("timeout_secs = 1.5", "found a float"),
    ],
)
def test_sink_values_are_never_coerced(line, fragment):
    error = error_of(
        SOURCE + f'[sinks.es]\ntype = "opensearch"\nurl = "https://os:9200"\n{line}\n'
    )
    assert fragment in error.message
    assert "[sinks.es]" in error.message


def test_zero_is_accepted_for_integer_sink_settings():
    deployment = load(
        SOURCE + '[sinks.es]\ntype = "opensearch"\nurl = "https://os"\nbatch_size = 0\n'
        "number_of_shards = 0\n"
    )
    sink = deployment.sinks["es"]
    assert isinstance(sink, OpenSearchSinkConfig)
    assert (sink.batch_size, sink.number_of_shards) == (0, 0)


def test_an_unknown_sink_type_lists_the_sink_types():
    error = error_of(SOURCE + '[sinks.es]\ntype = "kafka"\n')
    assert "`opensearch`" in error.message and "`stdout`" in error.message


def test_a_stdout_sink_takes_only_pretty():
    deployment = load(SOURCE + '[sinks.audit]\ntype = "stdout"\npretty = true\n')
    assert deployment.sinks == {"audit": StdoutSinkConfig(pretty=True)}
    error = error_of(SOURCE + '[sinks.audit]\ntype = "stdout"\nurl = "x"\n')
    assert "unknown key `url`" in error.message
    assert "`pretty`" in error.message


def test_env_references_and_literals_stay_unresolved():
    deployment = load(
        SOURCE.replace('"postgres"\n', '"postgres"\nconnection_url = { env = "PG" }\n')
        + '[sinks.es]\ntype = "opensearch"\nurl = { env = "OS_URL" }\nusername = "admin"\n'
        'password = { env = "OS_PASSWORD" }\n'
    )
    assert deployment.source.connection == Secret(env="PG")
    sink = deployment.sinks["es"]
    assert isinstance(sink, OpenSearchSinkConfig)
    assert sink.url == Secret(env="OS_URL")
    assert sink.username == Secret(value="admin")
    assert sink.password == Secret(env="OS_PASSWORD")


def test_connection_parts_take_their_defaults_and_require_database():
    deployment = load(SOURCE + 'connection_url = { database = "app" }\n')
    assert deployment.source.connection == ConnectionParts(database="app")
    error = error_of(SOURCE + 'connection_url = { host = "db" }\n')
    assert "missing key `database`" in error.message
    error = error_of(SOURCE + 'connection_url = { database = "app", port = 70000 }\n')
    assert "connection_url.port" in error.message
    assert "65535" in error.message


def test_several_structural_problems_are_reported_together():
    error = error_of(
        SOURCE + '[sinks.es]\ntype = "opensearch"\nurl = "https://os"\nbatch_size = "1"\n'
        'text_analysis = "x"\n'
    )
    assert len(error.problems) == 2


# -- case 6 ------------------------------------------------------------------


@pytest.mark.parametrize("address", ["not-an-address", "localhost:9464", "0.0.0.0", "1.2.3.4:70000"])
def test_server_addresses_must_be_socket_addresses(address):
    error = error_of(SOURCE + f'[server]\npublic_address = "{address}"\n')
    assert "socket address" in error.message
    assert "[server] public_address" in error.message


@pytest.mark.parametrize("address", ["0.0.0.0:9464", "127.0.0.1:0", "[::1]:9465", "[::]:80"])
def test_ip_socket_addresses_are_accepted(address):
    deployment = load(SOURCE + f'[server]\nprivate_address = "{address}"\n')
    assert deployment.server == ServerConfig(private_address=address)


def test_an_unknown_server_key_is_rejected():
    error = error_of(SOURCE + '[server]\nbogus = "0.0.0.0:1"\n')
    assert "unknown key `bogus`" in error.message


# -- case 7 ------------------------------------------------------------------


def test_an_index_without_enabled_is_rejected():
    error = error_of(SOURCE + '[[index]]\nname = "users"\nschema = "users.schema.yml"\n')
    assert "[[index]] #1" in error.message
    assert "missing key `enabled`" in error.message


def test_index_names_that_normalise_alike_collide():
    error = error_of(
        SOURCE
        + '[[index]]\nname = "Users"\nschema = "a.yml"\nenabled = true\n'
        + '[[index]]\nname = "users"\nschema = "b.yml"\nenabled = true\n'
    )
    assert "duplicate index name `users`" in error.message


def test_sink_names_are_normalised():
    deployment = load(SOURCE + '[sinks.Primary]\ntype = "stdout"\n')
    assert list(deployment.sinks) == ["primary"]


def test_sink_names_that_normalise_alike_collide():
    error = error_of(SOURCE + '[sinks.Primary]\ntype = "stdout"\n[sinks.primary]\ntype = "stdout"\n')
    assert "duplicate sink name `primary`" in error.message


def test_sinks_are_kept_in_name_order():
    deployment = load(SOURCE + '[sinks.zeta]\ntype = "stdout"\n[sinks.alpha]\ntype = "stdout"\n')
    assert list(deployment.sinks) == ["alpha", "zeta"]


def test_an_invalid_index_name_names_the_rule():
    error = error_of(SOURCE + '[[index]]\nname = "1users"\nschema = "a.yml"\nenabled = true\n')
    assert "`1users`" in error.message
    assert "^[a-z_][a-z0-9_]*$" in error.message


# -- case 8 ------------------------------------------------------------------


def test_relative_schema_paths_start_at_the_config_directory():
    assert resolve_schema_path("conf/flusso.toml", "s/users.schema.yml") == "conf/s/users.schema.yml"
    assert resolve_schema_path("flusso.toml", "users.schema.yml") == "users.schema.yml"
    assert resolve_schema_path("conf/flusso.toml", "/abs/u.yml") == "/abs/u.yml"


def test_a_schema_is_read_next_to_the_config_file():
    deployment = load(
        SOURCE + '[[index]]\nname = "users"\nschema = "s/users.schema.yml"\nenabled = false\n',
        path="conf/flusso.toml",
        files={"conf/s/users.schema.yml": TINY_SCHEMA},
    )
    (index,) = deployment.indexes
    assert index.name == "users"
    assert index.enabled is False
    assert index.schema_path == "conf/s/users.schema.yml"
    assert index.schema.table == "users"
    assert index.schema.primary_key == "id"


def test_an_unreadable_schema_names_the_index_and_the_resolved_path():
    error = error_of(
        SOURCE + '[[index]]\nname = "users"\nschema = "s/users.schema.yml"\nenabled = true\n',
        path="conf/flusso.toml",
    )
    assert "`users`" in error.message
    assert "conf/s/users.schema.yml" in error.message


def test_indexes_keep_file_order_and_their_on_error():
    deployment = load(
        'on_error = "skip"\n'
        + SOURCE
        + '[[index]]\nname = "zeta"\nschema = "z.yml"\nenabled = true\non_error = "stop"\n'
        + '[[index]]\nname = "alpha"\nschema = "a.yml"\nenabled = true\n',
        files={"z.yml": TINY_SCHEMA, "a.yml": TINY_SCHEMA},
    )
    assert [i.name for i in deployment.indexes] == ["zeta", "alpha"]
    assert deployment.on_error_for("zeta") == "stop"
    assert deployment.on_error_for("alpha") == "skip"


def test_a_schema_error_is_reported_with_its_file():
    error = error_of(
        SOURCE + '[[index]]\nname = "users"\nschema = "u.yml"\nenabled = true\n',
        files={"u.yml": "version: 1\ntable: users\nfields:\n  - keyword: email\n"},
    )
    assert "u.yml" in all_messages(error)
    assert "required" in all_messages(error)


# -- syntax and prefix --------------------------------------------------------


def test_a_toml_syntax_error_shows_line_column_and_a_caret():
    error = error_of(SOURCE + "prefix = = 1\n")
    lines = error.message.splitlines()
    assert lines[0].startswith("flusso.toml: ")
    assert "--> line 3, column 10" in error.message
    assert "3 | prefix = = 1" in lines
    assert lines[-1].endswith(" " * 9 + "^")


def test_a_syntax_error_at_the_end_of_the_document_points_at_the_last_line():
    error = error_of(SOURCE + 'prefix = "dev_\n')
    assert "--> line 3" in error.message
    assert '3 | prefix = "dev_' in error.message


def test_the_prefix_is_carried_through_unchecked():
    assert load('prefix = "Not Valid*"\n' + SOURCE).prefix == "Not Valid*"


# -- case 13: the loader carries the prefix; `run` checks it --------------------


@pytest.mark.parametrize("prefix", ["", "dev_", "staging-", "env1_", "a"])
def test_valid_prefixes_load_and_pass_the_run_check(prefix):
    from flusso.domain.naming import validate_prefix

    deployment = load(f'prefix = "{prefix}"\n' + SOURCE)
    assert deployment.prefix == prefix
    validate_prefix(deployment.prefix)


@pytest.mark.parametrize("prefix", ["Dev_", "_dev", "-dev", "+dev", "de v", "dev,", "dev/", "dev*"])
def test_invalid_prefixes_load_but_fail_the_run_check(prefix):
    from flusso.domain.naming import validate_prefix

    deployment = load(f'prefix = "{prefix}"\n' + SOURCE)
    with pytest.raises(ConfigError, match="invalid index prefix"):
        validate_prefix(deployment.prefix)
