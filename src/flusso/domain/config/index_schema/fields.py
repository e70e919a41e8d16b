"""Fields: the list at each level, one field's type key, name and siblings, and the
conversion of every kind (column-backed, geo, map, object, constant, joins, aggregates)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from flusso.domain.config._yaml12 import YMap, YNode, YScalar, YSeq, describe, to_value
from flusso.domain.config.field_types import (
    FIELD_TYPES,
    MAP_VALUE_TYPES,
    normalise_postgres_type,
)
from flusso.domain.config.index_schema import joins, shapes
from flusso.domain.config.index_schema.aggregates import aggregate
from flusso.domain.config.index_schema.filters import filters_shape
from flusso.domain.config.index_schema.relations import Scope, through
from flusso.domain.config.index_schema.report import (
    BAD,
    CONVERT,
    PARSE,
    Report,
    Site,
    is_null,
    unknown_key,
)
from flusso.domain.config.index_schema.rules import (
    KIND_SIBLINGS,
    backticked,
    kind_of,
)
from flusso.domain.config.model import (
    TYPE_KEYS,
    ColumnSource,
    Constant,
    CustomType,
    Field,
    GeoSource,
    GroupSource,
    MapType,
    Source,
    Value,
)
from flusso.domain.config.suggest import did_you_mean
from flusso.domain.mapping import enum_sort_name

_Head = tuple[str, str, dict[str, YNode], bool]  # (type key, name, keys, a key was bad)


class FieldLoader:
    """Converts the field lists of one schema; remembers ordered enums' sort names, which
    must not collide across the whole document."""

    def __init__(self, report: Report) -> None:
        self._report = report
        self._enum_sorts: dict[str, str] = {}

    def fields(self, items: list[YNode], scope: Scope) -> object:
        """Convert one level of fields; BAD if any of them failed."""
        out: list[Field] = []
        seen: dict[str, int] = {}
        ok = True
        for position, item in enumerate(items):
            name, site, field = self._field(item, position, scope)
            if name is not None:
                if name in seen:
                    self._report.add(CONVERT, site, f"duplicate field name `{name}` at this "
                                     f"level (also at fields[{seen[name]}])",
                                     hint="rename one of them; document keys must be unique")
                    ok = False
                else:
                    seen[name] = position
            if field is None:
                ok = False
            else:
                out.append(field)
        return tuple(out) if ok else BAD

    def _field(self, item: YNode, position: int, scope: Scope) -> tuple[
        str | None, Site, Field | None
    ]:
        label = f"{scope.path}.fields[{position}]" if scope.path else f"fields[{position}]"
        site = Site(label, line=item.line)
        head = self._head(item, site)
        if head is None:
            return None, site, None
        tag, name, keys, bad_key = head
        dotted = f"{scope.path}.{name}" if scope.path else name
        site = Site(f"{dotted}: `{tag}` field `{name}`", line=item.line)
        before = self._report.count()
        body = self._body(tag, keys, site)
        kind = kind_of(tag)
        children_scope = Scope(relations_ok=scope.relations_ok or kind == "join", path=dotted)
        if bad_key or self._report.count() != before:
            children = body.get("fields")
            if isinstance(children, list):
                self.fields(children, children_scope)  # their own problems still count
            return name, site, None
        source = self._convert(tag, kind, name, dotted, body, site, scope, children_scope)
        if source is None:
            return name, site, None
        options: dict[str, Value] = dict(body.get("options", {}))
        row = FIELD_TYPES.get(tag)
        for option, value in (row.options if row is not None else {}).items():
            options.setdefault(option, value)  # the type's mapping options, unless set
        return name, site, Field(name=name, source=source, options=options)

    def _head(self, item: YNode, site: Site) -> _Head | None:
        """The field's one type key and its name, or None once reported."""
        report = self._report
        if not isinstance(item, YMap):
            report.add(PARSE, site, f"expected a field mapping like `- keyword: email`, found "
                       f"{describe(item)}")
            return None
        keys, bad_key = shapes.string_keys(report, item, site)
        tags = [k for k in keys if k in TYPE_KEYS]
        if not tags:
            listed = f" (this field has keys: {backticked(list(keys))})" if keys else ""
            suggestion = next(
                (s for s in (did_you_mean(k, TYPE_KEYS) for k in keys) if s), None)
            report.add(PARSE, site, f"field is missing a type tag{listed}; expected one key "
                       f"naming its type: {backticked(TYPE_KEYS)}",
                       hint=suggestion or "start the item with its type, e.g. "
                                          "`- keyword: email`")
            return None
        if len(tags) > 1:
            report.add(PARSE, site, f"field has more than one type tag: `{tags[0]}` and "
                       f"`{tags[1]}`", hint="keep one type key; its value is the field name")
            return None
        tag = tags[0]
        name = shapes.field_name(
            report, keys[tag], site, f"`{tag}` (the field's name)",
            hint="use letters, digits and underscores, not starting with a digit; "
                 "set `column:` to read a differently named column",
        )
        return None if name is BAD else (tag, name, keys, bad_key)

    # -- siblings (parse stage) ----------------------------------------------------

    def _body(self, tag: str, keys: dict[str, YNode], site: Site) -> dict[str, object]:
        """The field's sibling values by key: unknown and missing siblings are reported."""
        kind = kind_of(tag)
        allowed, required = KIND_SIBLINGS[kind]
        body: dict[str, object] = {}
        what = f"expected one of {backticked(allowed)}"
        for key, node in keys.items():
            if key == tag:
                continue
            if key not in allowed:
                suggestion = did_you_mean(key, allowed)
                self._report.add(PARSE, site, unknown_key(key, suggestion, what),
                                 hint=suggestion or f"remove `{key}`")
                continue
            if key == "required" and kind == "join" and is_null(node):
                continue  # a join's `required: null` means absent
            value = _SIBLINGS.get(key, _any_value)(self._report, node, site, key)
            if value is not BAD and value is not None:
                body[key] = value
        for key in required:
            if key not in keys:
                self._report.add(PARSE, site, f"missing key `{key}`",
                                 hint=f"add `{key}:` to this field")
        return body

    # -- conversion -------------------------------------------------------------------

    def _convert(
        self, tag: str, kind: str, name: str, dotted: str, body: dict[str, object],
        site: Site, scope: Scope, children_scope: Scope,
    ) -> Source | None:
        if kind in ("scalar", "enum", "custom"):
            return self._column_field(tag, kind, name, dotted, body, site)
        if kind == "geo":
            return self._geo(name, body, site)
        if kind == "map":
            return self._map(name, body, site)
        if kind == "object":
            fields = self.fields(body["fields"], children_scope)
            return None if fields is BAD else GroupSource(fields=fields)
        if kind == "constant":
            value = body.get("value")
            return Constant(to_value(value) if value is not None else None)
        if kind == "join":
            # The join's fields and filters are checked even when the join itself is wrong.
            join_kind = joins.join_kind(self._report, tag, name, body, site, scope)
            fields = self.fields(body["fields"], children_scope)
            return joins.build_join(self._report, tag, join_kind, body, fields)
        return aggregate(self._report, tag, body, site, scope)

    def _column_field(
        self, tag: str, kind: str, name: str, dotted: str, body: dict[str, object], site: Site,
    ) -> ColumnSource | None:
        variants: tuple[str, ...] = ()
        if kind == "enum":
            variants = tuple(body.get("variants", ()))
            if not self._variants_ok(variants, site):
                return None
        field_type: object = tag
        if kind == "custom":
            field_type = self._custom_type(body, site)
            if field_type is None:
                return None
        default = self._default(body.get("default"), site)
        if default is BAD:
            return None
        if variants and not self._enum_sort_free(dotted, site):
            return None
        return ColumnSource(
            column=body.get("column") or name.lower(),
            type=field_type,
            nullable=not body["required"],
            transforms=tuple(body.get("transforms", ())),
            default=default,
            variants=variants,
        )

    def _custom_type(self, body: dict[str, object], site: Site) -> CustomType | None:
        postgres = tuple(normalise_postgres_type(p) for p in body["postgres"])
        if not postgres or not all(postgres):
            self._report.add(CONVERT, site, "`postgres` must list at least one non-blank "
                             "Postgres type name", hint="e.g. `postgres: [tsvector]`")
            return None
        if not body["opensearch"].strip():
            self._report.add(CONVERT, site, "`opensearch` must name an OpenSearch field type",
                             hint="e.g. `opensearch: keyword`")
            return None
        return CustomType(postgres=postgres, opensearch=body["opensearch"])

    def _enum_sort_free(self, dotted: str, site: Site) -> bool:
        """Whether this ordered enum's sort normalizer name is its own (then it is taken)."""
        sort_name = enum_sort_name(dotted)
        other = self._enum_sorts.get(sort_name)
        if other is not None:
            self._report.add(CONVERT, site, f"the sort normalizer name `{sort_name}` of this "
                             f"ordered enum collides with the one of `{other}`",
                             hint="rename one of the fields")
            return False
        self._enum_sorts[sort_name] = dotted
        return True

    def _variants_ok(self, variants: tuple[str, ...], site: Site) -> bool:
        seen: set[str] = set()
        for variant in variants:
            if not variant.strip() or "=>" in variant or "\n" in variant:
                self._report.add(CONVERT, site, f"the `enum` variant {variant!r} is not "
                                 "allowed: a variant must be non-blank and free of `=>` and "
                                 "newlines", hint="variants become OpenSearch char-filter rules")
                return False
            if variant in seen:
                self._report.add(CONVERT, site, f"an `enum` field lists the variant "
                                 f"`{variant}` more than once", hint="remove the repeated variant")
                return False
            seen.add(variant)
        return True

    def _default(self, node: object, site: Site) -> object:
        if node is None:
            return None
        if isinstance(node, YSeq | YMap):
            got = "array" if isinstance(node, YSeq) else "object"
            self._report.add(CONVERT, site, f"a `default` must be a scalar value (string, "
                             f"number or boolean); an `{got}` default is not supported")
            return BAD
        return to_value(node)

    def _geo(self, name: str, body: dict[str, object], site: Site) -> Source | None:
        lat, lon, column = body.get("lat"), body.get("lon"), body.get("column")
        nullable = not body["required"]
        if lat is not None and lon is not None and column is None:
            return GeoSource(lat=lat, lon=lon, nullable=nullable)
        if lat is None and lon is None:
            return ColumnSource(column=column or name.lower(), type="geo_point",
                                nullable=nullable)
        self._report.add(CONVERT, site, "a `geo` field needs either both `lat` and `lon` (two "
                         "columns) or a single `column` holding a combined value — not a mix",
                         hint="write `lat:` and `lon:`, or only `column:`")
        return None

    def _map(self, name: str, body: dict[str, object], site: Site) -> Source | None:
        values = body["values"]
        if values not in MAP_VALUE_TYPES:
            got = "geo" if values == "geo_point" else values
            self._report.add(CONVERT, site, f"a `map` field's `values` must be a leaf type "
                             f"(`{got}` is not one): text/identifier, keyword/enum/uuid, a "
                             "number (short, integer, long, float, double, decimal) or "
                             "date/timestamp", hint="use `json` for arbitrary nested values")
            return None
        return ColumnSource(column=body.get("column") or name.lower(), type=MapType(values),
                            nullable=not body["required"])


