"""Index names flusso owns in a cluster: prefix rules, hash aliases, generations, the meta index.

Pure string arithmetic; the sink does the calls.
"""

from __future__ import annotations

import re

from flusso.domain.errors import ConfigError

PREFIX_MAX_BYTES = 50
META_INDEX = "flusso_meta"

_FORBIDDEN = (" ", ",", ":", '"', "*", "+", "/", "\\", "|", "?", "#", "<", ">")
_U64_MAX = 2**64 - 1
_HASH = re.compile(r"[0-9a-f]{8}")


def validate_prefix(prefix: str) -> None:
    """Raise ConfigError unless `prefix` can lead an OpenSearch index name (empty is fine)."""
    reason = _prefix_problem(prefix)
    if reason is not None:
        raise ConfigError(
            f'invalid index prefix: index prefix "{prefix}" {reason}',
            hint='use lowercase letters, digits, "_" or "-", e.g. "dev_"; '
            "the prefix comes from --index-prefix, FLUSSO_INDEX_PREFIX or `prefix` in flusso.toml",
        )


def _prefix_problem(prefix: str) -> str | None:
    if not prefix:
        return None
    size = len(prefix.encode("utf-8"))
    if size > PREFIX_MAX_BYTES:
        return f"is {size} bytes long; at most {PREFIX_MAX_BYTES} are allowed"
    for char in prefix:
        if char in _FORBIDDEN:
            return f"contains {char!r}, which OpenSearch index names cannot contain"
    if any("A" <= char <= "Z" for char in prefix):
        return "contains uppercase letters; OpenSearch index names are lowercase"
    first = prefix[0]
    if not (first.isascii() and first.isalnum()):
        return f"starts with {first!r}; it must start with an ASCII letter or digit"
    return None


def hash_alias(prefix: str, logical: str, hash: str) -> str:
    """`{prefix}{logical}_{hash}`: the alias flusso and query clients address."""
    return f"{prefix}{logical}_{hash}"


def convenience_alias(prefix: str, logical: str) -> str:
    """`{prefix}{logical}`: the best-effort alias on the serving generation."""
    return f"{prefix}{logical}"


def generation_name(alias: str, n: int) -> str:
    """`{hash_alias}_{n}`: the concrete index holding generation `n`."""
    return f"{alias}_{n}"


def meta_index(prefix: str) -> str:
    return f"{prefix}{META_INDEX}"


def _parse_u64(text: str) -> int | None:
    if not text or not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if value <= _U64_MAX else None


def parse_generation(alias: str, name: str) -> int | None:
    """`n` when `name` is exactly `alias + "_" + digits`, else None."""
    head = alias + "_"
    if not name.startswith(head):
        return None
    return _parse_u64(name[len(head) :])


def hash_alias_of(name: str) -> str | None:
    """The hash alias a generation name belongs to (the part before a numeric last `_` suffix)."""
    head, sep, tail = name.rpartition("_")
    if not sep or _parse_u64(tail) is None:
        return None
    return head


def next_generation(names: list[str] | tuple[str, ...], alias: str) -> int:
    """One past the highest generation of `alias` among `names`, or 1; orphans are skipped over."""
    numbers = [n for n in (parse_generation(alias, name) for name in names) if n is not None]
    return max(numbers) + 1 if numbers else 1


def next_target(alias: str, g: int, names: list[str] | tuple[str, ...]) -> int:
    """A fresh generation past both what exists and `g`, so a number is never reused."""
    return max(next_generation(names, alias), g + 1)


def is_sibling_hash_alias(prefix: str, logical: str, name: str) -> bool:
    """Whether `name` is a hash alias (`{prefix}{logical}_{8 hex}`) of the same logical index."""
    head = f"{prefix}{logical}_"
    return name.startswith(head) and _HASH.fullmatch(name[len(head) :]) is not None
