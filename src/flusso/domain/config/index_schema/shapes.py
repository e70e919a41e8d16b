"""Value shapes several places of a schema share: identifiers, field names, string keys,
type names, string lists and transforms. Each reader returns the value, None when it is
absent (or null where null means absent), or `BAD` after reporting the problem."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from flusso.domain.config._yaml12 import YMap, YNode, YScalar, YSeq, describe
from flusso.domain.config.index_schema.report import BAD, PARSE, Report, Site, is_null
from flusso.domain.config.index_schema.rules import (
    PARSED_TYPE_NAMES,
    backticked,
    field_name_problem,
    pg_identifier_problem,
)
from flusso.domain.config.model import TRANSFORMS, TYPE_NAMES
from flusso.domain.config.suggest import did_you_mean

_IDENTIFIER_HINT = (
    "use lowercase letters, digits and underscores, not starting with a digit "
    "(at most 63 characters)"
)


def pg_ident(
    report: Report, node: YNode | None, site: Site, key: str, *, required: bool = False,
) -> object:
    """A normalised Postgres identifier, None when absent, or BAD."""
    if node is None or (is_null(node) and not required):
        return None
    if not isinstance(node, YScalar) or not isinstance(node.value, str):
        report.add(PARSE, site,
                   f"`{key}` must be a string (a Postgres identifier), found {describe(node)}",
                   node=node)
        return BAD
    value, problem = pg_identifier_problem(node.value)
    if problem is not None:
        report.add(PARSE, site,
                   f"invalid Postgres identifier {node.value!r} in `{key}`: it {problem}",
                   node=node, hint=_IDENTIFIER_HINT)
        return BAD
    return value


_NAME_HINT = "use letters, digits and underscores, not starting with a digit"


def field_name(
    report: Report, node: YNode, site: Site, subject: str, *, hint: str = _NAME_HINT,
) -> object:
    """A field name (trimmed, case kept) written as `subject`, or BAD."""
    if not isinstance(node, YScalar) or not isinstance(node.value, str):
        report.add(PARSE, site, f"{subject} must be a field name (a string), found "
                   f"{describe(node)}")
        return BAD
    value, problem = field_name_problem(node.value)
    if problem is not None:
        report.add(PARSE, site, f"{subject}: invalid field name {node.value!r}: it {problem}",
                   hint=hint)
        return BAD
    return value


def string_keys(report: Report, node: YMap, site: Site) -> tuple[dict[str, YNode], bool]:
    """The mapping's entries by key, and whether a key that is not a string was reported."""
    keys: dict[str, YNode] = {}
    bad = False
    for key, value in node.entries:
        if isinstance(key, YScalar) and isinstance(key.value, str):
            keys[key.value] = value
        else:
            label = key.text if isinstance(key, YScalar) else describe(key)
            report.add(PARSE, site, f"keys must be strings, found `{label}`")
            bad = True
    return keys, bad


def entries(
    report: Report, node: YNode, site: Site, shape: str, *, after: str = "",
) -> tuple[dict[str, YNode], bool] | None:
    """A mapping's entries and whether a key was bad; None, reported as "expected `shape`",
    when the node is not a mapping."""
    if not isinstance(node, YMap):
        report.add(PARSE, site, f"expected {shape}, found {describe(node)}{after}")
        return None
    return string_keys(report, node, site)


def keyed(
    report: Report, node: YNode, site: Site, shape: str, allowed: Sequence[str], expected: str,
) -> tuple[dict[str, YNode], bool] | None:
    """Like `entries`, and every key outside `allowed` is reported (and counts as bad)."""
    found = entries(report, node, site, shape)
    if found is None:
        return None
    keys, bad = found
    if report.unknown_keys(keys, allowed, site, expected):
        bad = True
    return keys, bad


def items(
    report: Report, node: YNode, site: Site, key: str, what: str, hint: str | None = None,
) -> object:
    """A sequence's items, or BAD after "`key` must be a list of `what`"."""
    if isinstance(node, YSeq):
        return node.items
    report.add(PARSE, site, f"`{key}` must be a list of {what}, found {describe(node)}",
               node=node, hint=hint)
    return BAD


def one_of(
    report: Report, node: YNode, site: Site, what: str, allowed: Collection[str],
    listed: Sequence[str],
) -> object:
    """A string among `allowed`, or BAD after "`what` `x`; expected one of `listed`"."""
    value = node.value if isinstance(node, YScalar) else None
    if isinstance(value, str) and value in allowed:
        return value
    label = value if isinstance(value, str) else describe(node)
    suggestion = did_you_mean(value, listed) if isinstance(value, str) else None
    report.add(PARSE, site, f"{what} `{label}`; expected one of {backticked(listed)}",
               hint=suggestion)
    return BAD


def string_list(report: Report, node: YNode, site: Site, key: str) -> object:
    if isinstance(node, YSeq) and all(
        isinstance(i, YScalar) and isinstance(i.value, str) for i in node.items
    ):
        return [i.value for i in node.items]  # type: ignore[union-attr]
    found = describe(node)
    if isinstance(node, YSeq):
        found = "a list holding " + describe(
            next(i for i in node.items if not (isinstance(i, YScalar)
                                               and isinstance(i.value, str))))
    report.add(PARSE, site, f"`{key}` must be a list of strings, found {found}",
               hint="quote values YAML would read as numbers, booleans or null")
    return BAD


def type_name(report: Report, node: YNode, site: Site, key: str) -> object:
    return one_of(report, node, site, f"`{key}`: unknown type", PARSED_TYPE_NAMES, TYPE_NAMES)


def transforms(report: Report, node: YNode, site: Site, key: str) -> object:
    if is_null(node):
        return None
    listed = items(report, node, site, key, backticked(TRANSFORMS))
    if listed is BAD:
        return BAD
    out = []
    for item in listed:
        value = one_of(report, item, site, "unknown transform", TRANSFORMS, TRANSFORMS)
        if value is BAD:
            return BAD
        out.append(value)
    return tuple(out)
