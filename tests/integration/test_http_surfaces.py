"""The two HTTP surfaces on real sockets: binding, the public and private apps, and `flusso run`."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from tests.conftest import unique_name

from flusso.app.ports import BatchStats
from flusso.app.services.reindex_requests import ReindexRequests
from flusso.app.status import CompositeObserver, LiveStatus
from flusso.domain.config.model import Deployment, ServerConfig, SourceConfig
from flusso.entrypoints.container import Container
from flusso.entrypoints.http.private import create_private_app
from flusso.entrypoints.http.public import create_public_app
from flusso.entrypoints.http.serve import (
    HttpBindError,
    HttpSurfaces,
    bind_surface,
    bind_surfaces,
    choose_address,
    surface_addresses,
)
from flusso.entrypoints.metrics import PrometheusObserver
from flusso.entrypoints.settings import RunSettings

ADMIN = ("admin", "s3cret")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- address precedence (pure) ------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "env", "configured", "chosen"),
    [
        ("127.0.0.1:39464", "127.0.0.1:29464", "127.0.0.1:19464", "127.0.0.1:39464"),
        (None, "127.0.0.1:29464", "127.0.0.1:19464", "127.0.0.1:29464"),
        (None, None, "127.0.0.1:19464", "127.0.0.1:19464"),
        (None, None, None, "127.0.0.1:9464"),
    ],
    ids=["flag", "env", "config", "default"],
)
def test_the_address_is_flag_then_env_then_config_then_default(flag, env, configured, chosen):
    assert choose_address(flag, env, configured, "127.0.0.1:9464") == chosen


def test_run_settings_hold_flag_or_env_and_the_config_fills_the_rest():
    server = ServerConfig(public_address="127.0.0.1:19464", private_address="[::1]:19465")
    assert surface_addresses(RunSettings(), server) == ("127.0.0.1:19464", "[::1]:19465")
    assert surface_addresses(RunSettings(public_address="0.0.0.0:39464"), server) == (
        "0.0.0.0:39464", "[::1]:19465"
    )
    assert surface_addresses(RunSettings(), ServerConfig()) == ("127.0.0.1:9464", "127.0.0.1:9465")


# -- binding -------------------------------------------------------------------------


def test_binding_a_taken_port_fails_naming_the_surface_and_the_os_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(HttpBindError) as caught:
            bind_surfaces(address, "127.0.0.1:0")
    assert str(caught.value).startswith(f"binding public HTTP surface to {address}: ")
    assert "in use" in str(caught.value)


def test_when_the_private_port_is_taken_the_public_one_is_released():
    public_port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        private = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(HttpBindError, match=f"^binding private HTTP surface to {private}: "):
            bind_surfaces(f"127.0.0.1:{public_port}", private)
    again = bind_surface("public", f"127.0.0.1:{public_port}")
    again.close()


# -- serving -------------------------------------------------------------------------


async def test_both_surfaces_serve_the_live_status_until_stopped():
    status = LiveStatus(["users"])
    metrics = PrometheusObserver(status.in_flight, ["users"])
    control = ReindexRequests(["users"])
    public, private = bind_surfaces("127.0.0.1:0", "127.0.0.1:0")
    surfaces = HttpSurfaces([
        (public, create_public_app(status, metrics)),
        (private, create_private_app(status, control, user=ADMIN[0], password=ADMIN[1])),
    ])
    await surfaces.start()
    try:
        observer = CompositeObserver(status, metrics)
        observer.on_indexes_ensured(1)
        observer.on_live_started()
        observer.on_change_captured()
        observer.on_change_captured()
        observer.on_batch_committed(BatchStats(1, 1, {"users": 1}, flush_seconds=0.01))
        async with httpx.AsyncClient(timeout=5) as client:
            ready = await client.get(f"http://{public.address}/readyz")
            document = (await client.get(f"http://{public.address}/status")).json()
            scrape = (await client.get(f"http://{public.address}/metrics")).text
            stranger = await client.get(f"http://{private.address}/nope")
            operator = await client.get(f"http://{private.address}/indexes", auth=ADMIN)
            queued = await client.post(
                f"http://{private.address}/reindex", params={"index": "users"}, auth=ADMIN
            )
    finally:
        await surfaces.stop()
    assert ready.status_code == 200
    assert (document["phase"], document["changes_in_flight"]) == ("live", 1)
    assert "flusso_changes_in_flight 1.0" in scrape.splitlines()
    assert (stranger.status_code, stranger.text) == (401, "unauthorized\n")
    assert operator.json() == {"users": "seeded"}
    assert (queued.status_code, queued.text) == (202, "reindex of users queued\n")
    assert control.take_pending() == ["users"]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://{public.address}/healthz", timeout=2)


# -- the daemon's wiring ---------------------------------------------------------------


def container(password: str) -> Container:
    deployment = Deployment(
        source=SourceConfig(),
        server=ServerConfig(public_address="127.0.0.1:0", private_address="127.0.0.1:0"),
    )
    return Container(deployment=deployment, settings=RunSettings(admin_password=password), env={})


@pytest.mark.parametrize(("password", "warned"), [("flusso", True), ("s3cret", False)])
def test_the_default_admin_password_is_warned_about_at_bind_time(caplog, password, warned):
    caplog.set_level(logging.WARNING, logger="flusso.run")
    wiring = container(password)
    listeners = wiring.listeners()
    assert listeners is not None
    for listener in listeners:
        assert listener.address.startswith("127.0.0.1:")
    wiring.shutdown_resources()
    assert all(listener.sock.fileno() == -1 for listener in listeners)
    assert any("DEFAULT admin password" in r.getMessage() for r in caplog.records) is warned


# -- `flusso run` as a process --------------------------------------------------------------

SCHEMA = "version: 1\ntable: users\nprimary_key: id\nfields:\n  - integer: id\n    required: true\n  - keyword: email\n    required: false\n"
CONFIG = """\
[source]
type = "postgres"

