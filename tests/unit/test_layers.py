"""The hexagon's dependency rule, checked by import-linter contracts in pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is not installed in this environment"
    return subprocess.run(
        [exe, "--no-cache"], cwd=cwd, capture_output=True, text=True, check=False
    )


def test_the_layer_contracts_hold_for_the_source_tree():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 5 kept, 0 broken." in result.stdout


@pytest.mark.parametrize(
    ("module", "body", "broken"),
    [
        ("domain/violation.py", "import psycopg\n", "domain is pure"),
        ("domain/violation.py", "from flusso.adapters import fakes\n", "domain is pure"),
        ("app/violation.py", "import flusso.adapters.postgres\n", "app talks to ports"),
        (
            "adapters/stdout/violation.py",
            "from flusso.adapters.opensearch import codec\n",
            "sibling adapters are independent",
        ),
        (
            "adapters/fakes/violation.py",
            "import flusso.adapters.journal.sqlite\n",
            "sibling adapters are independent",
        ),
        (
            "entrypoints/violation.py",
            "from flusso.adapters.stdout.sink import StdoutSink\n",
            "only the container names adapters",
        ),
    ],
)
def test_a_deliberate_violation_breaks_the_contract(tmp_path, module, body, broken):
    copy = tmp_path / "tree"
    shutil.copytree(ROOT / "src", copy / "src")
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    (copy / "src" / "flusso" / module).write_text(textwrap.dedent(body))
    env_path = str(copy / "src")
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    result = subprocess.run(
        [exe, "--no-cache"],
        cwd=copy,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode != 0
    assert broken in result.stdout
    assert "BROKEN" in result.stdout


_IO_STDLIB = {"socket", "subprocess", "sqlite3", "asyncio", "urllib", "http", "shutil", "tempfile", "logging"}


def test_the_domain_imports_no_io_module_of_the_standard_library():
    import ast

    offenders = []
    for path in (ROOT / "src" / "flusso" / "domain").rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in _IO_STDLIB:
                    offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert offenders == []


def test_the_product_never_imports_the_development_stack():
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "src" / "flusso").rglob("*.py")
        if "devstack" in path.read_text()
    ]
    assert offenders == []
