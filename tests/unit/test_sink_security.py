"""Connection-security keys of an OpenSearch sink: loading, the lock, secret resolution and
the OpenSearch Serverless request plan."""

from __future__ import annotations

import json

import pytest

from flusso.adapters.opensearch.security import plan_serverless_request
from flusso.domain.config.config_file import parse_config
from flusso.domain.config.lock import decode_lock, encode_lock
from flusso.domain.config.model import AwsSigV4, Secret, SinkSecurity
from flusso.domain.config.secrets import resolve_opensearch
from flusso.domain.errors import ConfigError

HEAD = '[source]\ntype = "postgres"\n\n[sinks.primary]\ntype = "opensearch"\nurl = "https://os:9200"\n'


def load(extra: str):
    return parse_config(HEAD + extra, path="/etc/flusso/flusso.toml", read_schema=lambda p: "")


def problems(extra: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(extra)
    return [p.message for p in caught.value.problems]


def test_security_keys_load_with_relative_paths_joined_to_the_config_directory():
    deployment = load(
        'tls_ca_file = "certs/ca.pem"\ntls_cert_file = "/abs/client.pem"\n'
        'tls_key_file = "client.key"\ntls_verify_hostname = false\n'
        'aws_sigv4 = { region = "eu-west-1", service = "aoss" }\n'
    )
    assert deployment.sinks["primary"].security == SinkSecurity(
        tls_ca_file="/etc/flusso/certs/ca.pem",
        tls_cert_file="/abs/client.pem",
        tls_key_file="/etc/flusso/client.key",
        tls_verify_hostname=False,
        aws_sigv4=AwsSigV4(region="eu-west-1", service="aoss"),
    )


def test_a_plain_sink_has_default_security():
    assert load("").sinks["primary"].security == SinkSecurity()


@pytest.mark.parametrize("key", ["api_key", "bearer_token"])
def test_api_keys_and_tokens_are_refused_as_literals(key):
    (message,) = problems(f'{key} = "sekrit"\n')
    assert message.startswith(f"/etc/flusso/flusso.toml: [sinks.primary] {key}: this secret may not be written")
    assert "sekrit" not in message
    assert '{ file = "/path" }' in message


@pytest.mark.parametrize("key", ["api_key", "bearer_token"])
def test_api_keys_and_tokens_accept_env_and_file_references(key):
    env = load(f'{key} = {{ env = "OS_SECRET" }}\n').sinks["primary"].security
    assert getattr(env, key) == Secret(env="OS_SECRET")
    file = load(f'{key} = {{ file = "secret.txt" }}\n').sinks["primary"].security
    assert getattr(file, key) == Secret(file="/etc/flusso/secret.txt")


def test_two_authentication_schemes_are_one_problem():
    (message,) = problems('username = "u"\napi_key = { env = "K" }\n')
    assert message.endswith("more than one authentication scheme: username/password, api_key")


def test_unknown_aws_keys_and_services_are_reported_with_the_allowed_ones():
    (unknown,) = problems('aws_sigv4 = { region = "eu-west-1", profile = "x" }\n')
    assert "aws_sigv4: unknown key `profile`, expected one of `region`, `service`" in unknown
    (service,) = problems('aws_sigv4 = { region = "eu-west-1", service = "s3" }\n')
    assert "aws_sigv4.service: expected one of 'es' or 'aoss'" in service


def test_a_key_without_its_certificate_is_a_problem():
    (message,) = problems('tls_key_file = "k.pem"\n')
    assert "tls_key_file is set without tls_cert_file" in message


def test_the_lock_keeps_security_settings_and_only_references_to_secrets():
    deployment = load(
        'tls_ca_file = "/ca.pem"\napi_key = { file = "/run/key" }\n'
        'tls_verify_hostname = false\n'
    )
    text = encode_lock(deployment, flusso_version="0")
    body = json.loads(text)["config"]["sinks"]["primary"]["opensearch"]
    assert body["api_key"] == {"file": "/run/key"}
    assert body["tls_ca_file"] == "/ca.pem" and body["tls_verify_hostname"] is False
    assert decode_lock(text, path="flusso.lock").sinks == deployment.sinks


def test_a_plain_sink_lock_has_no_security_keys():
    body = json.loads(encode_lock(load(""), flusso_version="0"))["config"]["sinks"]["primary"]
    assert not {"tls_ca_file", "tls_verify_hostname", "api_key", "bearer_token", "aws_sigv4"} & set(
        body["opensearch"]
    )


def test_a_lock_holding_a_literal_api_key_is_refused():
    text = encode_lock(load('api_key = { env = "K" }\n'), flusso_version="0")
    tampered = text.replace('"env": "K"', '"value": "leaked"')
    with pytest.raises(ConfigError) as caught:
        decode_lock(tampered, path="flusso.lock")
    assert "api_key" in caught.value.message and "leaked" not in caught.value.message


def test_references_resolve_from_the_environment_and_files_trimmed():
    sink = load('bearer_token = { file = "/run/token" }\n').sinks["primary"]
    files = {"/run/token": "tok-1\n"}
    resolved = resolve_opensearch("primary", sink, {}, files.__getitem__)
    assert resolved.bearer_token == "tok-1"
    assert "tok-1" not in repr(resolved)
    sink = load('api_key = { env = "K" }\n').sinks["primary"]
    assert resolve_opensearch("primary", sink, {"K": " key "}).api_key == "key"


def test_unset_empty_or_unreadable_references_name_the_key():
    sink = load('api_key = { env = "K" }\n').sinks["primary"]
    with pytest.raises(ConfigError, match=r"environment variable 'K' is not set \(referenced by \[sinks.primary\] api_key\)"):
        resolve_opensearch("primary", sink, {})
    with pytest.raises(ConfigError, match=r"\[sinks.primary\] api_key: environment variable 'K' is empty"):
        resolve_opensearch("primary", sink, {"K": "  "})
    sink = load('bearer_token = { file = "/missing" }\n').sinks["primary"]

    def missing(path: str) -> str:
        raise FileNotFoundError(2, "No such file or directory", path)

    with pytest.raises(ConfigError, match=r"\[sinks.primary\] bearer_token: cannot read /missing: No such file"):
        resolve_opensearch("primary", sink, {}, missing)


def test_a_reserved_username_variable_next_to_an_api_key_is_refused():
    sink = load('api_key = { env = "K" }\n').sinks["primary"]
    with pytest.raises(ConfigError, match="PRIMARY_OPENSEARCH_USERNAME is set"):
        resolve_opensearch("primary", sink, {"K": "k", "PRIMARY_OPENSEARCH_USERNAME": "u"})


@pytest.mark.parametrize(
    ("method", "url", "params", "body", "planned"),
    [
        ("POST", "/idx_1/_refresh", None, None, None),
        ("POST", "/_bulk", {"refresh": "true", "pipeline": "p"}, "x\n", ({"pipeline": "p"}, "x\n")),
        ("POST", "/_bulk", {"refresh": "true"}, "x\n", (None, "x\n")),
        (
            "PUT", "/idx_1",
            None,
            {"settings": {"index": {"number_of_shards": 1, "number_of_replicas": 1,
                                    "refresh_interval": "-1", "analysis": {"a": 1}}},
             "mappings": {"dynamic": "strict"}},
            (None, {"settings": {"index": {"analysis": {"a": 1}}}, "mappings": {"dynamic": "strict"}}),
        ),
        ("PUT", "/idx_1", None, {"settings": {"index": {"number_of_shards": 1}}, "mappings": {}},
         (None, {"mappings": {}})),
        ("PUT", "/idx_1/_settings", None, {"index": {"refresh_interval": "10s"}}, None),
        ("PUT", "/flusso_meta/_doc/a", None, {"refresh_interval": 1}, (None, {"refresh_interval": 1})),
        ("GET", "/_cat/indices/x_*", {"h": "index"}, None, ({"h": "index"}, None)),
    ],
)
def test_the_serverless_plan_drops_what_serverless_manages(method, url, params, body, planned):
    assert plan_serverless_request(method, url, params, body) == planned
