"""TLS and authentication of flusso's own HTTP surfaces, on real sockets: HTTPS with a
certificate from a CA made in the test, Basic auth on the public surface with the probes
left open, failed logins counted, and the private surface refusing a non-loopback address
with default or empty credentials.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trustme

from flusso.domain.config.model import Deployment, ServerConfig, SourceConfig
from flusso.domain.errors import ConfigError
from flusso.entrypoints.container import Container
from flusso.entrypoints.http.security import ExposedControlSurfaceError, check_private_exposure
from flusso.entrypoints.settings import RunSettings


def wiring(private_address: str = "127.0.0.1:0", **settings: object) -> Container:
    deployment = Deployment(
        source=SourceConfig(),
        server=ServerConfig(public_address="127.0.0.1:0", private_address=private_address),
    )
    return Container(deployment=deployment, settings=RunSettings(**settings), env={})  # type: ignore[arg-type]


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[str, str, str]:
    """(ca.pem, server.pem, server.key) for 127.0.0.1."""
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    paths = tuple(str(tmp_path / name) for name in ("ca.pem", "server.pem", "server.key"))
    ca.cert_pem.write_to_path(paths[0])
    for blob in issued.cert_chain_pems:
        blob.write_to_path(paths[1], append=True)
    issued.private_key_pem.write_to_path(paths[2])
    return paths  # type: ignore[return-value]


async def serving(flusso: Container) -> AsyncIterator[tuple[str, str]]:
    """Both surfaces served as `flusso run` serves them; closed afterwards."""
    public, private = flusso.listeners()
    await flusso.http()
    try:
        yield public.address, private.address
    finally:
        await flusso.shutdown_resources()


def failures(flusso: Container, surface: str) -> float:
    body, _ = flusso.metrics().render()
    line = f'flusso_http_auth_failures_total{{surface="{surface}"}} '
    (value,) = [row[len(line):] for row in body.decode().splitlines() if row.startswith(line)]
    return float(value)


async def test_both_surfaces_serve_https_with_the_configured_certificate(certificate):
    ca, cert, key = certificate
    flusso = wiring(tls_cert_file=cert, tls_key_file=key, admin_password="s3cret")
    async for public, private in serving(flusso):
        trusted = ssl.create_default_context(cafile=ca)
        async with httpx.AsyncClient(verify=trusted, timeout=5) as client:
            assert (await client.get(f"https://{public}/healthz")).status_code == 200
            listed = await client.get(f"https://{private}/indexes", auth=("admin", "s3cret"))
            assert listed.status_code == 200
        async with httpx.AsyncClient(timeout=5) as plain:
            with pytest.raises(httpx.HTTPError):
                await plain.get(f"http://{public}/healthz")
        async with httpx.AsyncClient(timeout=5) as untrusting:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusting.get(f"https://{public}/healthz")


def test_an_unloadable_server_certificate_is_a_config_error_before_binding(tmp_path, certificate):
    _, cert, _ = certificate
    missing = str(tmp_path / "missing.key")
    with pytest.raises(ConfigError) as caught:
        wiring(tls_cert_file=cert, tls_key_file=missing, admin_password="s3cret").listeners()
    assert caught.value.message.startswith(f"--tls-cert-file {cert} / --tls-key-file {missing}")
    assert "FLUSSO_TLS_CERT_FILE" in (caught.value.hint or "")
    with pytest.raises(ConfigError, match="--tls-key-file is set without --tls-cert-file"):
        wiring(tls_key_file=missing).listeners()


async def test_a_public_password_protects_status_and_metrics_but_not_the_probes():
    flusso = wiring(public_user="prometheus", public_password="scrape-me", admin_password="s3cret")
    async for public, _ in serving(flusso):
        async with httpx.AsyncClient(timeout=5) as client:
            for path in ("/healthz", "/readyz"):
                assert (await client.get(f"http://{public}{path}")).status_code in (200, 503)
            for path in ("/status", "/metrics", "/nope"):
                refused = await client.get(f"http://{public}{path}")
                assert (refused.status_code, refused.text) == (401, "unauthorized\n")
            wrong = await client.get(f"http://{public}/metrics", auth=("prometheus", "nope"))
            assert wrong.status_code == 401
            scraped = await client.get(f"http://{public}/metrics", auth=("prometheus", "scrape-me"))
            assert scraped.status_code == 200
            assert 'flusso_http_auth_failures_total{surface="public"} 4.0' in scraped.text
    assert failures(flusso, "public") == 4
    assert failures(flusso, "private") == 0


async def test_failed_logins_on_the_private_surface_are_counted():
    flusso = wiring(admin_password="s3cret")
    async for public, private in serving(flusso):
        async with httpx.AsyncClient(timeout=5) as client:
            assert (await client.get(f"http://{private}/indexes")).status_code == 401
            assert (await client.get(f"http://{private}/indexes", auth=("admin", "flusso"))).status_code == 401
            assert (await client.get(f"http://{private}/indexes", auth=("admin", "s3cret"))).status_code == 200
            # Without a public password the public surface stays open and counts nothing.
            assert (await client.get(f"http://{public}/status")).status_code == 200
    assert failures(flusso, "private") == 2
    assert failures(flusso, "public") == 0


@pytest.mark.parametrize(
    ("user", "password", "what"),
    [
        ("admin", "flusso", 'the DEFAULT admin password ("flusso")'),
        ("admin", "", "an empty password"),
        ("", "s3cret", "an empty user name"),
    ],
)
def test_the_private_surface_refuses_a_non_loopback_address_with_guessable_credentials(
    user, password, what
):
    flusso = wiring("0.0.0.0:0", admin_user=user, admin_password=password)
    with pytest.raises(ExposedControlSurfaceError) as caught:
        flusso.listeners()
    assert caught.value.message.startswith(
        f"refusing to serve the private control surface on 0.0.0.0:0 with {what}"
    )
    assert "FLUSSO_ADMIN_PASSWORD" in (caught.value.hint or "")


@pytest.mark.parametrize("address", ["127.0.0.1:0", "127.0.0.2:9465", "[::1]:9465"])
def test_loopback_addresses_keep_the_default_password_with_a_warning(address):
    check_private_exposure(address, "admin", "flusso")


def test_a_strong_password_may_listen_beyond_loopback():
    flusso = wiring("0.0.0.0:0", admin_password="a-long-secret")
    listeners = flusso.listeners()
    assert listeners is not None
    flusso.shutdown_resources()
