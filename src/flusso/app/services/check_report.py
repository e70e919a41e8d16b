"""What `flusso check` shows: the human report text and the JSON document (language spec §10.2–10.3).

Pure rendering — it returns strings and dicts and never prints. The offline
report has no diagnostics and no coverage; the online check passes both in.
Literal secrets never appear: URLs lose their password, other literals show `***`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flusso.app.ports import Coverage
from flusso.domain.config.model import (
    Aggregate,
    BelongsTo,
    ColumnSource,
    Comparison,
    ConnectionParts,
    Constant,
    CustomType,
    Deployment,
    Field,
    FieldType,
    Filter,
    ForeignKey,
    GeoSource,
    GroupSource,
    HasMany,
    HasOne,
    IndexSchema,
    Join,
    MapType,
    NullCheck,
    OpenSearchSinkConfig,
    RawFilter,
    Secret,
    SinkConfig,
    SoftDelete,
    Through,
)
from flusso.domain.config.secrets import redact_password
from flusso.domain.mapping import to_json
from flusso.domain.types import IndexMapping, ResolvedField
from flusso.domain.validation import Diagnostic

MASK = "***"
OFFLINE_BANNER = "skipped database validation — types and nullability not checked"


# ---------------------------------------------------------------------------
# Human report
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pen:
    """ANSI colour only when asked for; the caller decides (TTY and no NO_COLOR)."""

    color: bool = False

    def paint(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color and text else text

    def bold(self, text: str) -> str:
        return self.paint("1", text)

    def dim(self, text: str) -> str:
        return self.paint("2", text)

    def green(self, text: str) -> str:
        return self.paint("32", text)

    def yellow(self, text: str) -> str:
        return self.paint("33", text)

    def magenta(self, text: str) -> str:
        return self.paint("35", text)


def render_offline_human(
    deployment: Deployment,
    mappings: Sequence[IndexMapping],
    *,
    config_path: str,
    diagnostics: Sequence[Diagnostic] | None = None,
    coverage: Coverage | None = None,
    will_manage: bool | None = None,
    color: bool = False,
) -> str:
    """The human `check` report; offline (the banner) unless `diagnostics` is given."""
    return render_human(
        deployment, mappings, config_path=config_path, diagnostics=diagnostics,
        coverage=coverage, will_manage=will_manage, color=color,
    )


def render_human(
    deployment: Deployment,
    mappings: Sequence[IndexMapping],
    *,
    config_path: str,
    diagnostics: Sequence[Diagnostic] | None = None,
    coverage: Coverage | None = None,
    will_manage: bool | None = None,
    color: bool = False,
) -> str:
    """The human `check` report: summary, one field tree per index, then the verdict.

    `diagnostics is None` means offline. `will_manage` defaults to the source's
    `manage_publication`.
    """
    pen = _Pen(color)
    lines = [f"{pen.green('✓')} {pen.bold(f'config valid: {config_path}')}"]
    _summary(lines, pen, deployment)
    for mapping in mappings:
        _section(lines, pen, f"Index  {mapping.index}")
        lines.extend(_tree(mapping.fields, pen))
    if diagnostics is None:
        lines.extend(["", f"{pen.yellow('[offline]')} {OFFLINE_BANNER}"])
    else:
        _diagnostics(lines, pen, diagnostics)
        if coverage is not None:
            manage = deployment.source.manage_publication if will_manage is None else will_manage
            _coverage(lines, pen, coverage, manage=manage)
        lines.append("")
        if any(_severity(d) == "error" for d in diagnostics):
            lines.extend(["", f"{pen.yellow('[failed]')} schema disagrees with database"])
        else:
            lines.append(f"{pen.green('✓')} {pen.bold('check passed')}")
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _section(lines: list[str], pen: _Pen, title: str) -> None:
    lines.extend(["", pen.bold(title), pen.dim("─" * len(title))])


def _summary(lines: list[str], pen: _Pen, deployment: Deployment) -> None:
    _section(lines, pen, "Source")
    lines.append(
        f"  {pen.magenta(deployment.source.type)}  {pen.dim(describe_connection(deployment))}"
    )

    _section(lines, pen, "Sinks")
    if not deployment.sinks:
        lines.append(f"  {pen.dim('(none — defaults to a stdout sink)')}")
    else:
        rows = []
        for name in sorted(deployment.sinks):
            kind, detail = describe_sink(deployment.sinks[name])
            rows.append((name, pen.magenta(kind), pen.dim(detail)))
        lines.extend(_aligned(rows, pen))

    _section(lines, pen, "Indexes")
    rows = []
    for index in sorted(deployment.indexes, key=lambda i: i.name):
        schema = index.schema
        detail = f"{schema.db_schema}.{schema.table}"
        if schema.primary_key is not None:
            detail += f"   pk {schema.primary_key}"
        if schema.soft_delete is not None:
            detail += f'   soft-delete {schema.soft_delete.kind} "{schema.soft_delete.name}"'
        state = pen.green("enabled") if index.enabled else pen.dim("disabled")
        rows.append((index.name, state, pen.dim(detail)))
    lines.extend(_aligned(rows, pen))


def _aligned(rows: list[tuple[str, str, str]], pen: _Pen) -> list[str]:
    width = max((len(name) for name, _, _ in rows), default=0)
    return [
        f"  {pen.bold(name)}{' ' * (width - len(name))}  {first}  {second}"
        for name, first, second in rows
    ]


def _tree(fields: Sequence[ResolvedField], pen: _Pen) -> list[str]:
    rows: list[tuple[int, ResolvedField]] = []

    def walk(items: Sequence[ResolvedField], depth: int) -> None:
        for item in items:
            rows.append((depth, item))
            walk(item.children, depth + 1)

    walk(fields, 0)
    name_width = max((2 * depth + len(f.name) for depth, f in rows), default=0)
    type_width = max((len(f.type) for _, f in rows), default=0)
    out = []
    for depth, item in rows:
        used = 2 * depth + len(item.name)
        leader = pen.dim(" " + "." * (name_width + 1 - used) + " ")
        kind = item.type
        nullability = pen.yellow("optional") if item.nullable else pen.dim("required")
        out.append(
            f"  {'  ' * depth}{pen.bold(item.name)}{leader}"
            f"{pen.paint('36', kind)}{' ' * (type_width - len(kind))}  {nullability}"
        )
    return out


def _severity(diagnostic: Diagnostic) -> str:
    severity = diagnostic.severity
    return str(getattr(severity, "value", severity)).lower()


def _diagnostics(lines: list[str], pen: _Pen, diagnostics: Sequence[Diagnostic]) -> None:
    _section(lines, pen, "Database validation")
    if not diagnostics:
        lines.append(f"  {pen.dim('(schema matches the database)')}")
        return
    for diagnostic in diagnostics:
        severity = _severity(diagnostic)
        label = pen.paint("31" if severity == "error" else "33", f"[{severity}]")
        where = pen.bold(f"{diagnostic.index}.{diagnostic.field}")
        lines.append(f"  {label} {where}  {pen.dim(diagnostic.message)}")
        if diagnostic.fix:
            lines.append(f"      {pen.green('fix:')} {diagnostic.fix}")


def _coverage(lines: list[str], pen: _Pen, coverage: Coverage, *, manage: bool) -> None:
    _section(lines, pen, "Publication coverage")
    if coverage.satisfied:
        lines.append(
            f"  {pen.green('✓')} source streams all {len(coverage.present)} required table(s)"
        )
        return
    lines.append(
        f"  {pen.yellow('!')} {len(coverage.missing)} table(s) the indexes read "
        "are not yet streamed:"
    )
    lines.extend(f"    {pen.dim('•')} {table}" for table in coverage.missing)
    if coverage.manageable and manage:
        lines.append(f"  {pen.green('→ will be added automatically on the next `flusso run`')}")
    elif coverage.manageable:
        lines.append("  " + pen.yellow(
            "→ the source role could add these, but automatic management is disabled "
            "(manage_publication = false) — run the SQL below"
        ))
    else:
        lines.append(f"  {pen.bold(pen.yellow('→ flusso will not add these automatically:'))}")
        lines.extend(f"    {pen.dim('-')} {blocker}" for blocker in coverage.blockers)
    if coverage.remediation:
        _section(lines, pen, "Run to stream every table")
        lines.extend(f"  {sql}" for sql in coverage.remediation)


# ---------------------------------------------------------------------------
# Descriptions without secrets
# ---------------------------------------------------------------------------


def describe_secret_url(secret: Secret) -> str:
    if secret.env is not None:
        return f"${{{secret.env}}}"
    return redact_password(secret.value or "")


def describe_connection(deployment: Deployment) -> str:
    """The source connection as shown by `check`: a reference, a redacted URL, or parts."""
    connection = deployment.source.connection
    if connection is None:
        return "(from DATABASE_URL at runtime)"
    if isinstance(connection, ConnectionParts):
        return f"{connection.user}@{connection.host}:{connection.port}/{connection.database}"
    return describe_secret_url(connection)


def describe_sink(sink: SinkConfig) -> tuple[str, str]:
    """(kind, detail) of one sink."""
    if isinstance(sink, OpenSearchSinkConfig):
        detail = describe_secret_url(sink.url)
        if not sink.tls_verify:
            detail += "   tls-verify off"
        return "opensearch", detail
    return "stdout", "pretty" if sink.pretty else ""


# ---------------------------------------------------------------------------
# JSON document
# ---------------------------------------------------------------------------


def offline_json(
    deployment: Deployment,
    mappings: Sequence[IndexMapping],
    *,
    diagnostics: Sequence[Diagnostic] | None = None,
    coverage: Coverage | None = None,
    will_manage: bool | None = None,
) -> dict[str, Any]:
    """`{"config", "mappings", "diagnostics", "coverage"}`; the last two are None offline."""
    manage = deployment.source.manage_publication if will_manage is None else will_manage
    return {
        "config": config_json(deployment),
        "mappings": [mapping_json(mapping) for mapping in mappings],
        "diagnostics": None if diagnostics is None else [
            {
                "index": d.index,
                "field": d.field,
                "severity": _severity(d),
                "message": d.message,
                "fix": d.fix or None,
            }
            for d in diagnostics
        ],
        "coverage": None if coverage is None else {
            "satisfied": coverage.satisfied,
            "manageable": coverage.manageable,
            "will_manage": manage,
            "present": [str(t) for t in coverage.present],
            "missing": [str(t) for t in coverage.missing],
            "blockers": list(coverage.blockers),
            "remediation": list(coverage.remediation),
            "exists": coverage.exists,
            "missing_actions": list(coverage.missing_actions),
            "via_root_fix": coverage.via_root_fix,
        },
    }


report_json = offline_json


def mapping_json(mapping: IndexMapping) -> dict[str, Any]:
    return {
        "index": mapping.index,
        "hash": mapping.hash,
        "fields": [_resolved_json(f) for f in mapping.fields],
    }


def _resolved_json(item: ResolvedField) -> dict[str, Any]:
    mapping: dict[str, Any] = {"type": item.type}
    mapping.update({key: to_json(value) for key, value in sorted(item.extra.items())})
    out: dict[str, Any] = {"name": item.name, "mapping": mapping, "nullable": item.nullable}
    if item.array:
        out["array"] = True
    if item.children:
        out["children"] = [_resolved_json(child) for child in item.children]
    return out


def _secret_json(secret: Secret, *, url: bool) -> dict[str, str]:
    if secret.env is not None:
        return {"env": secret.env}
    return {"value": redact_password(secret.value or "") if url else MASK}


def config_json(deployment: Deployment) -> dict[str, Any]:
    """The validated config in the lock's layout (§9.1), with plain option values and no secrets."""
    source: dict[str, Any] = {"source_type": deployment.source.type}
    connection = deployment.source.connection
    if isinstance(connection, ConnectionParts):
        parts: dict[str, Any] = {
            "host": connection.host, "port": connection.port, "user": connection.user,
        }
        if connection.password is not None:
            parts["password"] = _secret_json(connection.password, url=False)
        parts["database"] = connection.database
        source["connection"] = {"parts": parts}
    elif connection is not None:
        source["connection"] = {"url": _secret_json(connection, url=True)}
    source["manage_publication"] = deployment.source.manage_publication

    indexes: dict[str, Any] = {}
    for index in sorted(deployment.indexes, key=lambda i: i.name):
        entry: dict[str, Any] = {"enabled": index.enabled}
        if index.on_error is not None:
            entry["on_error"] = index.on_error
        entry["schema"] = schema_json(index.schema)
        indexes[index.name] = entry

    server = {
        key: value
        for key, value in (
            ("public_address", deployment.server.public_address),
            ("private_address", deployment.server.private_address),
        )
        if value is not None
    }
    return {
        "source": source,
        "sinks": {name: _sink_json(deployment.sinks[name]) for name in sorted(deployment.sinks)},
        "indexes": indexes,
        "on_error": deployment.on_error,
        "server": server,
        "prefix": deployment.prefix,
    }


