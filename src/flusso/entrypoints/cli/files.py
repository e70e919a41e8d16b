"""Real file access for the CLI: the `Files` the compile use case reads and writes through."""

from __future__ import annotations

from pathlib import Path


class LocalFiles:
    """Whole-file UTF-8 text I/O on the local disk, paths relative to the working directory."""

    def exists(self, path: str) -> bool:
        return Path(path).is_file()

    def read_text(self, path: str) -> str:
        try:
            return Path(path).read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise OSError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc

    def write_text(self, path: str, text: str) -> None:
        Path(path).write_text(text, encoding="utf-8")
