"""Did-you-mean suggestions for unknown keys and names (shared by the schema and TOML loaders)."""

from __future__ import annotations

from collections.abc import Sequence

_MAX_DISTANCE = 2


def edit_distance(a: str, b: str) -> int:
    """Plain Levenshtein distance (insert, delete, substitute; each costs 1)."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            current.append(min(
                previous[j] + 1,
                current[j - 1] + 1,
                previous[j - 1] + (char_a != char_b),
            ))
        previous = current
    return previous[-1]


def did_you_mean(unknown: str, allowed: Sequence[str]) -> str | None:
    """``did you mean `x`?`` for the closest allowed name within distance 2, else None.

    Ties go to the earliest name in `allowed`; an exact match suggests nothing.
    """
    best: str | None = None
    best_distance = _MAX_DISTANCE + 1
    for candidate in allowed:
        distance = edit_distance(unknown, candidate)
        if distance == 0:
            return None
        if distance < best_distance:
            best, best_distance = candidate, distance
    return f"did you mean `{best}`?" if best is not None else None