[sinks.out]
type = "stdout"

[server]
public_address = "127.0.0.1:{config_port}"

[[index]]
name = "users"
schema = "users.schema.yml"
enabled = true
"""


def write_project(path: Path, config_port: int) -> Path:
    (path / "users.schema.yml").write_text(SCHEMA)
    (path / "flusso.toml").write_text(CONFIG.format(config_port=config_port))
    return path


def test_run_fails_fast_when_the_public_port_is_taken(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "flusso", "run", "-c", "flusso.toml"],
            cwd=write_project(tmp_path, port), capture_output=True, text=True, timeout=60,
            env={**os.environ, "DATABASE_URL": "postgresql://x@127.0.0.1:1/x",
                 "FLUSSO_PRIVATE_ADDRESS": "127.0.0.1:0"},
        )
    assert result.returncode == 1
    assert f"Error: binding public HTTP surface to 127.0.0.1:{port}: " in result.stderr
    assert "127.0.0.1:1" not in result.stderr  # no connection to Postgres was tried
    assert "Traceback" not in result.stderr


def wait_until(probe, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if last:
                return last
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout}s; last: {last!r}")


def test_run_serves_status_metrics_and_the_private_surface_while_live(tmp_path, pg_url):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE users (id int PRIMARY KEY, email text)")
        conn.execute("INSERT INTO users VALUES (1, 'a@x.io'), (2, 'b@x.io'), (3, 'c@x.io')")
    flag_port, env_port, config_port, private_port = (free_port() for _ in range(4))
    slot = unique_name("slot")
    proc = subprocess.Popen(
        [sys.executable, "-m", "flusso", "run", "-c", "flusso.toml", "--lag-poll-secs", "1",
         "--public-address", f"127.0.0.1:{flag_port}", "--admin-password", "other"],
        cwd=write_project(tmp_path, config_port),
        env={**os.environ, "DATABASE_URL": pg_url, "FLUSSO_SLOT": slot,
             "FLUSSO_PUBLICATION": slot, "FLUSSO_LOG": "info",
             "FLUSSO_PUBLIC_ADDRESS": f"127.0.0.1:{env_port}",
             "FLUSSO_PRIVATE_ADDRESS": f"127.0.0.1:{private_port}",
             "FLUSSO_ADMIN_PASSWORD": "s3cret"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    public = f"http://127.0.0.1:{flag_port}"
    try:
        wait_until(lambda: httpx.get(f"{public}/status", timeout=2).json()["phase"] == "live")
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("UPDATE users SET email = 'a2@x.io' WHERE id = 1")
            conn.execute("UPDATE users SET email = 'b2@x.io' WHERE id = 2")
        document = wait_until(lambda: (
            d := httpx.get(f"{public}/status", timeout=2).json()
        )["changes_committed"] == 5 and d["slot_lag_bytes"] is not None and d)
        scrape = httpx.get(f"{public}/metrics", timeout=2).text.splitlines()
        ready = httpx.get(f"{public}/readyz", timeout=2).status_code
        private = f"http://127.0.0.1:{private_port}"
        as_env_password = httpx.get(f"{private}/indexes", auth=("admin", "s3cret"), timeout=2)
        as_flag_password = httpx.get(f"{private}/indexes", auth=("admin", "other"), timeout=2)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{env_port}/healthz", timeout=2)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        stderr = proc.stderr.read()
    assert code == 0, stderr
    assert ready == 200
    assert document["indexes"] == {"users": "seeded"}
    assert (document["changes_captured"], document["changes_in_flight"]) == (5, 0)
    assert (document["documents_built"], document["errors"], document["last_error"]) == (5, 0, None)
    assert document["batches"] >= 2
    assert isinstance(document["slot_lag_bytes"], int)
    assert "flusso_changes_captured_total 5.0" in scrape
    assert 'flusso_documents_built_total{index="users"} 5.0' in scrape
    assert "flusso_indexes 1.0" in scrape
    assert 'flusso_indexes_seeded_total{index="users"} 1.0' in scrape
    assert "flusso_changes_in_flight 0.0" in scrape
    assert not any(line.endswith("_created") or "_created{" in line for line in scrape)
    assert as_env_password.status_code == 401
    assert as_flag_password.json() == {"users": "seeded"}
    assert stderr.count("HTTP surface listening") == 2
    assert "DEFAULT admin password" not in stderr
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{public}/healthz", timeout=2)
