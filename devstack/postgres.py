"""A private, throwaway PostgreSQL cluster for tests, benchmarks and the demo.

Creates a temporary data directory, picks a free loopback port, runs with
`wal_level=logical`, and removes everything on `stop()` (also at interpreter
exit and on SIGTERM). `initdb` refuses to run as root, so under root the
server runs as the `postgres` OS user.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

_SETTINGS = {
    "wal_level": "logical",
    "max_replication_slots": "64",
    "max_wal_senders": "64",
    "max_connections": "300",
    "fsync": "off",
    "full_page_writes": "off",
    "synchronous_commit": "off",
    "wal_sender_timeout": "60s",
    "log_min_messages": "warning",
    "TimeZone": "UTC",
}


class PostgresNotInstalledError(RuntimeError):
    """No PostgreSQL server binaries were found."""


def find_pg_bin() -> Path:
    """The directory holding `initdb` and `pg_ctl` (PATH first, then Debian's layout)."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    raise PostgresNotInstalledError(
        "PostgreSQL server binaries (initdb, pg_ctl) are not installed; "
        "on Debian/Ubuntu run: apt-get install -y postgresql"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ThrowawayPostgres:
    """One temporary cluster. `url` is a superuser connection to database `postgres`."""

    def __init__(self, *, port: int | None = None, settings: dict[str, str] | None = None) -> None:
        self.port = port or free_port()
        self.settings = {**_SETTINGS, **(settings or {})}
        self._bin = find_pg_bin()
        self._root = Path(tempfile.mkdtemp(prefix="flusso-pg-"))
        self.data_dir = self._root / "data"
        self._started = False
        self._as_user: str | None = "postgres" if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(self._bin / args[0]), *args[1:]]
        if self._as_user:
            cmd = ["runuser", "-u", self._as_user, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=False)

    def start(self) -> ThrowawayPostgres:
        if self._as_user:
            entry = pwd.getpwnam(self._as_user)
            os.chown(self._root, entry.pw_uid, entry.pw_gid)
        init = self._run(
            "initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )
        if init.returncode != 0:
            self._cleanup()
            raise RuntimeError(f"initdb failed: {init.stderr or init.stdout}")
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            for key, value in self.settings.items():
                conf.write(f"{key} = '{value}'\n")
            conf.write("listen_addresses = '127.0.0.1'\n")
            conf.write(f"port = {self.port}\n")
            conf.write(f"unix_socket_directories = '{self.data_dir}'\n")
        with open(self.data_dir / "pg_hba.conf", "a") as hba:
            hba.write("host replication all 127.0.0.1/32 trust\n")
        started = self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.data_dir / "server.log"),
            "-w", "-t", "60", "start",
        )
        if started.returncode != 0:
            log = (self.data_dir / "server.log")
            detail = log.read_text() if log.exists() else started.stderr
            self._cleanup()
            raise RuntimeError(f"pg_ctl start failed: {detail}")
        self._started = True
        atexit.register(self.stop)
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(
                ("127.0.0.1", self.port), timeout=1
            ):
                return
            time.sleep(0.05)
        raise RuntimeError(f"postgres on port {self.port} did not accept connections")

    def stop(self) -> None:
        if self._started:
            self._started = False
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")
        self._cleanup()

    def _cleanup(self) -> None:
        shutil.rmtree(self._root, ignore_errors=True)

    def __enter__(self) -> ThrowawayPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def throwaway_postgres(**kwargs: object) -> Iterator[ThrowawayPostgres]:
    server = ThrowawayPostgres(**kwargs)  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.stop()
