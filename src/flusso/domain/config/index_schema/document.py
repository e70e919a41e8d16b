"""The document's top level: its keys, the version, the root table and key, the root
filters and soft delete; it hands the field lists to `FieldLoader`."""

from __future__ import annotations

from flusso.domain.config._yaml12 import YMap, YNode, YScalar, describe
from flusso.domain.config.index_schema.fields import FieldLoader
from flusso.domain.config.index_schema.filters import (
    convert_filters,
    filters_shape,
    has_bad_filter,
)
from flusso.domain.config.index_schema.relations import Scope
from flusso.domain.config.index_schema.report import (
    BAD,
    CONVERT,
    PARSE,
    TOP,
    VERSION,
    Report,
    Site,
    is_null,
    unknown_key,
)
from flusso.domain.config.index_schema.rules import (
    REQUIRED_TOP_KEYS,
    SOFT_DELETE_KEYS,
    SUPPORTED_VERSIONS,
    TOP_KEYS,
    backticked,
)
from flusso.domain.config.index_schema.shapes import field_name, items, keyed, pg_ident
from flusso.domain.config.model import (
    Filter,
    IndexSchema,
    SoftDelete,
    root_column_field,
)
from flusso.domain.config.suggest import did_you_mean
from flusso.domain.errors import ConfigError

_TOP = Site("", snippet=True)


def load_document(report: Report, root: YNode | None) -> IndexSchema:
    """Validate and convert a parsed schema document. Raises ConfigError."""
    if root is None:
        raise _empty(report)
    if not isinstance(root, YMap):
        report.add(TOP, _TOP, f"expected a mapping of schema keys, found {describe(root)}",
                   node=root, hint="a schema file starts with `version: 1` and `table: …`")
        raise report.collected()
    keys = _top_keys(report, root)
    version_node = keys.get("version")
    if version_node is not None:
        _version(report, version_node)
    table = pg_ident(report, keys.get("table"), _TOP, "table", required=True)
    db_schema = pg_ident(report, keys.get("schema"), _TOP, "schema")
    primary_key = pg_ident(report, keys.get("primary_key"), _TOP, "primary_key")
    doc_id = keys.get("doc_id")
    soft_delete = _soft_delete_shape(report, keys.get("soft_delete"))
    root_filters = filters_shape(report, keys.get("filters"), Site(""), "filters")
    field_nodes = _fields_shape(report, keys.get("fields"))

    if doc_id is not None and not is_null(doc_id):
        report.add(CONVERT, _TOP, "`doc_id` is not supported yet", node=doc_id,
                   hint="remove `doc_id`; the document `_id` always comes from `primary_key`")
    when = convert_filters(report, soft_delete[2]) if isinstance(soft_delete, tuple) else None
    filters = convert_filters(report, root_filters)
    # A bad `primary_key` was reported already: do not also report every relation.
    scope = Scope(relations_ok=primary_key is not None, path="")
    fields = FieldLoader(report).fields(field_nodes, scope) if field_nodes is not BAD else BAD
    result_soft_delete = None
    if isinstance(soft_delete, tuple):
        result_soft_delete = _finish_soft_delete(report, soft_delete, when, fields)

    if report.count():
        raise report.collected()
    return IndexSchema(
        table=table,
        fields=fields,
        db_schema=db_schema if db_schema is not None else "public",
        primary_key=primary_key,
        soft_delete=result_soft_delete,
        filters=filters,
        version=1,
    )


def _empty(report: Report) -> ConfigError:
    return ConfigError(
        f"{report.prefix}: the schema file is empty; expected a mapping with "
        "`version`, `table` and `fields`",
        hint="start from `version: 1`, `table: <table>`, `fields: []`",
    )


def _top_keys(report: Report, root: YMap) -> dict[str, YNode]:
    keys: dict[str, YNode] = {}
    expected = f"expected one of {backticked(TOP_KEYS)}"
    for key, value in root.entries:
        name = key.value if isinstance(key, YScalar) else None
        if isinstance(name, str) and name in TOP_KEYS:
            keys[name] = value
            continue
        label = key.text if isinstance(key, YScalar) else "<" + describe(key) + ">"
        suggestion = did_you_mean(name, TOP_KEYS) if isinstance(name, str) else None
        report.add(TOP, _TOP, unknown_key(label, suggestion, expected), node=key,
                   hint=suggestion or "remove the key")
    for name in REQUIRED_TOP_KEYS:
        if name not in keys:
            report.add(TOP, _TOP, f"missing key `{name}`", node=root,
                       hint=f"add `{name}:` at the top level")
    return keys


def _version(report: Report, node: YNode) -> None:
    value = node.value if isinstance(node, YScalar) else None
    if not isinstance(value, int) or isinstance(value, bool):
        report.add(PARSE, _TOP, f"`version` must be an integer, found {describe(node)}",
                   node=node, hint="write `version: 1`")
    elif value not in SUPPORTED_VERSIONS:
        report.add(VERSION, _TOP, f"unsupported schema version {value}; supported versions: 1",
                   node=node, hint="write `version: 1`")


def _fields_shape(report: Report, node: YNode | None) -> object:
    if node is None:
        return BAD  # reported as a missing key
    return items(report, node, _TOP, "fields", "fields",
                 hint="write `fields: []` for none, or `- keyword: name` items")


def _soft_delete_shape(report: Report, node: YNode | None) -> object:
    """(kind, name, pending `when`), None when absent, or BAD."""
    if node is None or is_null(node):
        return None
    site = Site("soft_delete", line=node.line)
    found = keyed(report, node, site, "a mapping with `column` or `field`", SOFT_DELETE_KEYS,
                  f"expected one of {backticked(SOFT_DELETE_KEYS)}")
    if found is None:
        return BAD
    keys, bad = found
    has_column = "column" in keys
    if has_column == ("field" in keys):
        report.add(PARSE, site, "needs exactly one of `column` (a column of the root "
                   "table) or `field` (a mapped root field)",
                   hint="keep either `column:` or `field:`")
        bad = True
    when = filters_shape(report, keys.get("when"), site, "when")
    if bad or has_bad_filter(when):
        return BAD
    if has_column:
        column = pg_ident(report, keys["column"], site, "column", required=True)
        return BAD if column is BAD else ("column", column, when)
    name = field_name(report, keys["field"], site, "`field`")
    return BAD if name is BAD else ("field", name, when)


def _finish_soft_delete(
    report: Report, shape: tuple[str, str, object], when: tuple[Filter, ...] | None,
    fields: object,
) -> SoftDelete | None:
    kind, name, _ = shape
    if kind == "field" and fields is not BAD and root_column_field(fields, name) is None:
        report.add(CONVERT, Site("soft_delete"),
                   f"`field` `{name}` is not a column-backed field of the root row "
                   "(top level or inside an `object`)",
                   hint="name a root scalar field, or use `column:` with the root "
                        "table's column")
        return None
    return SoftDelete(kind=kind, name=name, when=when)