def _sink_json(sink: SinkConfig) -> dict[str, Any]:
    if not isinstance(sink, OpenSearchSinkConfig):
        return {"stdout": {"pretty": sink.pretty}}
    body: dict[str, Any] = {"url": _secret_json(sink.url, url=True)}
    if sink.username is not None:
        body["username"] = _secret_json(sink.username, url=False)
    if sink.password is not None:
        body["password"] = _secret_json(sink.password, url=False)
    body.update(
        tls_verify=sink.tls_verify, batch_size=sink.batch_size, max_bytes=sink.max_bytes,
        timeout_secs=sink.timeout_secs, max_retries=sink.max_retries,
    )
    if sink.pipeline is not None:
        body["pipeline"] = sink.pipeline
    body.update(
        number_of_shards=sink.number_of_shards, number_of_replicas=sink.number_of_replicas,
        refresh_interval=sink.refresh_interval, text_analysis=sink.text_analysis,
        auto_subfields=sink.auto_subfields,
    )
    return {"opensearch": body}


def schema_json(schema: IndexSchema) -> dict[str, Any]:
    """One converted schema in the lock's layout, option values as plain JSON."""
    out: dict[str, Any] = {
        "version": schema.version, "table": schema.table, "db_schema": schema.db_schema,
    }
    if schema.primary_key is not None:
        out["primary_key"] = schema.primary_key
    if schema.soft_delete is not None:
        out["soft_delete"] = _soft_delete_json(schema.soft_delete)
    if schema.filters is not None:
        out["filters"] = _filters_json(schema.filters)
    out["fields"] = _fields_json(schema.fields)
    return out


