"""Secret resolution at run time (acceptance cases 9–11)."""

from __future__ import annotations

import pytest

from flusso.domain.config.config_file import parse_config
from flusso.domain.config.model import (
    ConnectionParts,
    Deployment,
    OpenSearchSinkConfig,
    Secret,
    SourceConfig,
    StdoutSinkConfig,
)
from flusso.domain.config.secrets import (
    ResolvedOpenSearch,
    redact_password,
    reserved_overrides,
    resolve_opensearch,
    resolve_source_url,
)
from flusso.domain.errors import ConfigError


def source(connection: Secret | ConnectionParts | None) -> SourceConfig:
    return SourceConfig(connection=connection)


def load_source(line: str) -> SourceConfig:
    text = f'[source]\ntype = "postgres"\n{line}\n'
    return parse_config(text, path="flusso.toml", read_schema=lambda p: "").source


# -- case 9 ------------------------------------------------------------------


def test_connection_parts_assemble_a_url_without_database_url():
    parts = load_source(
        'connection_url = { host = "parts-host", port = 5433, user = "parts-user", '
        'database = "parts-db" }'
    )
    assert resolve_source_url(parts, {}) == "postgresql://parts-user@parts-host:5433/parts-db"


def test_connection_parts_take_their_defaults_and_an_env_password():
    parts = source(ConnectionParts(database="app", password=Secret(env="PGPASS")))
    assert resolve_source_url(parts, {"PGPASS": "s3cr3t"}) == (
        "postgresql://postgres:s3cr3t@127.0.0.1:5432/app"
    )


def test_connection_parts_percent_encode_user_and_password():
    parts = source(ConnectionParts(database="app", user="a@b", password=Secret(value="p/w:@")))
    assert resolve_source_url(parts, {}) == "postgresql://a%40b:p%2Fw%3A%40@127.0.0.1:5432/app"


def test_an_unset_part_password_reference_is_named():
    parts = source(ConnectionParts(database="app", password=Secret(env="PGPASS")))
    with pytest.raises(ConfigError, match="environment variable 'PGPASS' is not set"):
        resolve_source_url(parts, {})


# -- case 10 -----------------------------------------------------------------


def test_database_url_overrides_a_literal():
    literal = source(Secret(value="postgresql://literal/db"))
    assert resolve_source_url(literal, {"DATABASE_URL": "postgres://env/db"}) == "postgres://env/db"


def test_an_explicit_env_reference_beats_database_url():
    explicit = source(Secret(env="X"))
    env = {"X": "postgresql://x/db", "DATABASE_URL": "postgresql://d/db"}
    assert resolve_source_url(explicit, env) == "postgresql://x/db"


def test_database_url_fills_an_omitted_connection():
    assert resolve_source_url(source(None), {"DATABASE_URL": " postgresql://d/db \n"}) == (
        "postgresql://d/db"
    )


def test_database_url_overrides_connection_parts():
    parts = source(ConnectionParts(database="app"))
    assert resolve_source_url(parts, {"DATABASE_URL": "postgresql://d/db"}) == "postgresql://d/db"


def test_an_omitted_connection_without_database_url_is_an_error():
    with pytest.raises(ConfigError, match="DATABASE_URL is not set"):
        resolve_source_url(source(None), {})


def test_an_unset_explicit_reference_names_its_variable_and_ignores_database_url():
    with pytest.raises(ConfigError, match="environment variable 'X' is not set"):
        resolve_source_url(source(Secret(env="X")), {"DATABASE_URL": "postgresql://d/db"})


def test_a_malformed_literal_loads_and_fails_only_at_resolution():
    loaded = load_source('connection_url = "not_a_valid_url"')
    assert loaded.connection == Secret(value="not_a_valid_url")
    with pytest.raises(ConfigError, match="invalid connection URL"):
        resolve_source_url(loaded, {})


def test_an_invalid_url_message_masks_the_password():
    with pytest.raises(ConfigError) as caught:
        resolve_source_url(source(None), {"DATABASE_URL": "mysql://u:hunter2@h/db"})
    assert "hunter2" not in caught.value.message
    assert "DATABASE_URL" in caught.value.message


def test_an_empty_database_url_counts_as_set():
    with pytest.raises(ConfigError, match="invalid connection URL"):
        resolve_source_url(source(Secret(value="postgresql://literal/db")), {"DATABASE_URL": ""})


# -- case 11 -----------------------------------------------------------------

PRIMARY = OpenSearchSinkConfig(url=Secret(value="https://literal:9200"))


def test_the_reserved_url_variable_overrides_only_its_own_sink():
    env = {"PRIMARY_OPENSEARCH_URL": "https://override:9200/"}
    primary = resolve_opensearch("primary", PRIMARY, env)
    secondary = resolve_opensearch("secondary", PRIMARY, env)
    assert primary.url == "https://override:9200"
    assert primary.overrides == ("PRIMARY_OPENSEARCH_URL",)
    assert secondary.url == "https://literal:9200"
    assert secondary.overrides == ()


