"""Packaging (issue "Operating flusso", item 7): `pip install .` and `pipx install .` give a
working `flusso`.

The fast case builds the wheel and checks what it carries. The slow cases install it into
a fresh virtualenv without the dev extras (and with pipx) and run the command; they
download the dependencies from the package index, so they take a minute or more.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import flusso

ROOT = Path(__file__).resolve().parents[2]
VERSION = flusso.__version__  # pyproject.toml reads it from the package (tool.setuptools.dynamic)


def copy_source(target: Path) -> Path:
    """The files a wheel is built from, copied so the build never writes into the work tree."""
    target.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, target / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    # symlinks=True: the journal migrations are a link from the package to alembic/.
    shutil.copytree(ROOT / "src", target / "src", symlinks=True, ignore=ignore)
    if (ROOT / "alembic").is_dir():
        shutil.copytree(ROOT / "alembic", target / "alembic", ignore=ignore)
    return target


def run(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, env=env, timeout=timeout
    )
    assert result.returncode == 0, f"{args}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_source(tmp_path_factory.mktemp("packaging") / "flusso")


@pytest.fixture(scope="module")
def wheel(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "pip", "wheel", source, "--no-deps", "--quiet", "--wheel-dir", out)
    [built] = out.glob("flusso-*.whl")
    return built


def test_the_wheel_carries_the_json_schemas_the_migrations_and_the_console_script(
    wheel: Path,
) -> None:
    assert wheel.name.startswith(f"flusso-{VERSION}-")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    assert "flusso/domain/config/config_jsonschema.json" in names
    assert "flusso = flusso.entrypoints.cli.main:main" in scripts
    migrations = sorted((ROOT / "alembic").glob("**/*.py"))
    assert migrations, "the journal migrations are expected in alembic/"
    for path in migrations:
        packaged = "flusso/adapters/journal/migrations/" + path.relative_to(ROOT / "alembic").as_posix()
        assert packaged in names
    assert not any(name.startswith(("tests/", "flusso/tests/")) for name in names)
    # Demo and test machinery (throwaway Postgres, osmem-server) is not part of the product.
    assert not any(name.startswith(("devstack/", "flusso/embedded/", "bench/")) for name in names)


def _clean_env(**extra: str) -> dict[str, str]:
    # Nothing from the developer's virtualenv may leak into the fresh one.
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    env.update(extra)
    return env


@pytest.mark.slow
def test_pip_install_of_the_wheel_gives_a_working_flusso(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheel, env=_clean_env())
    flusso = venv / "bin" / "flusso"
    assert run(flusso, "--version", env=_clean_env()).strip() == f"flusso {VERSION}"
    schema = json.loads(run(flusso, "schema", "config", env=_clean_env()))
    assert "json-schema.org" in schema["$schema"]
    # No dev extra came along.
    installed = run(venv / "bin" / "python", "-m", "pip", "list", "--format=json", env=_clean_env())
    assert "pytest" not in {p["name"].lower() for p in json.loads(installed)}


@pytest.mark.slow
def test_pipx_install_of_the_checkout_gives_a_working_flusso(source: Path, tmp_path: Path) -> None:
    tools = tmp_path / "tools"
    run(sys.executable, "-m", "venv", tools)
    run(tools / "bin" / "python", "-m", "pip", "install", "--quiet", "pipx", env=_clean_env())
    env = _clean_env(PIPX_HOME=str(tmp_path / "pipx"), PIPX_BIN_DIR=str(tmp_path / "bin"),
                     PIPX_MAN_DIR=str(tmp_path / "man"))
    run(tools / "bin" / "pipx", "install", source, env=env)
    assert run(tmp_path / "bin" / "flusso", "--version", env=env).strip() == f"flusso {VERSION}"
