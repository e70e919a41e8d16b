"""The README's demo command: everything starts, the store is searchable, Ctrl-C stops it all."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import httpx
from devstack.postgres import free_port


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_demo_syncs_the_store_and_ctrl_c_leaves_nothing_running(tmp_path):
    public, private = free_port(), free_port()
    log = tmp_path / "demo.log"
    with open(log, "w") as err:
        demo = subprocess.Popen(
            [sys.executable, "-m", "devstack.demo", "--trickle", "0.3",
             "--public-port", str(public), "--private-port", str(private)],
            stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        status: dict = {}
        while time.monotonic() < deadline:
            assert demo.poll() is None, log.read_text()
            try:
                status = httpx.get(f"http://127.0.0.1:{public}/status", timeout=2).json()
                if status["phase"] == "live" and status["changes_committed"] > 0:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        assert status.get("phase") == "live", log.read_text()
        assert status["indexes"] == {"orders": "seeded", "products": "seeded", "users": "seeded"}
        assert status["errors"] == 0

        os_url = re.search(r"OpenSearch ready at (\S+)", log.read_text()).group(1)
        hits = httpx.get(f"{os_url}/products/_search", params={"q": "name:knife"}, timeout=10).json()
        assert hits["hits"]["hits"], hits
        users = httpx.get(f"{os_url}/users/_count", timeout=10).json()["count"]
        assert users > 0

        children = subprocess.run(
            ["pgrep", "-s", str(demo.pid)], capture_output=True, text=True
        ).stdout.split()
        assert len(children) > 2  # postgres, osmem-server, flusso
        # Ctrl-C in a terminal: SIGINT to the whole process group.
        os.killpg(demo.pid, signal.SIGINT)
        assert demo.wait(timeout=60) == 0
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
    text = log.read_text()
    assert "stopped; nothing is left running" in text
    assert "Traceback" not in text
    time.sleep(0.5)
    leftovers = [pid for pid in map(int, children) if pid != demo.pid and _alive(pid)]
    assert leftovers == [], text
