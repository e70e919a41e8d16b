"""Connection security of the OpenSearch sink against real local endpoints: TLS with a CA
made in the test, mutual TLS, host-name checks, basic / API-key / bearer credentials and
AWS SigV4 (es and aoss) checked server-side, and the OpenSearch Serverless dialect.

Every endpoint is a `SecureProxy` (tests/secure_proxy.py) in front of the shared
osmem-server: the HTTP client is flusso's own, nothing is mocked.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trustme

from flusso.adapters.opensearch.client import open_opensearch_client
from flusso.adapters.opensearch.security import ConnectionSecurity
from flusso.adapters.opensearch.sink import OpenSearchSink
from flusso.app.ports import SinkUnavailableError, SinkWriteError
from flusso.domain.config.config_file import parse_config
from flusso.domain.config.model import AwsSigV4
from flusso.domain.documents.change import DocumentId, Upsert
from flusso.domain.errors import ConfigError
from flusso.domain.naming import hash_alias
from flusso.entrypoints.container import Container
from flusso.entrypoints.settings import RunSettings
from opensearch_fixtures import ClusterProbe, sink_config, unique_prefix, users_mapping
from secure_proxy import AwsKey, SecureProxy, server_context

MAPPING = users_mapping("5ec0c0de")
AWS = AwsKey(access_key="AKIDFLUSSOTEST", secret_key="s3cr3t/key", region="eu-west-1",
             service="es", token="session-token-1")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
async def proxies(embedded_opensearch) -> AsyncIterator[Callable[..., Any]]:
    started: list[SecureProxy] = []

    async def start(server_ssl=None, **checks: Any) -> SecureProxy:
        proxy = await SecureProxy(embedded_opensearch.url, server_ssl, **checks).start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        await proxy.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Credentials through the standard chain's environment provider, and nothing else:
    no config files, no instance metadata, no container endpoint."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
                 "AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS.secret_key)
    monkeypatch.setenv("AWS_SESSION_TOKEN", AWS.token or "")


async def round_trip(url: str, security: ConnectionSecurity, upstream: str) -> dict[str, Any]:
    """The sink's whole cycle through `url`: create, write, flush, mark seeded; returns
    what readers see, read back from the upstream server directly."""
    prefix = unique_prefix()
    client = open_opensearch_client(url, security=security, timeout_secs=10)
    sink = OpenSearchSink(client, sink_name=security.sink, config=sink_config(url), prefix=prefix,
                          owns_client=True, url=url)
    try:
        await sink.ensure_index(MAPPING)
        await sink.write([Upsert(DocumentId("users", (1,)), {"email": "a@x.io"})])
        await sink.flush(caught_up=True)
        await sink.mark_seeded("users")
    finally:
        await sink.close()
    reader = open_opensearch_client(upstream)
    try:
        return await ClusterProbe(reader, prefix).documents(hash_alias(prefix, "users", MAPPING.hash))
    finally:
        await reader.close()


async def first_call_error(url: str, security: ConnectionSecurity) -> SinkWriteError:
    client = open_opensearch_client(url, security=security, timeout_secs=10)
    sink = OpenSearchSink(client, sink_name=security.sink, config=sink_config(url),
                          prefix=unique_prefix(), owns_client=True, url=url)
    try:
        with pytest.raises(SinkWriteError) as caught:
            await sink.ensure_index(MAPPING)
    finally:
        await sink.close()
    return caught.value


# -- TLS -------------------------------------------------------------------------------


async def test_tls_with_a_custom_ca_bundle_reaches_the_cluster(proxies, ca, ca_file, embedded_opensearch):
    proxy = await proxies(server_context(ca, "127.0.0.1"))
    security = ConnectionSecurity(sink="primary", tls_ca_file=ca_file)
    assert await round_trip(proxy.url, security, embedded_opensearch.url) == {"1": {"email": "a@x.io"}}


async def test_a_certificate_from_another_ca_is_refused_with_a_hint_naming_tls_ca_file(proxies, ca, tmp_path):
    proxy = await proxies(server_context(ca, "127.0.0.1"))
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    error = await first_call_error(proxy.url, ConnectionSecurity(sink="primary", tls_ca_file=str(other)))
    assert isinstance(error, SinkUnavailableError)
    assert "CERTIFICATE_VERIFY_FAILED" in error.message
    assert "tls_ca_file" in (error.hint or "") and "[sinks.primary]" in (error.hint or "")
    assert proxy.seen == []  # refused during the handshake: no request got through


async def test_a_certificate_for_another_host_is_refused_unless_hostname_checks_are_off(
    proxies, ca, ca_file, embedded_opensearch, caplog
):
    proxy = await proxies(server_context(ca, "search.flusso.invalid"))
    error = await first_call_error(proxy.url, ConnectionSecurity(sink="primary", tls_ca_file=ca_file))
    assert "tls_verify_hostname" in (error.hint or "")
    relaxed = ConnectionSecurity(sink="primary", tls_ca_file=ca_file, tls_verify_hostname=False)
    with caplog.at_level(logging.WARNING, logger="flusso.adapters.opensearch.security"):
        documents = await round_trip(proxy.url, relaxed, embedded_opensearch.url)
    assert documents == {"1": {"email": "a@x.io"}}
    assert any("host-name checks are OFF for sink primary" in r.getMessage() for r in caplog.records)


async def test_tls_verify_false_accepts_an_untrusted_certificate_and_warns_loudly(
    proxies, embedded_opensearch, caplog
):
    proxy = await proxies(server_context(trustme.CA(), "127.0.0.1"))
    with caplog.at_level(logging.WARNING, logger="flusso.adapters.opensearch.security"):
        documents = await round_trip(
            proxy.url, ConnectionSecurity(sink="primary", tls_verify=False), embedded_opensearch.url
        )
    assert documents == {"1": {"email": "a@x.io"}}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("TLS certificate checks are OFF for sink primary" in r.getMessage() for r in warnings)


async def test_mutual_tls_presents_the_client_certificate(proxies, ca, ca_file, tmp_path, embedded_opensearch):
    client_ca = trustme.CA()
    proxy = await proxies(server_context(ca, "127.0.0.1", client_ca=client_ca))
    issued = client_ca.issue_cert("flusso@example.test")
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    for blob in issued.cert_chain_pems:
        blob.write_to_path(str(cert), append=True)
    issued.private_key_pem.write_to_path(str(key))
    security = ConnectionSecurity(sink="primary", tls_ca_file=ca_file, tls_cert_file=str(cert),
                                  tls_key_file=str(key))
    assert await round_trip(proxy.url, security, embedded_opensearch.url) == {"1": {"email": "a@x.io"}}

    without = await first_call_error(proxy.url, ConnectionSecurity(sink="primary", tls_ca_file=ca_file))
    assert isinstance(without, SinkUnavailableError)
    assert "tls_cert_file" in (without.hint or "")


def test_unreadable_tls_files_fail_before_any_request_naming_the_key(tmp_path, ca_file):
    missing = str(tmp_path / "nope.pem")
    with pytest.raises(ConfigError) as caught:
        open_opensearch_client("https://127.0.0.1:1", security=ConnectionSecurity(sink="primary", tls_ca_file=missing))
    assert caught.value.message.startswith("[sinks.primary] tls_ca_file: cannot load CA bundle")
    not_pem = tmp_path / "garbage.pem"
    not_pem.write_text("not a certificate\n")
    with pytest.raises(ConfigError) as caught:
        open_opensearch_client(
            "https://127.0.0.1:1",
            security=ConnectionSecurity(sink="primary", tls_ca_file=ca_file, tls_cert_file=str(not_pem)),
        )
    assert "[sinks.primary] tls_cert_file: cannot load the client certificate" in caught.value.message


# -- credentials checked server-side ------------------------------------------------------


async def test_basic_auth_is_accepted_and_a_wrong_password_gets_a_credentials_hint(
    proxies, ca, ca_file, embedded_opensearch
):
    proxy = await proxies(server_context(ca, "127.0.0.1"), basic=("flusso", "pa:ss wörd"))
    good = ConnectionSecurity(sink="primary", tls_ca_file=ca_file, username="flusso", password="pa:ss wörd")
    assert await round_trip(proxy.url, good, embedded_opensearch.url) == {"1": {"email": "a@x.io"}}
    bad = ConnectionSecurity(sink="primary", tls_ca_file=ca_file, username="flusso", password="nope")
    error = await first_call_error(proxy.url, bad)
    assert "HTTP 401" in error.message and "refused the credentials" in (error.hint or "")


async def test_an_api_key_is_sent_as_the_apikey_authorization(proxies, ca, ca_file, embedded_opensearch):
    proxy = await proxies(server_context(ca, "127.0.0.1"), api_key="k-123==")
    security = ConnectionSecurity(sink="primary", tls_ca_file=ca_file, api_key="k-123==")
    assert await round_trip(proxy.url, security, embedded_opensearch.url) == {"1": {"email": "a@x.io"}}
    assert set(proxy.statuses()) <= {200, 201, 404}
    error = await first_call_error(proxy.url, ConnectionSecurity(sink="primary", tls_ca_file=ca_file, api_key="other"))
    assert "HTTP 401" in error.message


async def test_a_bearer_token_read_from_a_file_is_sent(proxies, ca, ca_file, tmp_path, embedded_opensearch):
    """Wired through flusso.toml and the container: `{ file = … }` is read at run time."""
    proxy = await proxies(server_context(ca, "127.0.0.1"), bearer="eyJ.token.sig")
    (tmp_path / "token").write_text("eyJ.token.sig\n")
    config = tmp_path / "flusso.toml"
    config.write_text(
        f'[source]\ntype = "postgres"\n\n[sinks.primary]\ntype = "opensearch"\n'
        f'url = "{proxy.url}"\ntls_ca_file = "ca.pem"\nbearer_token = {{ file = "token" }}\n'
    )
    Path(ca_file).rename(tmp_path / "ca.pem")
    deployment = parse_config(config.read_text(), path=str(config), read_schema=lambda p: "")
    prefix = unique_prefix()
    container = Container(deployment=deployment, settings=RunSettings(index_prefix=prefix), env={})
    try:
        (sink,) = await container.index_admins()
        await sink.ensure_index(MAPPING)
        await sink.write([Upsert(DocumentId("users", (2,)), {"email": "b@x.io"})])
        await sink.flush(caught_up=True)
    finally:
        await container.shutdown_resources()
    assert proxy.seen and all(status < 400 or status == 404 for status in proxy.statuses())
    reader = open_opensearch_client(embedded_opensearch.url)
    try:
        docs = await ClusterProbe(reader, prefix).documents(hash_alias(prefix, "users", MAPPING.hash))
    finally:
        await reader.close()
    assert docs == {"2": {"email": "b@x.io"}}


# -- AWS SigV4 ------------------------------------------------------------------------------


@pytest.mark.usefixtures("aws_env")
async def test_sigv4_for_an_opensearch_service_domain_is_verified_by_the_server(
    proxies, ca, ca_file, embedded_opensearch
):
    proxy = await proxies(server_context(ca, "127.0.0.1"), aws=AWS)
    security = ConnectionSecurity(sink="primary", tls_ca_file=ca_file,
                                  aws_sigv4=AwsSigV4(region="eu-west-1", service="es"))
    assert await round_trip(proxy.url, security, embedded_opensearch.url) == {"1": {"email": "a@x.io"}}
    assert proxy.seen and 403 not in proxy.statuses()


@pytest.mark.usefixtures("aws_env")
async def test_a_sigv4_signature_for_the_wrong_region_or_secret_is_refused(proxies, ca, ca_file, monkeypatch):
    proxy = await proxies(server_context(ca, "127.0.0.1"), aws=AWS)
    wrong_region = ConnectionSecurity(sink="primary", tls_ca_file=ca_file,
                                      aws_sigv4=AwsSigV4(region="us-east-1", service="es"))
    error = await first_call_error(proxy.url, wrong_region)
    assert "HTTP 403" in error.message and "signed for es in us-east-1" in error.message
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    right_region = ConnectionSecurity(sink="primary", tls_ca_file=ca_file,
                                      aws_sigv4=AwsSigV4(region="eu-west-1", service="es"))
    error = await first_call_error(proxy.url, right_region)
    assert "signature does not match" in error.message


@pytest.mark.usefixtures("aws_env")
async def test_sigv4_for_a_serverless_collection_signs_aoss_and_avoids_what_serverless_refuses(
    proxies, ca, ca_file, embedded_opensearch
):
    key = AwsKey(AWS.access_key, AWS.secret_key, "eu-west-1", "aoss", AWS.token)
    proxy = await proxies(server_context(ca, "127.0.0.1"), aws=key, serverless=True)
    security = ConnectionSecurity(sink="primary", tls_ca_file=ca_file,
                                  aws_sigv4=AwsSigV4(region="eu-west-1", service="aoss"))
    # Written, then made visible by reading through the upstream (Serverless refreshes itself).
    assert await round_trip(proxy.url, security, embedded_opensearch.url) == {"1": {"email": "a@x.io"}}
    sent = [(method, path) for method, path, _ in proxy.seen]
    assert not any(path.split("?")[0].endswith("/_refresh") for _, path in sent)
    assert not any("refresh=" in path for _, path in sent)
    assert all(status < 400 or status == 404 for status in proxy.statuses())
    assert any(path.startswith("/_bulk") for _, path in sent)


@pytest.mark.usefixtures("aws_env")
def test_no_aws_credentials_is_a_config_error_naming_the_sink(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    with pytest.raises(ConfigError) as caught:
        open_opensearch_client(
            "https://127.0.0.1:1",
            security=ConnectionSecurity(sink="primary", aws_sigv4=AwsSigV4(region="eu-west-1")),
        )
    assert caught.value.message == "[sinks.primary] aws_sigv4: no AWS credentials found for service es in eu-west-1"
    assert "AWS_ACCESS_KEY_ID" in (caught.value.hint or "")
