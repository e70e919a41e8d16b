"""Load one `*.schema.yml` into an `IndexSchema` (§5 of the language spec).

Parses text it is handed; reading the file is the caller's job. Every problem is a
`ConfigError` whose message starts with the file and index, names the field path and
says how to fix it. Several problems are reported together, in the order of §5.8:
top-level keys, then the shape of everything (type keys, sibling keys, identifiers,
filters, type names), then the version, then the conversion rules in document order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from flusso.domain.config._schema_rules import (
    FILTER_FORMS,
    FILTER_KEYS,
    JOIN_KEY_HINTS,
    JOIN_KEY_SIBLING,
    KIND_SIBLINGS,
    MAP_VALUE_TYPES,
    ORDER_BY_KEYS,
    PARSED_TYPE_NAMES,
    REQUIRED_TOP_KEYS,
    SOFT_DELETE_KEYS,
    SUPPORTED_VERSIONS,
    THROUGH_KEYS,
    TOP_KEYS,
    backticked,
    enum_sort_name,
    field_name_problem,
    kind_of,
    normalise_postgres_type,
    pg_identifier_problem,
)
from flusso.domain.config._yaml12 import (
    YamlSyntaxError,
    YMap,
    YNode,
    YScalar,
    YSeq,
    describe,
    parse_yaml12,
    scalar_text,
    to_value,
)
from flusso.domain.config.model import (
    NULL_OPS,
    TRANSFORMS,
    TYPE_KEYS,
    TYPE_NAMES,
    VALUE_OPS,
    Aggregate,
    AggregateKey,
    BelongsTo,
    ColumnSource,
    Comparison,
    Constant,
    CustomType,
    Field,
    Filter,
    ForeignKey,
    GeoSource,
    GroupSource,
    HasMany,
    HasOne,
    IndexSchema,
    Join,
    JoinKind,
    ManyToMany,
    MapType,
    NullCheck,
    OrderBy,
    RawFilter,
    SoftDelete,
    Source,
    Through,
    Value,
)
from flusso.domain.config.suggest import did_you_mean
from flusso.domain.errors import ConfigError

__all__ = ["parse_index_schema", "soft_delete_column"]

# Problems are sorted by stage (stable, so walk order is kept inside a stage).
_TOP = 0
_PARSE = 1
_VERSION = 2
_CONVERT = 3

_BAD = object()  # a value whose problem has already been recorded
_TO_MANY = ("has_many", "many_to_many")
_LINE_BREAK = re.compile(r"\r\n|[\n\r\x85\u2028\u2029]")


def parse_index_schema(text: str, *, path: str, index: str) -> IndexSchema:
    """Parse, validate and convert one schema file's text. Raises ConfigError."""
    loader = _Loader(text, path=path, index=index)
    try:
        root = parse_yaml12(text)
    except YamlSyntaxError as exc:
        raise loader.syntax_error(exc) from None
    return loader.load(root)


def soft_delete_column(schema: IndexSchema) -> str | None:
    """The root-row column that marks a row deleted, resolving `soft_delete.field` (R-19)."""
    if schema.soft_delete is None:
        return None
    if schema.soft_delete.kind == "column":
        return schema.soft_delete.name
    source = _root_column_field(schema.fields, schema.soft_delete.name)
    return source.column if source is not None else None


def _root_column_field(fields: Sequence[Field], name: str) -> ColumnSource | None:
    """Depth-first through the root row (top level and objects, never joins)."""
    for field in fields:
        if field.name == name and isinstance(field.source, ColumnSource):
            return field.source
        if isinstance(field.source, GroupSource):
            found = _root_column_field(field.source.fields, name)
            if found is not None:
                return found
    return None


@dataclass(frozen=True)
class _Site:
    """Where a problem is: the message's location label and how to show the position."""

    where: str  # "" at top level
    line: int | None = None  # field errors: appended as "(line L)"
    snippet: bool = False  # syntax and top-level errors: the line text and a caret

    def child(self, label: str, node: YNode) -> _Site:
        where = f"{self.where}: {label}" if self.where else label
        return _Site(where, line=node.line)


@dataclass(frozen=True)
class _Scope:
    """What the fields at one level can see: the current primary key, and whether
    relations are allowed (the root row needs a `primary_key` for them)."""

    pk: str | None
    relations_ok: bool
    path: str  # dotted path of the enclosing field, "" at root


@dataclass(frozen=True)
class _PendingComparison:
    """A comparison filter whose value is checked in the conversion stage (S24)."""

    column: str
    op: str
    value: YNode | None
    site: _Site


_PendingFilter = RawFilter | NullCheck | _PendingComparison


