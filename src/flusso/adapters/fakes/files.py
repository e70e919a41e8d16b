"""`InMemoryFiles`: the Files port over a dictionary, with folders and a read-only fault."""

from __future__ import annotations

import errno
import posixpath
from collections.abc import Iterable, Mapping


class InMemoryFiles:
    """Whole text files by path, as the local disk keeps them relative to the working folder.

    A folder exists when it was named in `folders` or holds one of the initial files;
    writing into a missing folder raises FileNotFoundError, reading a folder
    IsADirectoryError, and with `read_only` every write raises PermissionError.
    """

    def __init__(
        self,
        files: Mapping[str, str] | None = None,
        *,
        folders: Iterable[str] = (),
        read_only: bool = False,
    ) -> None:
        self.files: dict[str, str] = {_normal(p): text for p, text in (files or {}).items()}
        self.folders: set[str] = {"", *(_normal(f) for f in folders)}
        for path in self.files:
            self.folders.update(_parents(path))
        self.read_only = read_only
        self.writes: list[str] = []
        """Every path written, in order."""

    def exists(self, path: str) -> bool:
        return _normal(path) in self.files

    def read_text(self, path: str) -> str:
        key = _normal(path)
        if key in self.files:
            return self.files[key]
        if key in self.folders:
            raise IsADirectoryError(errno.EISDIR, "Is a directory", path)
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)

    def write_text(self, path: str, text: str) -> None:
        key = _normal(path)
        if key in self.folders:
            raise IsADirectoryError(errno.EISDIR, "Is a directory", path)
        if posixpath.dirname(key) not in self.folders:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        if self.read_only:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        self.writes.append(path)
        self.files[key] = text


def _normal(path: str) -> str:
    normal = posixpath.normpath(path)
    return "" if normal == "." else normal


def _parents(path: str) -> list[str]:
    parents: list[str] = []
    head = posixpath.dirname(path)
    while head:
        parents.append(head)
        head = posixpath.dirname(head)
    return parents
