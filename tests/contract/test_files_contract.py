"""The Files contract, held by `InMemoryFiles` and the CLI's `LocalFiles` on a real folder.

Paths are relative to the working folder (the local leg works in a fresh temporary one).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flusso.adapters.fakes.files import InMemoryFiles
from flusso.app.ports import Files
from flusso.entrypoints.cli.files import LocalFiles


@pytest.fixture(params=["memory", "local"])
def files(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Files]:
    if request.param == "memory":
        yield InMemoryFiles(folders=["schemas"])
        return
    (tmp_path / "schemas").mkdir()
    monkeypatch.chdir(tmp_path)
    yield LocalFiles()


def test_a_written_file_reads_back_exactly_and_exists(files: Files):
    assert files.exists("flusso.toml") is False
    files.write_text("flusso.toml", 'prefix = "dev_"\n# é\n')
    assert files.exists("flusso.toml") is True
    assert files.read_text("flusso.toml") == 'prefix = "dev_"\n# é\n'


def test_writing_again_replaces_the_whole_file(files: Files):
    files.write_text("schemas/users.schema.yml", "table: users\nfields: []\n")
    files.write_text("schemas/users.schema.yml", "table: people\n")
    assert files.read_text("schemas/users.schema.yml") == "table: people\n"
    assert files.read_text("./schemas/../schemas/users.schema.yml") == "table: people\n"


def test_reading_a_missing_file_raises_file_not_found(files: Files):
    with pytest.raises(FileNotFoundError):
        files.read_text("flusso.lock")
    assert files.exists("flusso.lock") is False


def test_writing_into_a_missing_folder_raises_file_not_found(files: Files):
    with pytest.raises(FileNotFoundError):
        files.write_text("missing/flusso.lock", "{}")
    assert files.exists("missing/flusso.lock") is False


def test_a_folder_is_not_a_file(files: Files):
    assert files.exists("schemas") is False
    with pytest.raises(OSError):
        files.read_text("schemas")
    with pytest.raises(OSError):
        files.write_text("schemas", "x")