def _fields_json(fields: Sequence[Field]) -> list[dict[str, Any]]:
    return [_field_json(f) for f in fields]


def _field_json(field: Field) -> dict[str, Any]:
    out: dict[str, Any] = {"field": field.name}
    if field.options:
        out["options"] = {key: to_json(field.options[key]) for key in sorted(field.options)}
    out["source"] = _source_json(field)
    return out


def _source_json(field: Field) -> dict[str, Any]:
    source = field.source
    if isinstance(source, ColumnSource):
        column: dict[str, Any] = {
            "column": source.column, "ty": _type_json(source.type), "nullable": source.nullable,
        }
        if source.transforms:
            column["transforms"] = list(source.transforms)
        if source.default is not None:
            column["default"] = to_json(source.default)
        if source.variants:
            column["enum_order"] = list(source.variants)
        return {"column": column}
    if isinstance(source, GroupSource):
        return {"group": _fields_json(source.fields)}
    if isinstance(source, GeoSource):
        return {"geo": {"lat": source.lat, "lon": source.lon, "nullable": source.nullable}}
    if isinstance(source, Join):
        return {"relation": {"join": _join_json(source)}}
    if isinstance(source, Aggregate):
        return {"relation": {"aggregate": _aggregate_json(source)}}
    constant: Constant = source
    return {"constant": to_json(constant.value)}