class _Loader:
    def __init__(self, text: str, *, path: str, index: str) -> None:
        self._path = path
        self._index = index
        self._lines = _LINE_BREAK.split(text)
        self._problems: list[tuple[int, int, ConfigError]] = []
        self._enum_sorts: dict[str, str] = {}

    # -- reporting ----------------------------------------------------------

    @property
    def _prefix(self) -> str:
        return f"{self._path} (index {self._index})"

    def _add(
        self, stage: int, site: _Site, detail: str, *, node: YNode | None = None,
        hint: str | None = None,
    ) -> None:
        message = f"{self._prefix}: {site.where}: {detail}" if site.where else (
            f"{self._prefix}: {detail}"
        )
        if site.snippet and node is not None:
            message += "\n" + self._snippet(node.line, node.column)
        elif site.line is not None:
            message += f" (line {site.line})"
        self._problems.append((stage, len(self._problems), ConfigError(message, hint=hint)))

    def _snippet(self, line: int, column: int) -> str:
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
            f"{self._prefix}: {exc.message}\n{self._snippet(exc.line, exc.column)}", hint=hint,
        )

    def _count(self) -> int:
        return len(self._problems)

    # -- top level ----------------------------------------------------------

    def load(self, root: YNode | None) -> IndexSchema:
        if root is None:
            raise ConfigError(
                f"{self._prefix}: the schema file is empty; expected a mapping with "
                "`version`, `table` and `fields`",
                hint="start from `version: 1`, `table: <table>`, `fields: []`",
            )
        top = _Site("", snippet=True)
        if not isinstance(root, YMap):
            self._add(_TOP, top, f"expected a mapping of schema keys, found {describe(root)}",
                      node=root, hint="a schema file starts with `version: 1` and `table: …`")
            raise self._collected()
        keys = self._top_keys(root, top)

        version_node = keys.get("version")
        if version_node is not None:
            self._version(version_node, top)
        table = self._pg_ident(keys.get("table"), top, "table", required=True)
        db_schema = self._pg_ident(keys.get("schema"), top, "schema")
        primary_key = self._pg_ident(keys.get("primary_key"), top, "primary_key")
        doc_id = keys.get("doc_id")
        soft_delete = self._soft_delete_shape(keys.get("soft_delete"))
        root_filters = self._filters_shape(keys.get("filters"), _Site("", line=None), "filters")
        field_nodes = self._fields_shape(keys.get("fields"), top, "fields")

        if doc_id is not None and not _is_null(doc_id):
            self._add(_CONVERT, top, "`doc_id` is not supported yet", node=doc_id,
                      hint="remove `doc_id`; the document `_id` always comes from `primary_key`")
        soft_delete_when = None
        if soft_delete is not _BAD and soft_delete is not None:
            soft_delete_when = self._convert_filters(soft_delete[2])
        filters = self._convert_filters(root_filters)

        pk = primary_key if isinstance(primary_key, str) else None
        scope = _Scope(pk=pk, relations_ok=pk is not None or primary_key is _BAD, path="")
        fields = self._fields(field_nodes, scope) if field_nodes is not _BAD else _BAD

        result_soft_delete = None
        if soft_delete is not _BAD and soft_delete is not None:
            result_soft_delete = self._finish_soft_delete(soft_delete, soft_delete_when, fields)

        if self._problems:
            raise self._collected()
        return IndexSchema(
            table=table,
            fields=fields,
            db_schema=db_schema if db_schema is not None else "public",
            primary_key=primary_key,
            soft_delete=result_soft_delete,
            filters=filters,
            version=1,
        )

    def _collected(self) -> ConfigError:
        ordered = [problem for _, _, problem in sorted(self._problems, key=lambda p: p[:2])]
        return ConfigError.collect(ordered)

    def _top_keys(self, root: YMap, top: _Site) -> dict[str, YNode]:
        keys: dict[str, YNode] = {}
        expected = f"expected one of {backticked(TOP_KEYS)}"
        for key, value in root.entries:
            name = key.value if isinstance(key, YScalar) else None
            if isinstance(name, str) and name in TOP_KEYS:
                keys[name] = value
                continue
            label = key.text if isinstance(key, YScalar) else "<" + describe(key) + ">"
            suggestion = did_you_mean(name, TOP_KEYS) if isinstance(name, str) else None
            self._add(_TOP, top, _unknown_key(label, suggestion, expected), node=key,
                      hint=suggestion or "remove the key")
        for name in REQUIRED_TOP_KEYS:
            if name not in keys:
                self._add(_TOP, top, f"missing key `{name}`", node=root,
                          hint=f"add `{name}:` at the top level")
        return keys

    def _version(self, node: YNode, top: _Site) -> None:
        value = node.value if isinstance(node, YScalar) else None
        if not isinstance(value, int) or isinstance(value, bool):
            self._add(_PARSE, top, f"`version` must be an integer, found {describe(node)}",
                      node=node, hint="write `version: 1`")
        elif value not in SUPPORTED_VERSIONS:
            self._add(_VERSION, top,
                      f"unsupported schema version {value}; supported versions: 1",
                      node=node, hint="write `version: 1`")

    # -- shapes shared by several places -------------------------------------

    def _pg_ident(
        self, node: YNode | None, site: _Site, key: str, *, required: bool = False,
    ) -> object:
        """A normalised Postgres identifier, None when absent, or _BAD."""
        if node is None or (_is_null(node) and not required):
            return None
        if not isinstance(node, YScalar) or not isinstance(node.value, str):
            self._add(_PARSE, site,
                      f"`{key}` must be a string (a Postgres identifier), found {describe(node)}",
                      node=node)
            return _BAD
        value, problem = pg_identifier_problem(node.value)
        if problem is not None:
            self._add(_PARSE, site,
                      f"invalid Postgres identifier {node.value!r} in `{key}`: it {problem}",
                      node=node,
                      hint="use lowercase letters, digits and underscores, not starting "
                           "with a digit (at most 63 characters)")
            return _BAD
        return value

    def _filters_shape(self, node: YNode | None, site: _Site, key: str) -> object:
        """Parse-stage check of a filter list: list of pending filters, None, or _BAD."""
        if node is None or _is_null(node):
            return None
        if not isinstance(node, YSeq):
            self._add(_PARSE, site.child(f"`{key}`", node),
                      f"expected a list of filters, found {describe(node)}", node=node)
            return _BAD
        # Bad items stay in place as _BAD so the good ones still get their S24 checks.
        return [
            self._filter_shape(item, site.child(f"{key}[{position}]", item))
            for position, item in enumerate(node.items)
        ]

    def _filter_shape(self, node: YNode, site: _Site) -> object:
        if not isinstance(node, YMap):
            self._add(_PARSE, site, f"expected a filter mapping, found {describe(node)}; "
                      f"{FILTER_FORMS}")
            return _BAD
        keys, bad_key = self._string_keys(node, site)
        if bad_key:
            return _BAD
        if "raw" in keys:
            others = [k for k in keys if k != "raw"]
            if others:
                self._add(_PARSE, site, f"a `raw` filter takes no other keys (found "
                          f"{backticked(others)}); {FILTER_FORMS}")
                return _BAD
            raw = keys["raw"]
            if not isinstance(raw, YScalar) or not isinstance(raw.value, str) \
                    or not raw.value.strip():
                self._add(_PARSE, site, f"`raw` must be a non-empty SQL string, found "
                          f"{describe(raw)}")
                return _BAD
            return RawFilter(raw.value.strip())
        unknown = [k for k in keys if k not in FILTER_KEYS]
        if unknown:
            suggestion = did_you_mean(unknown[0], FILTER_KEYS)
            self._add(_PARSE, site, _unknown_key(unknown[0], suggestion, FILTER_FORMS),
                      hint=suggestion)
            return _BAD
        missing = [k for k in ("column", "op") if k not in keys]
        if missing:
            self._add(_PARSE, site, f"filter is missing {backticked(missing)}; {FILTER_FORMS}")
            return _BAD
        op_node = keys["op"]
        op = op_node.value if isinstance(op_node, YScalar) else None
        if not isinstance(op, str) or op not in (*VALUE_OPS, *NULL_OPS):
            label = op if isinstance(op, str) else describe(op_node)
            suggestion = did_you_mean(op, (*VALUE_OPS, *NULL_OPS)) if isinstance(op, str) \
                else None
            self._add(_PARSE, site, f"unknown filter op `{label}`; expected one of "
                      f"{backticked((*VALUE_OPS, *NULL_OPS))}", hint=suggestion)
            return _BAD
        column = self._pg_ident(keys["column"], site, "column", required=True)
        if column is _BAD:
            return _BAD
        if op in NULL_OPS:
            if "value" in keys:
                self._add(_PARSE, site, f"op `{op}` takes no `value`; {FILTER_FORMS}",
                          hint="remove `value`")
                return _BAD
            return NullCheck(column=column, op=op)
        return _PendingComparison(column=column, op=op, value=keys.get("value"), site=site)

    def _convert_filters(self, pending: object) -> tuple[Filter, ...] | None:
        if pending is None or pending is _BAD:
            return None
        out: list[Filter] = []
        for item in pending:
            if item is _BAD:
                continue
            if isinstance(item, _PendingComparison):
                converted = self._comparison(item)
                if converted is None:
                    continue
                out.append(converted)
            else:
                out.append(item)
        return tuple(out)

    def _comparison(self, item: _PendingComparison) -> Comparison | None:
        op, node, site = item.op, item.value, item.site
        if node is None or _is_null(node):
            self._add(_CONVERT, site, f"filter op '{op}' requires a value",
                      hint="add `value: …`")
            return None
        if op in ("in", "not_in", "between"):
            if not isinstance(node, YSeq):
                self._add(_CONVERT, site, f"filter op '{op}' requires a sequence value, found "
                          f"{describe(node)}", hint="write the values as a list, e.g. `[a, b]`")
                return None
            if op == "between" and len(node.items) != 2:
                self._add(_CONVERT, site, "filter op 'between' requires exactly 2 values, "
                          f"got {len(node.items)}", hint="write `value: [low, high]`")
                return None
            if not node.items:
                self._add(_CONVERT, site, f"filter op '{op}' requires at least one value; "
                          "an empty list is not valid SQL", hint="remove the filter")
                return None
            nested = [i for i in node.items if not isinstance(i, YScalar)]
            if nested:
                self._add(_CONVERT, site, f"filter op '{op}' values must be scalars, found "
                          f"{describe(nested[0])} in the list")
                return None
            values = tuple(scalar_text(i.value) for i in node.items)  # type: ignore[union-attr]
            return Comparison(column=item.column, op=op, values=values)
        if not isinstance(node, YScalar):
            self._add(_CONVERT, site, f"filter op '{op}' takes a single scalar value, found "
                      f"{describe(node)}")
            return None
        return Comparison(column=item.column, op=op, values=(scalar_text(node.value),))

    def _string_keys(self, node: YMap, site: _Site) -> tuple[dict[str, YNode], bool]:
        keys: dict[str, YNode] = {}
        bad = False
        for key, value in node.entries:
            if isinstance(key, YScalar) and isinstance(key.value, str):
                keys[key.value] = value
            else:
                label = key.text if isinstance(key, YScalar) else describe(key)
                self._add(_PARSE, site, f"keys must be strings, found `{label}`")
                bad = True
        return keys, bad

    def _fields_shape(self, node: YNode | None, site: _Site, key: str) -> object:
        if node is None:
            return _BAD  # reported as a missing key
        if not isinstance(node, YSeq):
            self._add(_PARSE, site, f"`{key}` must be a list of fields, found {describe(node)}", node=node,
                      hint="write `fields: []` for none, or `- keyword: name` items")
            return _BAD
        return node.items

    # -- soft delete -----------------------------------------------------------

    def _soft_delete_shape(self, node: YNode | None) -> object:
        """(kind, name, pending when) or None or _BAD."""
        if node is None or _is_null(node):
            return None
        site = _Site("soft_delete", line=node.line)
        if not isinstance(node, YMap):
            self._add(_PARSE, site, f"expected a mapping with `column` or `field`, found "
                      f"{describe(node)}")
            return _BAD
        keys, bad = self._string_keys(node, site)
        if self._unknown_keys(keys, SOFT_DELETE_KEYS, site,
                              f"expected one of {backticked(SOFT_DELETE_KEYS)}"):
            bad = True
        has_column = "column" in keys
        has_field = "field" in keys
        if has_column == has_field:
            self._add(_PARSE, site, "needs exactly one of `column` (a column of the root "
                      "table) or `field` (a mapped root field)",
                      hint="keep either `column:` or `field:`")
            bad = True
        when = self._filters_shape(keys.get("when"), site, "when")
        if bad or when is _BAD or (isinstance(when, list) and _BAD in when):
            return _BAD
        if has_column:
            column = self._pg_ident(keys["column"], site, "column", required=True)
            return _BAD if column is _BAD else ("column", column, when)
        name = self._field_name(keys["field"], site, "field")
        return _BAD if name is _BAD else ("field", name, when)

    def _finish_soft_delete(
        self, shape: tuple[str, str, object], when: tuple[Filter, ...] | None, fields: object,
    ) -> SoftDelete | None:
        kind, name, _ = shape
        if kind == "field" and fields is not _BAD and _root_column_field(fields, name) is None:
            self._add(_CONVERT, _Site("soft_delete"),
                      f"`field` `{name}` is not a column-backed field of the root row "
                      "(top level or inside an `object`)",
                      hint="name a root scalar field, or use `column:` with the root "
                           "table's column")
            return None
        return SoftDelete(kind=kind, name=name, when=when)

    def _field_name(self, node: YNode, site: _Site, key: str) -> object:
        if not isinstance(node, YScalar) or not isinstance(node.value, str):
            self._add(_PARSE, site, f"`{key}` must be a field name (a string), found "
                      f"{describe(node)}")
            return _BAD
        value, problem = field_name_problem(node.value)
        if problem is not None:
            self._add(_PARSE, site, f"invalid field name {node.value!r}: it {problem}",
                      hint="use letters, digits and underscores, not starting with a digit")
            return _BAD
        return value

    # -- fields --------------------------------------------------------------

    def _fields(self, items: list[YNode], scope: _Scope) -> object:
        """Convert one level of fields; _BAD if any of them failed."""
        out: list[Field] = []
        seen: dict[str, int] = {}
        ok = True
        for position, item in enumerate(items):
            name, site, field = self._field(item, position, scope)
            if name is not None:
                if name in seen:
                    self._add(_CONVERT, site, f"duplicate field name `{name}` at this level "
                              f"(also at fields[{seen[name]}])",
                              hint="rename one of them; document keys must be unique")
                    ok = False
                else:
                    seen[name] = position
            if field is None:
                ok = False
            else:
                out.append(field)
        return tuple(out) if ok else _BAD

    def _field(self, item: YNode, position: int, scope: _Scope) -> tuple[
        str | None, _Site, Field | None
    ]:
        label = f"{scope.path}.fields[{position}]" if scope.path else f"fields[{position}]"
        site = _Site(label, line=item.line)
        if not isinstance(item, YMap):
            self._add(_PARSE, site, f"expected a field mapping like `- keyword: email`, found "
                      f"{describe(item)}")
            return None, site, None
        keys, bad_key = self._string_keys(item, site)
        tags = [k for k in keys if k in TYPE_KEYS]
        if not tags:
            listed = f" (this field has keys: {backticked(list(keys))})" if keys else ""
            suggestion = next(
                (s for s in (did_you_mean(k, TYPE_KEYS) for k in keys) if s), None)
            self._add(_PARSE, site, f"field is missing a type tag{listed}; expected one key "
                      f"naming its type: {backticked(TYPE_KEYS)}",
                      hint=suggestion or "start the item with its type, e.g. "
                                         "`- keyword: email`")
            return None, site, None
        if len(tags) > 1:
            self._add(_PARSE, site, f"field has more than one type tag: `{tags[0]}` and "
                      f"`{tags[1]}`", hint="keep one type key; its value is the field name")
            return None, site, None
        tag = tags[0]
        name_node = keys[tag]
        if not isinstance(name_node, YScalar) or not isinstance(name_node.value, str):
            self._add(_PARSE, site, f"`{tag}` field: the value of `{tag}` is the field name "
                      f"and must be a string, found {describe(name_node)}")
            return None, site, None
        name, problem = field_name_problem(name_node.value)
        if problem is not None:
            self._add(_PARSE, site, f"`{tag}` field {name_node.value!r}: invalid field name: "
                      f"it {problem}",
                      hint="use letters, digits and underscores, not starting with a digit; "
                           "set `column:` to read a differently named column")
            return None, site, None

        dotted = f"{scope.path}.{name}" if scope.path else name
        site = _Site(f"{dotted}: `{tag}` field `{name}`", line=item.line)
        before = self._count()
        body = self._body(tag, keys, site)
        parsed_ok = not bad_key and self._count() == before

        kind = kind_of(tag)
        children_scope = _Scope(pk=scope.pk, relations_ok=scope.relations_ok, path=dotted)
        if kind == "join":
            join_pk = body.get("primary_key")
            children_scope = _Scope(pk=join_pk if isinstance(join_pk, str) else None,
                                    relations_ok=True, path=dotted)
        children = body.get("fields")
        if not parsed_ok:
            if isinstance(children, list):
                self._fields(children, children_scope)  # their own problems still count
            return name, site, None
        source = self._convert(tag, kind, name, dotted, body, site, scope, children_scope)
        if source is None:
            return name, site, None
        options: dict[str, Value] = dict(body.get("options", {}))
        if tag == "identifier":
            options.setdefault("analyzer", "flusso_code")
        if tag in ("map", "json"):
            # A json column's keys are not declared: without `dynamic: true` a strict
            # index refuses every document whose column holds keys (a deliberate
            # difference from upstream, where such a field is unusable).
            options.setdefault("dynamic", True)
        return name, site, Field(name=name, source=source, options=options)

    def _unknown_keys(
        self, keys: Iterable[str], allowed: Sequence[str], site: _Site, expected: str
    ) -> bool:
        """Report every key outside `allowed` (with a did-you-mean hint); True if any."""
        found = False
        for key in keys:
            if key not in allowed:
                suggestion = did_you_mean(key, allowed)
                self._add(_PARSE, site, _unknown_key(key, suggestion, expected), hint=suggestion)
                found = True
        return found

    def _body(self, tag: str, keys: dict[str, YNode], site: _Site) -> dict[str, object]:
        """Parse-stage checks of a field's siblings (S5, S6, S8–S11)."""
        kind = kind_of(tag)
        allowed, required = KIND_SIBLINGS[kind]
        body: dict[str, object] = {}
        what = f"expected one of {backticked(allowed)}"
        for key, node in keys.items():
            if key == tag:
                continue
            if key not in allowed:
                suggestion = did_you_mean(key, allowed)
                self._add(_PARSE, site, _unknown_key(key, suggestion, what),
                          hint=suggestion or f"remove `{key}`")
                continue
            value = self._sibling(kind, key, node, site)
            if value is not _BAD and value is not None:
                body[key] = value
        for key in required:
            if key not in keys:
                self._add(_PARSE, site, f"missing key `{key}`",
                          hint=f"add `{key}:` to this field")
        return body

    def _sibling(self, kind: str, key: str, node: YNode, site: _Site) -> object:
        """One sibling's value, None when written as null and null means absent, or _BAD."""
        if key in ("column", "lat", "lon", "foreign_key"):
            return self._pg_ident(node, site, key)
        if key in ("table", "primary_key"):
            return self._pg_ident(node, site, key, required=True)
        if key == "required":
            if kind == "join" and _is_null(node):
                return None
            if isinstance(node, YScalar) and isinstance(node.value, bool):
                return node.value
            self._add(_PARSE, site, f"`required` must be `true` or `false`, found "
                      f"{describe(node)}")
            return _BAD
        if key == "options":
            if isinstance(node, YMap):
                return to_value(node)
            self._add(_PARSE, site, f"`options` must be a mapping of OpenSearch mapping "
                      f"parameters, found {describe(node)}")
            return _BAD
        if key == "transforms":
            return self._transforms(node, site)
        if key == "default":
            return None if _is_null(node) else node
        if key in ("variants", "postgres"):
            return self._string_list(node, site, key)
        if key == "opensearch":
            if isinstance(node, YScalar) and isinstance(node.value, str):
                return node.value
            self._add(_PARSE, site, f"`opensearch` must be a string (the OpenSearch field "
                      f"type), found {describe(node)}")
            return _BAD
        if key in ("values", "value_type", "element_type"):
            if key != "values" and _is_null(node):
                return None
            return self._type_name(node, site, key)
        if key == "fields":
            if isinstance(node, YSeq):
                return node.items
            self._add(_PARSE, site, f"`fields` must be a list of fields, found "
                      f"{describe(node)}", hint="write `fields: []` for none")
            return _BAD
        if key == "through":
            return self._through(node, site)
        if key == "filters":
            return self._filters_shape(node, site, "filters")
        if key == "order_by":
            return self._order_by(node, site)
        if key == "limit":
            return self._limit(node, site)
        return node  # `value` of a constant: any YAML, null included

    def _transforms(self, node: YNode, site: _Site) -> object:
        if _is_null(node):
            return None
        if not isinstance(node, YSeq):
            self._add(_PARSE, site, f"`transforms` must be a list of {backticked(TRANSFORMS)}, "
                      f"found {describe(node)}")
            return _BAD
        out: list[str] = []
        for item in node.items:
            value = item.value if isinstance(item, YScalar) else None
            if not isinstance(value, str) or value not in TRANSFORMS:
                label = value if isinstance(value, str) else describe(item)
                suggestion = did_you_mean(value, TRANSFORMS) if isinstance(value, str) else None
                self._add(_PARSE, site, f"unknown transform `{label}`; expected one of "
                          f"{backticked(TRANSFORMS)}", hint=suggestion)
                return _BAD
            out.append(value)
        return tuple(out)

    def _string_list(self, node: YNode, site: _Site, key: str) -> object:
        if isinstance(node, YSeq) and all(
            isinstance(i, YScalar) and isinstance(i.value, str) for i in node.items
        ):
            return [i.value for i in node.items]  # type: ignore[union-attr]
        found = describe(node)
        if isinstance(node, YSeq):
            found = "a list holding " + describe(
                next(i for i in node.items if not (isinstance(i, YScalar)
                                                   and isinstance(i.value, str))))
        self._add(_PARSE, site, f"`{key}` must be a list of strings, found {found}",
                  hint="quote values YAML would read as numbers, booleans or null")
        return _BAD

    def _type_name(self, node: YNode, site: _Site, key: str) -> object:
        value = node.value if isinstance(node, YScalar) else None
        if isinstance(value, str) and value in PARSED_TYPE_NAMES:
            return value
        label = value if isinstance(value, str) else describe(node)
        suggestion = did_you_mean(value, TYPE_NAMES) if isinstance(value, str) else None
        self._add(_PARSE, site, f"`{key}`: unknown type `{label}`; expected one of "
                  f"{backticked(TYPE_NAMES)}", hint=suggestion)
        return _BAD

    def _through(self, node: YNode, site: _Site) -> object:
        if _is_null(node):
            return None
        here = site.child("through", node)
        if not isinstance(node, YMap):
            self._add(_PARSE, here, f"expected a mapping with {backticked(THROUGH_KEYS)}, "
                      f"found {describe(node)}")
            return _BAD
        keys, bad = self._string_keys(node, here)
        if self._unknown_keys(keys, THROUGH_KEYS, here, f"expected {backticked(THROUGH_KEYS)}"):
            bad = True
        parts: dict[str, object] = {}
        for key in THROUGH_KEYS:
            if key not in keys:
                self._add(_PARSE, here, f"missing key `{key}`",
                          hint="`through` needs `table`, `left_key` and `right_key`")
                bad = True
            else:
                parts[key] = self._pg_ident(keys[key], here, key, required=True)
        if bad or _BAD in parts.values():
            return _BAD
        return Through(table=parts["table"], left_key=parts["left_key"],
                       right_key=parts["right_key"])

    def _order_by(self, node: YNode, site: _Site) -> object:
        if _is_null(node):
            return None
        if not isinstance(node, YSeq):
            self._add(_PARSE, site, f"`order_by` must be a list of `{{column, direction}}`, "
                      f"found {describe(node)}")
            return _BAD
        out: list[OrderBy] = []
        ok = True
        for position, item in enumerate(node.items):
            here = site.child(f"order_by[{position}]", item)
            if not isinstance(item, YMap):
                self._add(_PARSE, here, f"expected a mapping like `{{column: created_at, "
                          f"direction: desc}}`, found {describe(item)}")
                ok = False
                continue
            keys, bad = self._string_keys(item, here)
            if self._unknown_keys(keys, ORDER_BY_KEYS, here,
                                  f"expected {backticked(ORDER_BY_KEYS)}"):
                bad = True
            if "column" not in keys:
                self._add(_PARSE, here, "missing key `column`")
                ok = False
                continue
            column = self._pg_ident(keys["column"], here, "column", required=True)
            direction = keys.get("direction")
            direction_value = None
            if direction is not None and not _is_null(direction):
                direction_value = direction.value if isinstance(direction, YScalar) else None
                if direction_value not in ("asc", "desc"):
                    self._add(_PARSE, here, f"`direction` must be `asc` or `desc`, found "
                              f"{describe(direction)}")
                    bad = True
            if bad or column is _BAD:
                ok = False
                continue
            out.append(OrderBy(column=column, direction=direction_value))
        return tuple(out) if ok else _BAD

    def _limit(self, node: YNode, site: _Site) -> object:
        if _is_null(node):
            return None
        value = node.value if isinstance(node, YScalar) else None
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63:
            return value
        self._add(_PARSE, site, f"`limit` must be a whole number ≥ 0, found {describe(node)}")
        return _BAD

    # -- conversion (S13–S24 and the additions) -------------------------------

    def _convert(
        self, tag: str, kind: str, name: str, dotted: str, body: dict[str, object],
        site: _Site, scope: _Scope, children_scope: _Scope,
    ) -> Source | None:
        if kind in ("scalar", "enum", "custom"):
            return self._column_field(tag, kind, name, dotted, body, site, scope)
        if kind == "geo":
            return self._geo(name, body, site, scope)
        if kind == "map":
            values = body["values"]
            if values not in MAP_VALUE_TYPES:
                got = "geo" if values == "geo_point" else values
                self._add(_CONVERT, site, f"a `map` field's `values` must be a leaf type "
                          f"(`{got}` is not one): text/identifier, keyword/enum/uuid, a number "
                          "(short, integer, long, float, double, decimal) or date/timestamp",
                          hint="use `json` for arbitrary nested values")
                return None
            column = body.get("column") or name.lower()
            return ColumnSource(
                column=column, type=MapType(values),
                nullable=not body["required"],
            )
        if kind == "object":
            fields = self._fields(body["fields"], children_scope)
            return None if fields is _BAD else GroupSource(fields=fields)
        if kind == "constant":
            value = body.get("value")
            return Constant(to_value(value) if value is not None else None)
        if kind == "join":
            return self._join(tag, name, body, site, scope, children_scope)
        return self._aggregate(tag, body, site, scope)

    def _relation_ok(self, tag: str, site: _Site, scope: _Scope) -> bool:
        """(addition) relations at the root row need the root `primary_key`."""
        if scope.relations_ok:
            return True
        self._add(_CONVERT, site, f"`{tag}` needs the root `primary_key`: related rows are "
                  "matched against the root row's key",
                  hint="add `primary_key: <column>` at the top level")
        return False

    def _column_field(
        self, tag: str, kind: str, name: str, dotted: str, body: dict[str, object],
        site: _Site, scope: _Scope,
    ) -> ColumnSource | None:
        variants: tuple[str, ...] = ()
        if kind == "enum":
            variants = tuple(body.get("variants", ()))
            if not self._variants_ok(variants, site):
                return None
        field_type: object = tag
        if kind == "custom":
            postgres = tuple(normalise_postgres_type(p) for p in body["postgres"])
            opensearch = body["opensearch"].strip()
            if not postgres or not all(postgres):
                self._add(_CONVERT, site, "`postgres` must list at least one non-blank "
                          "Postgres type name", hint="e.g. `postgres: [tsvector]`")
                return None
            if not opensearch:
                self._add(_CONVERT, site, "`opensearch` must name an OpenSearch field type",
                          hint="e.g. `opensearch: keyword`")
                return None
            field_type = CustomType(postgres=postgres, opensearch=body["opensearch"])
        default = self._default(body.get("default"), site)
        if default is _BAD:
            return None
        if variants:
            sort_name = enum_sort_name(dotted)
            other = self._enum_sorts.get(sort_name)
            if other is not None:
                self._add(_CONVERT, site, f"the sort normalizer name `{sort_name}` of this "
                          f"ordered enum collides with the one of `{other}`",
                          hint="rename one of the fields")
                return None
            self._enum_sorts[sort_name] = dotted
        column = body.get("column") or name.lower()
        return ColumnSource(
            column=column,
            type=field_type,
            nullable=not body["required"],
            transforms=tuple(body.get("transforms", ())),
            default=default,
            variants=variants,
        )

    def _variants_ok(self, variants: tuple[str, ...], site: _Site) -> bool:
        seen: set[str] = set()
        for variant in variants:
            if not variant.strip() or "=>" in variant or "\n" in variant:
                self._add(_CONVERT, site, f"the `enum` variant {variant!r} is not allowed: a "
                          "variant must be non-blank and free of `=>` and newlines",
                          hint="variants become OpenSearch char-filter rules")
                return False
            if variant in seen:
                self._add(_CONVERT, site, f"an `enum` field lists the variant `{variant}` "
                          "more than once", hint="remove the repeated variant")
                return False
            seen.add(variant)
        return True

    def _default(self, node: object, site: _Site) -> object:
        if node is None:
            return None
        if isinstance(node, YSeq | YMap):
            got = "array" if isinstance(node, YSeq) else "object"
            self._add(_CONVERT, site, f"a `default` must be a scalar value (string, number or "
                      f"boolean); an `{got}` default is not supported")
            return _BAD
        return to_value(node)

    def _geo(self, name: str, body: dict[str, object], site: _Site, scope: _Scope) -> Source | None:
        lat, lon, column = body.get("lat"), body.get("lon"), body.get("column")
        nullable = not body["required"]
        if lat is not None and lon is not None and column is None:
            return GeoSource(lat=lat, lon=lon, nullable=nullable)
        if lat is None and lon is None:
            column = column or name.lower()
            return ColumnSource(column=column, type="geo_point", nullable=nullable)
        self._add(_CONVERT, site, "a `geo` field needs either both `lat` and `lon` (two "
                  "columns) or a single `column` holding a combined value — not a mix",
                  hint="write `lat:` and `lon:`, or only `column:`")
        return None

    def _join(
        self, verb: str, name: str, body: dict[str, object], site: _Site, scope: _Scope,
        children: _Scope,
    ) -> Join | None:
        kind = self._join_kind(verb, name, body, site, scope)
        # The join's fields and filters are checked even when the join itself is wrong.
        fields = self._fields(body["fields"], children)
        pending = body.get("filters")
        filters = self._convert_filters(pending)
        if kind is None or fields is _BAD or (pending is not None and len(filters) != len(pending)):
            return None
        return Join(
            table=body["table"],
            kind=kind,
            primary_key=body["primary_key"],
            nullable=False if verb in _TO_MANY else not body.get("required", False),
            fields=fields,
            filters=filters,
            order_by=body.get("order_by"),
            limit=body.get("limit"),
        )

    def _join_kind(
        self, verb: str, name: str, body: dict[str, object], site: _Site, scope: _Scope,
    ) -> JoinKind | None:
        """S17–S19, then the root-key addition."""
        expected = JOIN_KEY_HINTS[verb]
        allowed_key = JOIN_KEY_SIBLING[verb]
        for sibling in ("column", "foreign_key", "through"):
            if sibling in body and sibling != allowed_key:
                self._add(_CONVERT, site, f"`{verb}` join does not take `{sibling}`; it takes "
                          f"{expected}", hint=f"replace `{sibling}` with `{allowed_key}`")
                return None
        if verb != "belongs_to" and allowed_key not in body:
            self._add(_CONVERT, site, f"`{verb}` join is missing its key: it takes {expected}",
                      hint=f"add `{allowed_key}:`")
            return None
        if verb == "belongs_to" and "order_by" in body:
            self._add(_CONVERT, site, "`belongs_to` join does not take `order_by` (it follows "
                      "the key to exactly one row)", hint="remove `order_by`")
            return None
        if verb in ("belongs_to", "has_one") and "limit" in body:
            self._add(_CONVERT, site, f"`{verb}` join does not take `limit` (a to-one join "
                      "selects one row)", hint="remove `limit`")
            return None
        if verb in _TO_MANY and "required" in body:
            self._add(_CONVERT, site, f"`{verb}` join does not take `required`: a to-many join "
                      "is always a non-null array (`[]` when no rows match)",
                      hint="remove `required`")
            return None
        if not self._relation_ok(verb, site, scope):
            return None
        if verb == "belongs_to":
            return BelongsTo(column=body.get("column") or name.lower())
        if verb == "has_one":
            return HasOne(foreign_key=body["foreign_key"])
        if verb == "has_many":
            return HasMany(foreign_key=body["foreign_key"])
        return ManyToMany(through=body["through"])

    def _aggregate(
        self, op: str, body: dict[str, object], site: _Site, scope: _Scope,
    ) -> Aggregate | None:
        column, value_type = body.get("column"), body.get("value_type")
        element_type = body.get("element_type")
        if element_type is not None and op != "ids":
            self._add(_CONVERT, site, "aggregate does not take `element_type` (only `ids` does)",
                      hint="remove `element_type`")
            return None
        if op in ("avg", "sum", "min", "max") and column is None:
            self._add(_CONVERT, site, f"aggregate op '{op}' requires a `column`",
                      hint="add `column:` naming the related table's column")
            return None
        if op in ("sum", "min", "max"):
            if value_type is None:
                self._add(_CONVERT, site, f"aggregate op '{op}' requires a `value_type` (its "
                          "result has the column's type)", hint="e.g. `value_type: decimal`")
                return None
            if value_type == "geo_point":
                self._add(_CONVERT, site, f"aggregate op '{op}' `value_type` must be a scalar "
                          "type — `geo_point` is not a valid aggregate result type")
                return None
        if op == "ids":
            for sibling in ("column", "value_type"):
                if sibling in body:
                    self._add(_CONVERT, site, f"aggregate op 'ids' does not take `{sibling}` "
                              "(it always collects the related table's primary key)",
                              hint=f"remove `{sibling}`")
                    return None
            if element_type is None:
                self._add(_CONVERT, site, "aggregate op 'ids' requires an `element_type` — the "
                          "type of each collected primary key", hint="e.g. `element_type: long`")
                return None
            if element_type == "geo_point":
                self._add(_CONVERT, site, "aggregate op 'ids' `element_type` must be a scalar "
                          "type — `geo_point` is not a valid element type")
                return None
        foreign_key, through = body.get("foreign_key"), body.get("through")
        if (foreign_key is None) == (through is None):
            self._add(_CONVERT, site, "aggregate must specify either `foreign_key` or `through`, "
                      "not both or neither",
                      hint="`foreign_key`: the related table's column pointing back; "
                           "`through`: a junction table")
            return None
        if not self._relation_ok(op, site, scope):
            return None
        key: AggregateKey = ForeignKey(foreign_key) if foreign_key is not None else through
        pending = body.get("filters")
        filters = self._convert_filters(pending)
        if pending is not None and len(filters) != len(pending):
            return None
        return Aggregate(
            table=body["table"], op=op, key=key, column=column, value_type=value_type,
            element_type=element_type, filters=filters,
        )


def _is_null(node: YNode) -> bool:
    return isinstance(node, YScalar) and node.value is None


def _unknown_key(key: str, suggestion: str | None, expected: str) -> str:
    if suggestion:
        return f"unknown key `{key}` — {suggestion} {expected[:1].upper()}{expected[1:]}"
    return f"unknown key `{key}`, {expected}"

