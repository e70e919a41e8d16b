"""`python -m flusso run` as a subprocess for one benchmark leg (own slot, prefix, journal)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from devstack.postgres import free_port

ROOT = Path(__file__).resolve().parents[1]


class FlussoProcess:
    def __init__(self, *, config: Path, database_url: str, sink_url: str, name: str,
                 workdir: Path, extra_args: list[str] | None = None,
                 command: list[str] | None = None) -> None:
        """`name` (lowercase, starts with a letter) names the slot, publication and prefix."""
        self.name = name
        self.database_url = database_url
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.public_port = free_port()
        self.prefix = f"{name}_"
        self.log = workdir / "flusso.log"
        self.argv = [
            *(command or [sys.executable]), "-m", "flusso", "run", "--config", str(config),
            "--public-address", f"127.0.0.1:{self.public_port}",
            "--private-address", f"127.0.0.1:{free_port()}",
            "--journal", str(workdir / "journal.sqlite3"), "--lock", str(workdir / "flusso.lock"),
            "--slot", name, "--publication", name, "--index-prefix", self.prefix,
            *(extra_args or []),
        ]
        self.env = {**os.environ, "DATABASE_URL": database_url, "BENCH_SINK_URL": sink_url,
                    "PYTHONPATH": str(ROOT)}
        self.process: subprocess.Popen[bytes] | None = None

    def alias(self, index: str) -> str:
        return f"{self.prefix}{index}"

    def start(self) -> subprocess.Popen[bytes]:
        handle = open(self.log, "ab")  # noqa: SIM115 - the child keeps the descriptor
        self.process = subprocess.Popen(
            self.argv, env=self.env, cwd=self.workdir, stdout=handle, stderr=subprocess.STDOUT
        )
        handle.close()
        return self.process

    def status(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.public_port}/status", timeout=2
            ) as reply:
                return json.loads(reply.read())
        except (OSError, ValueError):
            return None

    def wait_live(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            status = self.status()
            if status and status.get("phase") == "live":
                return status
            time.sleep(0.05)
        raise TimeoutError(f"flusso did not reach phase live in {timeout:.0f}s: {self.log_tail()}")

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(
                f"flusso exited with {self.process.returncode}: {self.log_tail()}"
            )

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.drop_slot()

    def drop_slot(self) -> None:
        """The slot would hold WAL back for the rest of the run; drop it once flusso is gone."""
        try:
            with psycopg.connect(self.database_url, autocommit=True) as conn:
                conn.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    "WHERE slot_name = %s AND NOT active", (self.name,),
                )
        except psycopg.Error:
            pass

    def backfill_began_at(self) -> float | None:
        """When flusso started reading its snapshot (the `seeding indexes` log line), epoch s."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return None
        for line in text.splitlines():
            if "seeding indexes" in line:
                stamp = line.split(maxsplit=1)[0].rstrip("Z")
                try:
                    return datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp()
                except ValueError:
                    return None
        return None

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])