def test_an_explicit_url_reference_beats_the_reserved_variable():
    sink = OpenSearchSinkConfig(url=Secret(env="T"))
    env = {"T": "https://t:9200", "PRIMARY_OPENSEARCH_URL": "https://override:9200"}
    assert resolve_opensearch("primary", sink, env).url == "https://t:9200"


def test_an_unset_url_reference_is_an_error_even_with_the_reserved_variable():
    sink = OpenSearchSinkConfig(url=Secret(env="T"))
    with pytest.raises(ConfigError, match="environment variable 'T' is not set"):
        resolve_opensearch("primary", sink, {"PRIMARY_OPENSEARCH_URL": "https://o:9200"})


def test_absent_credentials_are_filled_from_reserved_variables():
    env = {"PRIMARY_OPENSEARCH_USERNAME": "svc", "PRIMARY_OPENSEARCH_PASSWORD": "pw"}
    resolved = resolve_opensearch("primary", PRIMARY, env)
    assert (resolved.username, resolved.password) == ("svc", "pw")
    assert resolved.basic_auth == ("svc", "pw")


def test_literal_credentials_are_overridden_and_references_are_read():
    sink = OpenSearchSinkConfig(
        url=Secret(value="https://os"), username=Secret(value="lit"), password=Secret(env="PW")
    )
    env = {"PRIMARY_OPENSEARCH_USERNAME": "svc", "PW": "from-pw", "PRIMARY_OPENSEARCH_PASSWORD": "x"}
    resolved = resolve_opensearch("primary", sink, env)
    assert (resolved.username, resolved.password) == ("svc", "from-pw")
    assert resolved.overrides == ("PRIMARY_OPENSEARCH_USERNAME",)


def test_a_username_without_password_authenticates_with_an_empty_password():
    sink = OpenSearchSinkConfig(url=Secret(value="https://os"), username=Secret(value="u"))
    assert resolve_opensearch("primary", sink, {}).basic_auth == ("u", "")


def test_a_password_without_username_means_no_auth():
    sink = OpenSearchSinkConfig(url=Secret(value="https://os"), password=Secret(value="p"))
    assert resolve_opensearch("primary", sink, {}).basic_auth is None


@pytest.mark.parametrize("url", ["localhost:9200", "ftp://x", "https://a b", ""])
def test_a_malformed_sink_url_fails_at_resolution(url):
    sink = OpenSearchSinkConfig(url=Secret(value=url))
    with pytest.raises(ConfigError, match=r"\[sinks.primary\] url"):
        resolve_opensearch("primary", sink, {})


def test_the_resolved_url_is_stripped_and_keeps_its_path_prefix():
    sink = OpenSearchSinkConfig(url=Secret(value="  https://os:9200/search/  "))
    assert resolve_opensearch("primary", sink, {}) == ResolvedOpenSearch(
        url="https://os:9200/search"
    )


def test_the_resolved_password_stays_out_of_the_repr():
    resolved = resolve_opensearch(
        "primary", OpenSearchSinkConfig(url=Secret(value="https://os"), password=Secret(value="pw")), {}
    )
    assert "pw" not in repr(resolved).replace("password", "")


def test_reserved_overrides_names_the_variables_that_take_effect():
    deployment = Deployment(
        source=SourceConfig(connection=Secret(value="postgresql://x/db")),
        sinks={
            "audit": StdoutSinkConfig(),
            "primary": PRIMARY,
            "secondary": OpenSearchSinkConfig(url=Secret(env="S_URL")),
        },
    )
    env = {
        "DATABASE_URL": "postgresql://d/db",
        "PRIMARY_OPENSEARCH_URL": "https://p",
        "SECONDARY_OPENSEARCH_URL": "https://ignored",
        "SECONDARY_OPENSEARCH_PASSWORD": "pw",
        "AUDIT_OPENSEARCH_URL": "https://ignored",
    }
    assert reserved_overrides(deployment, env) == (
        "DATABASE_URL", "PRIMARY_OPENSEARCH_URL", "SECONDARY_OPENSEARCH_PASSWORD",
    )


def test_database_url_is_not_an_override_when_the_source_names_its_own_variable():
    deployment = Deployment(source=SourceConfig(connection=Secret(env="PG")))
    assert reserved_overrides(deployment, {"DATABASE_URL": "postgresql://d/db"}) == ()


def test_redaction_hides_only_the_password():
    assert redact_password("postgres://user:s3cr3t@host/db") == "postgres://user:***@host/db"
    assert redact_password("postgres://user@host/db") == "postgres://user@host/db"
    assert redact_password("not a url") == "not a url"
