"""Peak RSS and CPU seconds of a process tree, read from /proc (no psutil).

`ProcessTreeWatch` samples a root pid and all its descendants in a background
thread. Peak RSS is the largest sum of the tree's current RSS seen in a sample,
or the root's own VmHWM when that is larger (VmHWM is exact for one process);
CPU seconds are the root's utime+stime plus its reaped children's
(cutime+cstime) plus the last values seen for descendants still alive.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcUsage:
    peak_rss_mb: float
    cpu_seconds: float


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found.extend(int(p) for p in handle.read().split())
    except OSError:
        pass
    return found


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo.extend(_children(current))
    return pids


def _status_kb(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_ticks(pid: int, *, with_reaped: bool) -> int:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    # fields[0] is the state (field 3); utime is field 14, stime 15, cutime 16, cstime 17.
    ticks = int(fields[11]) + int(fields[12])
    if with_reaped:
        ticks += int(fields[13]) + int(fields[14])
    return ticks


class ProcessTreeWatch:
    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid = pid
        self._interval = interval
        self._peak_kb = 0
        self._ticks: dict[int, int] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=f"procwatch-{pid}")

    def start(self) -> ProcessTreeWatch:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self._interval)

    def sample(self) -> None:
        pids = _tree(self.pid)
        rss = sum(_status_kb(pid, "VmRSS") for pid in pids)
        hwm = _status_kb(self.pid, "VmHWM")
        with self._lock:
            self._peak_kb = max(self._peak_kb, rss, hwm)
            for pid in pids:
                ticks = _cpu_ticks(pid, with_reaped=pid == self.pid)
                if ticks:
                    self._ticks[pid] = max(self._ticks.get(pid, 0), ticks)

    def stop(self) -> ProcUsage:
        """Take a last sample (call before the process exits) and stop sampling."""
        self.sample()
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        return self.usage()

    def usage(self) -> ProcUsage:
        with self._lock:
            return ProcUsage(
                peak_rss_mb=round(self._peak_kb / 1024, 1),
                cpu_seconds=round(sum(self._ticks.values()) / _TICKS, 2),
            )
