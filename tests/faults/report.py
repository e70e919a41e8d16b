"""Where fault results go: one JSON object per line, shared by every pytest-xdist worker."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def report_path() -> Path:
    return Path(os.environ.get("FLUSSO_FAULTS_REPORT", ROOT / ".faults" / "results.jsonl"))


def record(row: dict[str, Any]) -> None:
    path = report_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(json.dumps(row) + "\n")