def _type_json(declared: FieldType) -> Any:
    if isinstance(declared, MapType):
        return {"map": {"values": _type_json(declared.values)}}
    if isinstance(declared, CustomType):
        return {"custom": {"postgres": list(declared.postgres), "opensearch": declared.opensearch}}
    return declared


def _through_json(through: Through) -> dict[str, str]:
    return {"table": through.table, "left_key": through.left_key, "right_key": through.right_key}


def _join_json(join: Join) -> dict[str, Any]:
    kind = join.kind
    if isinstance(kind, BelongsTo):
        kind_json: dict[str, Any] = {"belongs_to": {"column": kind.column}}
    elif isinstance(kind, HasOne):
        kind_json = {"has_one": {"foreign_key": kind.foreign_key}}
    elif isinstance(kind, HasMany):
        kind_json = {"has_many": {"foreign_key": kind.foreign_key}}
    else:
        kind_json = {"many_to_many": {"through": _through_json(kind.through)}}
    out: dict[str, Any] = {
        "table": join.table, "kind": kind_json, "primary_key": join.primary_key,
        "nullable": join.nullable,
    }
    if join.filters is not None:
        out["filters"] = _filters_json(join.filters)
    if join.order_by is not None:
        out["order_by"] = [
            {"column": o.column, **({"direction": o.direction} if o.direction else {})}
            for o in join.order_by
        ]
    if join.limit is not None:
        out["limit"] = join.limit
    out["fields"] = _fields_json(join.fields)
    return out


