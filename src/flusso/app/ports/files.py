"""Whole text files by path: how `build` and `check` reach the config, its schemas and the lock."""

from __future__ import annotations

from typing import Protocol


class Files(Protocol):
    """Reads and writes whole text files by path (relative to the working directory).

    `read_text` returns what the last `write_text` of that path wrote. `read_text`
    and `write_text` raise OSError (FileNotFoundError when the file or its folder
    is absent); `exists` is true only for a file.
    """

    def exists(self, path: str) -> bool: ...

    def read_text(self, path: str) -> str: ...

    def write_text(self, path: str, text: str) -> None: ...
