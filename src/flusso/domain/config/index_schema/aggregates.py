"""Aggregates: which siblings each op needs or refuses, and the converted `Aggregate`."""

from __future__ import annotations

from flusso.domain.config.index_schema.filters import all_converted, convert_filters
from flusso.domain.config.index_schema.relations import Scope, relation_ok
from flusso.domain.config.index_schema.report import CONVERT, Report, Site
from flusso.domain.config.model import Aggregate, AggregateKey, ForeignKey

_Problem = tuple[str, str | None]  # (message, hint)

_TYPED_RESULT = ("sum", "min", "max")  # the result has the column's type
_OVER_A_COLUMN = ("avg", *_TYPED_RESULT)


def aggregate(
    report: Report, op: str, body: dict[str, object], site: Site, scope: Scope,
) -> Aggregate | None:
    """The converted aggregate, or None once its problem is reported."""
    problem = _op_problem(op, body) or _key_problem(body)
    if problem is not None:
        report.add(CONVERT, site, problem[0], hint=problem[1])
        return None
    if not relation_ok(report, op, site, scope):
        return None
    foreign_key = body.get("foreign_key")
    key: AggregateKey = ForeignKey(foreign_key) if foreign_key is not None else body["through"]
    pending = body.get("filters")
    filters = convert_filters(report, pending)
    if not all_converted(pending, filters):
        return None
    return Aggregate(
        table=body["table"], op=op, key=key, column=body.get("column"),
        value_type=body.get("value_type"), element_type=body.get("element_type"),
        filters=filters,
    )


def _op_problem(op: str, body: dict[str, object]) -> _Problem | None:
    """The first sibling the op is missing or does not take."""
    if body.get("element_type") is not None and op != "ids":
        return "aggregate does not take `element_type` (only `ids` does)", "remove `element_type`"
    if op in _OVER_A_COLUMN and body.get("column") is None:
        return (f"aggregate op '{op}' requires a `column`",
                "add `column:` naming the related table's column")
    if op in _TYPED_RESULT:
        return _result_type_problem(op, body.get("value_type"))
    if op == "ids":
        return _ids_problem(body)
    return None


def _result_type_problem(op: str, value_type: object) -> _Problem | None:
    if value_type is None:
        return (f"aggregate op '{op}' requires a `value_type` (its result has the column's "
                "type)", "e.g. `value_type: decimal`")
    if value_type == "geo_point":
        return (f"aggregate op '{op}' `value_type` must be a scalar type — `geo_point` is "
                "not a valid aggregate result type", None)
    return None


def _ids_problem(body: dict[str, object]) -> _Problem | None:
    for sibling in ("column", "value_type"):
        if sibling in body:
            return (f"aggregate op 'ids' does not take `{sibling}` (it always collects the "
                    "related table's primary key)", f"remove `{sibling}`")
    element_type = body.get("element_type")
    if element_type is None:
        return ("aggregate op 'ids' requires an `element_type` — the type of each collected "
                "primary key", "e.g. `element_type: long`")
    if element_type == "geo_point":
        return ("aggregate op 'ids' `element_type` must be a scalar type — `geo_point` is not "
                "a valid element type", None)
    return None


def _key_problem(body: dict[str, object]) -> _Problem | None:
    if ("foreign_key" in body) == ("through" in body):
        return ("aggregate must specify either `foreign_key` or `through`, not both or neither",
                "`foreign_key`: the related table's column pointing back; "
                "`through`: a junction table")
    return None