def _aggregate_json(aggregate: Aggregate) -> dict[str, Any]:
    op: Any
    if aggregate.op == "count":
        op = "count"
    elif aggregate.op == "ids":
        op = {"ids": {"element_type": aggregate.element_type}}
    else:
        op = {aggregate.op: aggregate.column}
    key = aggregate.key
    out: dict[str, Any] = {
        "table": aggregate.table,
        "op": op,
        "key": {"direct": key.column} if isinstance(key, ForeignKey)
        else {"through": _through_json(key)},
    }
    if aggregate.value_type is not None:
        out["value_type"] = aggregate.value_type
    if aggregate.filters is not None:
        out["filters"] = _filters_json(aggregate.filters)
    return out


def _filters_json(filters: Sequence[Filter]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in filters:
        if isinstance(item, RawFilter):
            out.append({"raw": {"raw": item.raw}})
        elif isinstance(item, NullCheck):
            out.append({"null_check": {"column": item.column, "op": item.op}})
        elif isinstance(item, Comparison):
            value: dict[str, Any]
            if item.op in ("in", "not_in"):
                value = {"list": list(item.values)}
            elif item.op == "between":
                value = {"range": list(item.values)}
            else:
                value = {"single": item.values[0]}
            out.append({"value_op": {"column": item.column, "op": item.op, "value": value}})
    return out


def _soft_delete_json(soft_delete: SoftDelete) -> dict[str, Any]:
    body: dict[str, Any] = {soft_delete.kind: soft_delete.name}
    if soft_delete.when is not None:
        body["when"] = _filters_json(soft_delete.when)
    return {soft_delete.kind: body}

