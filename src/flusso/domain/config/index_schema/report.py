"""How the schema loader records problems: where each one is and in which stage it arose.

Problems are reported together, sorted by stage and, within a stage, in the order they
were found: top-level keys first, then the shape of everything (type keys, sibling keys,
identifiers, filters, type names), then the version, then the conversion rules in
document order. A user then fixes the coarse mistakes before the fine ones.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from flusso.domain.config._yaml12 import YamlSyntaxError, YNode, YScalar
from flusso.domain.config.suggest import did_you_mean
from flusso.domain.errors import ConfigError

# Stages, in report order.
TOP = 0
PARSE = 1
VERSION = 2
CONVERT = 3


class _Bad:
    """A value whose problem has already been recorded: callers skip it silently."""

    def __repr__(self) -> str:
        return "<reported>"


BAD = _Bad()

_LINE_BREAK = re.compile(r"\r\n|[\n\r\x85\u2028\u2029]")


@dataclass(frozen=True)
class Site:
    """Where a problem is: the message's location label and how to show the position."""

    where: str  # "" at top level
    line: int | None = None  # field errors: appended as "(line L)"
    snippet: bool = False  # syntax and top-level errors: the line text and a caret

    def child(self, label: str, node: YNode) -> Site:
        where = f"{self.where}: {label}" if self.where else label
        return Site(where, line=node.line)


class Report:
    """The problems of one schema file, each prefixed with the file and its index."""

    def __init__(self, text: str, *, path: str, index: str) -> None:
        self.prefix = f"{path} (index {index})"
        self._lines = _LINE_BREAK.split(text)
        self._problems: list[tuple[int, int, ConfigError]] = []

    def add(
        self, stage: int, site: Site, detail: str, *, node: YNode | None = None,
        hint: str | None = None,
    ) -> None:
        message = f"{self.prefix}: {site.where}: {detail}" if site.where else (
            f"{self.prefix}: {detail}"
        )
        if site.snippet and node is not None:
            message += "\n" + self.snippet(node.line, node.column)
        elif site.line is not None:
            message += f" (line {site.line})"
        self._problems.append((stage, len(self._problems), ConfigError(message, hint=hint)))

    def count(self) -> int:
        return len(self._problems)

    def snippet(self, line: int, column: int) -> str:
        gutter = " " * len(str(line))
        out = [f"{gutter}--> line {line}, column {column}"]
        if 1 <= line <= len(self._lines):
            out += [
                f"{gutter} |",
                f"{line} | {self._lines[line - 1]}",
                f"{gutter} | {' ' * (column - 1)}^",
            ]
        return "\n".join(out)

    def syntax_error(self, exc: YamlSyntaxError) -> ConfigError:
        hint = "fix the YAML syntax at the marked position"
        if "'\\t'" in exc.message:
            hint = "indent with spaces; YAML does not allow tabs there"
        return ConfigError(
            f"{self.prefix}: {exc.message}\n{self.snippet(exc.line, exc.column)}", hint=hint,
        )

    def collected(self) -> ConfigError:
        ordered = [problem for _, _, problem in sorted(self._problems, key=lambda p: p[:2])]
        return ConfigError.collect(ordered)

    def unknown_keys(
        self, keys: Iterable[str], allowed: Sequence[str], site: Site, expected: str
    ) -> bool:
        """Report every key outside `allowed` (with a did-you-mean hint); True if any."""
        found = False
        for key in keys:
            if key not in allowed:
                suggestion = did_you_mean(key, allowed)
                self.add(PARSE, site, unknown_key(key, suggestion, expected), hint=suggestion)
                found = True
        return found


def is_null(node: YNode) -> bool:
    return isinstance(node, YScalar) and node.value is None


def unknown_key(key: str, suggestion: str | None, expected: str) -> str:
    if suggestion:
        return f"unknown key `{key}` — {suggestion} {expected[:1].upper()}{expected[1:]}"
    return f"unknown key `{key}`, {expected}"
