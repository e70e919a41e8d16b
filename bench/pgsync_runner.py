"""PGSync for the benchmark: its own virtualenv, a private Redis, bootstrap and daemon.

PGSync is installed from PyPI into `bench/.pgsync-venv` (never into flusso's
environment) and Redis comes from the distribution (`apt-get install
redis-server`) when it is missing. Both run on loopback only. When either cannot
be set up, `prepare()` returns the reason and the harness carries on without
the PGSync columns.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from devstack.postgres import free_port

BENCH = Path(__file__).resolve().parent
VENV = BENCH / ".pgsync-venv"
PGSYNC_SPEC = "pgsync"


@dataclass(frozen=True)
class Setup:
    """What `prepare()` found: the venv's bin directory and redis-server, or why not."""

    bin_dir: Path | None
    redis_server: str | None
    reason: str | None
    version: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


def _run(cmd: list[str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def _tail(result: subprocess.CompletedProcess[str]) -> str:
    text = (result.stderr or result.stdout or "").strip().splitlines()
    return " | ".join(line for line in text[-3:] if line)


def ensure_pgsync(say=print) -> tuple[Path | None, str | None, str | None]:
    """`(bin_dir, version, reason)`; installs PGSync into its venv on first use."""
    bin_dir = VENV / "bin"
    if not (bin_dir / "pgsync").exists():
        say(f"installing PGSync from PyPI into {VENV} (first run only) …")
        if not (bin_dir / "python").exists():
            made = _run([sys.executable, "-m", "venv", str(VENV)])
            if made.returncode != 0:
                return None, None, f"could not create {VENV}: {_tail(made)}"
        pip = _run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", PGSYNC_SPEC])
        if pip.returncode != 0 or not (bin_dir / "pgsync").exists():
            return None, None, f"pip install {PGSYNC_SPEC} failed: {_tail(pip)}"
    shown = _run([str(bin_dir / "python"), "-m", "pip", "show", "pgsync"], timeout=60)
    version = next((line.split(":", 1)[1].strip() for line in shown.stdout.splitlines()
                    if line.startswith("Version:")), None)
    return bin_dir, version, None


def ensure_redis(say=print) -> tuple[str | None, str | None]:
    """`(redis_server_path, reason)`; installs the distribution's redis-server if missing."""
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if found:
        return found, None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None, "redis-server is not installed and apt-get is not usable here (need root)"
    say("installing redis-server from the distribution's packages …")
    update = _run(["apt-get", "update", "-qq"])
    if update.returncode != 0:
        return None, f"apt-get update failed: {_tail(update)}"
    install = _run(["apt-get", "install", "-y", "-qq", "redis-server"])
    if install.returncode != 0:
        return None, f"apt-get install redis-server failed: {_tail(install)}"
    found = shutil.which("redis-server") or "/usr/bin/redis-server"
    return (found, None) if Path(found).exists() else (None, "redis-server still not found")


def prepare(say=print) -> Setup:
    bin_dir, version, reason = ensure_pgsync(say)
    if reason:
        return Setup(None, None, reason)
    redis, reason = ensure_redis(say)
    if reason:
        return Setup(bin_dir, None, reason, version)
    return Setup(bin_dir, redis, None, version)


class Redis:
    """A private redis-server on a free loopback port, no persistence."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(workdir), "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def users_schema(database: str, index: str) -> list[dict[str, object]]:
    """The PGSync twin of flusso's users index (PGSync has no aggregates: no order count)."""
    return [{
        "database": database,
        "index": index,
        "setting": {"number_of_replicas": 0},
        "nodes": {
            "table": "users",
            "columns": ["id", "email", "full_name", "tier", "login_count", "created_at"],
            "children": [{
                "table": "orders",
                "columns": ["id", "status", "total", "placed_at"],
                "relationship": {
                    "variant": "object", "type": "one_to_many",
                    "foreign_key": {"child": ["user_id"], "parent": ["id"]},
                },
                "children": [{
                    "table": "order_items",
                    "columns": ["id", "sku", "quantity", "unit_price"],
                    "relationship": {
                        "variant": "object", "type": "one_to_many",
                        "foreign_key": {"child": ["order_id"], "parent": ["id"]},
                    },
                }],
            }],
        },
    }]


class PgSyncRun:
    """One PGSync deployment (schema file, checkpoint dir) against one database and sink."""

    def __init__(self, setup: Setup, *, pg_port: int, database: str, index: str,
                 sink_url: str, redis_port: int, workdir: Path) -> None:
        assert setup.bin_dir is not None
        self.bin_dir = setup.bin_dir
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.schema = workdir / "schema.json"
        self.schema.write_text(json.dumps(users_schema(database, index), indent=2))
        self.log = workdir / "pgsync.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PG", "ELASTIC"))},
            "SCHEMA": str(self.schema),
            "PG_HOST": "127.0.0.1",
            "PG_PORT": str(pg_port),
            "PG_USER": "postgres",
            "PG_DATABASE": database,
            "OPENSEARCH": "true",
            "ELASTICSEARCH": "false",
            "ELASTICSEARCH_URL": sink_url,
            "REDIS_HOST": "127.0.0.1",
            "REDIS_PORT": str(redis_port),
            "CHECKPOINT_PATH": str(workdir),
            # osmem-server can take minutes per bulk request (see flusso's timeout_secs).
            "ELASTICSEARCH_TIMEOUT": "600",
            "GENERAL_LOGGING_LEVEL": "WARNING",
            "CONSOLE_LOGGING_HANDLER_MIN_LEVEL": "WARNING",
        }
        self.process: subprocess.Popen[bytes] | None = None

    def _tool(self, name: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin_dir / name), "--config", str(self.schema), *args],
            env=self.env, cwd=self.workdir, capture_output=True, text=True,
            timeout=timeout, check=False,
        )

    def bootstrap(self) -> float:
        """Triggers, functions and the replication slot; returns seconds. Raises on failure."""
        started = time.perf_counter()
        result = self._tool("bootstrap")
        if result.returncode != 0:
            raise RuntimeError(f"pgsync bootstrap failed: {_tail(result)}")
        return time.perf_counter() - started

    def start(self) -> subprocess.Popen[bytes]:
        handle = open(self.log, "ab")  # noqa: SIM115 - lives as long as the daemon
        self.process = subprocess.Popen(
            [str(self.bin_dir / "pgsync"), "--config", str(self.schema), "--daemon"],
            env=self.env, cwd=self.workdir, stdout=handle, stderr=subprocess.STDOUT,
        )
        handle.close()
        return self.process

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def teardown(self) -> None:
        """Drop PGSync's triggers, functions and slot so the next leg starts clean."""
        self._tool("bootstrap", "--teardown", timeout=120)

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])