# -- sibling readers: (report, node, site, key) → value, None (absent) or BAD ----------

_Reader = Callable[[Report, YNode, Site, str], object]


def _any_value(report: Report, node: YNode, site: Site, key: str) -> object:
    return node  # `value` of a constant: any YAML, null included


def _required(report: Report, node: YNode, site: Site, key: str) -> object:
    if isinstance(node, YScalar) and isinstance(node.value, bool):
        return node.value
    report.add(PARSE, site, f"`{key}` must be `true` or `false`, found {describe(node)}")
    return BAD


def _options(report: Report, node: YNode, site: Site, key: str) -> object:
    if isinstance(node, YMap):
        return to_value(node)
    report.add(PARSE, site, f"`{key}` must be a mapping of OpenSearch mapping parameters, "
               f"found {describe(node)}")
    return BAD


def _default(report: Report, node: YNode, site: Site, key: str) -> object:
    return None if is_null(node) else node


def _opensearch(report: Report, node: YNode, site: Site, key: str) -> object:
    if isinstance(node, YScalar) and isinstance(node.value, str):
        return node.value
    report.add(PARSE, site, f"`{key}` must be a string (the OpenSearch field type), "
               f"found {describe(node)}")
    return BAD


def _optional_type_name(report: Report, node: YNode, site: Site, key: str) -> object:
    return None if is_null(node) else shapes.type_name(report, node, site, key)


def _field_list(report: Report, node: YNode, site: Site, key: str) -> object:
    return shapes.items(report, node, site, key, "fields", hint="write `fields: []` for none")


_SIBLINGS: dict[str, _Reader] = {
    "column": shapes.pg_ident,
    "lat": shapes.pg_ident,
    "lon": shapes.pg_ident,
    "foreign_key": shapes.pg_ident,
    "table": partial(shapes.pg_ident, required=True),
    "primary_key": partial(shapes.pg_ident, required=True),
    "required": _required,
    "options": _options,
    "transforms": shapes.transforms,
    "default": _default,
    "variants": shapes.string_list,
    "postgres": shapes.string_list,
    "opensearch": _opensearch,
    "values": shapes.type_name,
    "value_type": _optional_type_name,
    "element_type": _optional_type_name,
    "fields": _field_list,
    "through": through,
    "filters": filters_shape,
    "order_by": joins.order_by,
    "limit": joins.limit,
}
"""How each sibling key's value is read; `value` (of a constant) takes any YAML."""
