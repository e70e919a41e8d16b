"""What joins and aggregates share: the scope that allows relations, and `through`."""

from __future__ import annotations

from dataclasses import dataclass

from flusso.domain.config._yaml12 import YNode
from flusso.domain.config.index_schema.report import BAD, CONVERT, PARSE, Report, Site, is_null
from flusso.domain.config.index_schema.rules import THROUGH_KEYS, backticked
from flusso.domain.config.index_schema.shapes import keyed, pg_ident
from flusso.domain.config.model import Through


@dataclass(frozen=True)
class Scope:
    """What the fields at one level can see."""

    relations_ok: bool  # the root row needs a `primary_key` before it can have relations
    path: str  # dotted path of the enclosing field, "" at root


def relation_ok(report: Report, tag: str, site: Site, scope: Scope) -> bool:
    """Whether a join or aggregate may stand here; reports it when not."""
    if scope.relations_ok:
        return True
    report.add(CONVERT, site, f"`{tag}` needs the root `primary_key`: related rows are "
               "matched against the root row's key",
               hint="add `primary_key: <column>` at the top level")
    return False


def through(report: Report, node: YNode, site: Site, key: str) -> object:
    """A junction table `{table, left_key, right_key}`, None when null, or BAD."""
    if is_null(node):
        return None
    here = site.child(key, node)
    found = keyed(report, node, here, f"a mapping with {backticked(THROUGH_KEYS)}",
                  THROUGH_KEYS, f"expected {backticked(THROUGH_KEYS)}")
    if found is None:
        return BAD
    keys, bad = found
    parts: dict[str, object] = {}
    for part in THROUGH_KEYS:
        if part not in keys:
            report.add(PARSE, here, f"missing key `{part}`",
                       hint="`through` needs `table`, `left_key` and `right_key`")
            bad = True
        else:
            parts[part] = pg_ident(report, keys[part], here, part, required=True)
    if bad or BAD in parts.values():
        return BAD
    return Through(table=parts["table"], left_key=parts["left_key"],
                   right_key=parts["right_key"])
