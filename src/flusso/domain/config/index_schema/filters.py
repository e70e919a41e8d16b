"""Filters, wherever they stand (root, joins, aggregates, `soft_delete.when`).

The shape of each filter is checked with the parse stage; a comparison's value is checked
with the conversion stage, so it is kept as a `PendingComparison` until then.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flusso.domain.config._yaml12 import YNode, YScalar, YSeq, describe, scalar_text
from flusso.domain.config.index_schema.report import BAD, CONVERT, PARSE, Report, Site, is_null
from flusso.domain.config.index_schema.rules import FILTER_FORMS, FILTER_KEYS, backticked
from flusso.domain.config.index_schema.shapes import entries, one_of, pg_ident
from flusso.domain.config.model import NULL_OPS, VALUE_OPS, Comparison, Filter, NullCheck, RawFilter

_OPS = (*VALUE_OPS, *NULL_OPS)
_LIST_OPS = ("in", "not_in", "between")


@dataclass(frozen=True)
class PendingComparison:
    """A comparison filter whose value is checked in the conversion stage."""

    column: str
    op: str
    value: YNode | None
    site: Site


PendingFilter = RawFilter | NullCheck | PendingComparison


def filters_shape(report: Report, node: YNode | None, site: Site, key: str) -> object:
    """Parse-stage check of a filter list: a list of pending filters, None, or BAD."""
    if node is None or is_null(node):
        return None
    if not isinstance(node, YSeq):
        report.add(PARSE, site.child(f"`{key}`", node),
                   f"expected a list of filters, found {describe(node)}", node=node)
        return BAD
    # Bad items stay in place as BAD so the good ones still get their value checks.
    return [
        _filter_shape(report, item, site.child(f"{key}[{position}]", item))
        for position, item in enumerate(node.items)
    ]


def _filter_shape(report: Report, node: YNode, site: Site) -> object:
    found = entries(report, node, site, "a filter mapping", after=f"; {FILTER_FORMS}")
    if found is None or found[1]:
        return BAD
    keys = found[0]
    if "raw" in keys:
        return _raw_filter(report, keys, site)
    return _column_filter(report, keys, site)


def _raw_filter(report: Report, keys: dict[str, YNode], site: Site) -> object:
    others = [k for k in keys if k != "raw"]
    if others:
        report.add(PARSE, site, f"a `raw` filter takes no other keys (found "
                   f"{backticked(others)}); {FILTER_FORMS}")
        return BAD
    raw = keys["raw"]
    if not isinstance(raw, YScalar) or not isinstance(raw.value, str) or not raw.value.strip():
        report.add(PARSE, site, f"`raw` must be a non-empty SQL string, found {describe(raw)}")
        return BAD
    return RawFilter(raw.value.strip())


def _column_filter(report: Report, keys: dict[str, YNode], site: Site) -> object:
    unknown = [k for k in keys if k not in FILTER_KEYS]
    if unknown:
        report.unknown_keys(unknown[:1], FILTER_KEYS, site, FILTER_FORMS)
        return BAD
    missing = [k for k in ("column", "op") if k not in keys]
    if missing:
        report.add(PARSE, site, f"filter is missing {backticked(missing)}; {FILTER_FORMS}")
        return BAD
    op = one_of(report, keys["op"], site, "unknown filter op", _OPS, _OPS)
    if op is BAD:
        return BAD
    column = pg_ident(report, keys["column"], site, "column", required=True)
    if column is BAD:
        return BAD
    if op not in NULL_OPS:
        return PendingComparison(column=column, op=op, value=keys.get("value"), site=site)
    if "value" in keys:
        report.add(PARSE, site, f"op `{op}` takes no `value`; {FILTER_FORMS}",
                   hint="remove `value`")
        return BAD
    return NullCheck(column=column, op=op)


def has_bad_filter(pending: object) -> bool:
    """Whether a parsed filter list is BAD or holds a BAD item."""
    return pending is BAD or (isinstance(pending, list) and BAD in pending)


def convert_filters(report: Report, pending: object) -> tuple[Filter, ...] | None:
    """The filters of a parsed list whose values are good (bad ones are left out, reported)."""
    if pending is None or pending is BAD:
        return None
    out: list[Filter] = []
    for item in pending:
        if isinstance(item, PendingComparison):
            converted = _comparison(report, item)
            if converted is not None:
                out.append(converted)
        elif item is not BAD:
            out.append(item)
    return tuple(out)


def all_converted(pending: object, filters: tuple[Filter, ...] | None) -> bool:
    """Whether every filter of a parsed list converted (a relation is dropped otherwise)."""
    return pending is None or (filters is not None and len(filters) == len(pending))


def _comparison(report: Report, item: PendingComparison) -> Comparison | None:
    op, node, site = item.op, item.value, item.site
    if node is None or is_null(node):
        report.add(CONVERT, site, f"filter op '{op}' requires a value", hint="add `value: …`")
        return None
    if op in _LIST_OPS:
        values = _listed_values(report, op, node, site)
        return None if values is None else Comparison(column=item.column, op=op, values=values)
    if not isinstance(node, YScalar):
        report.add(CONVERT, site, f"filter op '{op}' takes a single scalar value, found "
                   f"{describe(node)}")
        return None
    return Comparison(column=item.column, op=op, values=(scalar_text(node.value),))


def _listed_values(report: Report, op: str, node: YNode, site: Site) -> tuple[str, ...] | None:
    if not isinstance(node, YSeq):
        report.add(CONVERT, site, f"filter op '{op}' requires a sequence value, found "
                   f"{describe(node)}", hint="write the values as a list, e.g. `[a, b]`")
        return None
    items: Sequence[YNode] = node.items
    if op == "between" and len(items) != 2:
        report.add(CONVERT, site, "filter op 'between' requires exactly 2 values, "
                   f"got {len(items)}", hint="write `value: [low, high]`")
        return None
    if not items:
        report.add(CONVERT, site, f"filter op '{op}' requires at least one value; "
                   "an empty list is not valid SQL", hint="remove the filter")
        return None
    nested = [i for i in items if not isinstance(i, YScalar)]
    if nested:
        report.add(CONVERT, site, f"filter op '{op}' values must be scalars, found "
                   f"{describe(nested[0])} in the list")
        return None
    return tuple(scalar_text(i.value) for i in items)  # type: ignore[union-attr]
