"""Problems with `flusso.toml` in the config's own words: TOML syntax errors with the line
and a caret, and pydantic's structural errors as "[section] key: what is wrong"."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from flusso.domain.config.config_shape import (
    CONNECTION_PART_KEYS,
    INDEX_KEYS,
    OPENSEARCH_SINK_KEYS,
    SERVER_KEYS,
    SINK_TYPES,
    SOURCE_KEYS,
    STDOUT_SINK_KEYS,
    TOP_LEVEL_KEYS,
    U32,
    U64,
    toml_kind,
)
from flusso.domain.config.sink_security import AWS_SIGV4_KEYS
from flusso.domain.config.suggest import did_you_mean
from flusso.domain.errors import ConfigError


def structural_problems(path: str, exc: ValidationError) -> ConfigError:
    """Every problem pydantic found, as one collected ConfigError."""
    return ConfigError.collect([_problem(path, e) for e in exc.errors()])


_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_AT_END = re.compile(r"\s*\(at end of document\)$")


def load_toml(text: str, path: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_syntax_message(str(exc), text, path)) from None


def _syntax_message(reason: str, text: str, path: str) -> str:
    lines = text.splitlines() or [""]
    found = _POSITION.search(reason)
    if found:
        line, column = int(found.group(1)), int(found.group(2))
        reason = reason[: found.start()]
    else:
        reason = _AT_END.sub("", reason)
        line = len(lines)
        column = len(lines[-1]) + 1
    source_line = lines[line - 1] if 0 < line <= len(lines) else ""
    gutter = " " * len(str(line))
    return (
        f"{path}: TOML syntax error: {reason[:1].lower()}{reason[1:]}\n"
        f"{gutter}--> line {line}, column {column}\n"
        f"{gutter} |\n"
        f"{line} | {source_line}\n"
        f"{gutter} | {' ' * (column - 1)}^"
    )


# ---------------------------------------------------------------------------
# Structural errors (pydantic) → messages in the config's own words
# ---------------------------------------------------------------------------

_WHAT = {
    "int_type": "an integer",
    "bool_type": "a boolean (true or false)",
    "string_type": "a string",
    "dict_type": "a table",
    "list_type": "an array of tables",
    "model_type": "a table",
    "model_attributes_type": "a table",
}


def _where(loc: tuple[Any, ...]) -> tuple[str, tuple[str, ...]]:
    """Split a pydantic location into the TOML section and the key path inside it."""
    parts = list(loc)
    if len(parts) > 1 and parts[0] == "source":
        rest = parts[1:]
        if rest[:1] == ["connection_url"] and rest[1:2] in (["url"], ["parts"]):
            rest = ["connection_url", *rest[2:]]  # drop the union's tag
        return "[source]", tuple(str(p) for p in rest)
    if parts and parts[0] == "sinks" and len(parts) > 1:
        rest = parts[3:] if len(parts) > 2 and parts[2] in SINK_TYPES else parts[2:]
        return f"[sinks.{parts[1]}]", tuple(str(p) for p in rest)
    if parts and parts[0] == "index" and len(parts) > 1 and isinstance(parts[1], int):
        return f"[[index]] #{parts[1] + 1}", tuple(str(p) for p in parts[2:])
    if len(parts) > 1 and parts[0] == "server":
        return "[server]", tuple(str(p) for p in parts[1:])
    return "", tuple(str(p) for p in parts)


def _allowed(loc: tuple[Any, ...]) -> tuple[str, ...]:
    """The keys allowed in the table that holds the last element of `loc`."""
    head = loc[:-1]
    if not head:
        return TOP_LEVEL_KEYS
    if head == ("source",):
        return SOURCE_KEYS
    if head[:2] == ("source", "connection_url"):
        return CONNECTION_PART_KEYS
    if head[0] == "sinks" and len(head) == 3:
        return OPENSEARCH_SINK_KEYS if head[2] == "opensearch" else STDOUT_SINK_KEYS
    if head[0] == "sinks" and head[3:] == ("aws_sigv4",):
        return AWS_SIGV4_KEYS
    if head[0] == "index":
        return INDEX_KEYS
    if head[0] == "server":
        return SERVER_KEYS
    return ()


def _problem(path: str, error: Mapping[str, Any]) -> ConfigError:
    loc = tuple(error["loc"])
    kind = error["type"]
    ctx = error.get("ctx") or {}
    section, keys = _where(loc)
    hint: str | None = None
    if kind == "extra_forbidden":
        key = keys[-1] if keys else str(loc[-1])
        keys = keys[:-1]
        allowed = _allowed(loc)
        what = f"unknown key `{key}`, expected one of {_listing(allowed)}"
        hint = did_you_mean(key, allowed)
    elif kind == "missing":
        what = f"missing key `{keys[-1] if keys else loc[-1]}`"
        keys = keys[:-1]
        if loc == ("source",):
            hint = (
                'every config needs a [source] table: add `[source]` and `type = "postgres"` '
                "(the connection then comes from DATABASE_URL); `flusso schema config` "
                "prints every key"
            )
    elif kind == "union_tag_not_found":
        what = f"missing key `type`, expected one of {_listing(SINK_TYPES)}"
    elif kind == "union_tag_invalid":
        what = (
            f"unknown sink type {_show(ctx.get('tag'))}, expected one of {_listing(SINK_TYPES)}"
        )
        keys = (*keys, "type")
    elif kind == "literal_error":
        what = f"expected one of {ctx.get('expected')}, found {_show(error.get('input'))}"
    elif kind in ("greater_than_equal", "less_than_equal"):
        bounds = _bounds(loc)
        what = f"must be between {bounds[0]} and {bounds[1]}, found {error.get('input')}"
    elif kind in _WHAT:
        what = f"expected {_WHAT[kind]}, found {toml_kind(error.get('input'))}"
    else:
        what = str(error.get("msg"))
    where = " ".join(p for p in (section, ".".join(keys)) if p)
    return ConfigError(f"{path}: {where + ': ' if where else ''}{what}", hint=hint)


def _bounds(loc: tuple[Any, ...]) -> tuple[int, int]:
    key = str(loc[-1])
    if key == "port":
        return 0, 65535
    if key in ("max_bytes", "timeout_secs"):
        return 0, U64
    return 0, U32


def _show(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) else toml_kind(value)


def _listing(keys: tuple[str, ...]) -> str:
    return ", ".join(f"`{k}`" for k in keys)


