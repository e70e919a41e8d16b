"""The human `flusso check` report: summary, one field tree per index, then the verdict.

Built as rich `Text`, so colour appears only where the console allows it (a terminal,
and no NO_COLOR). The offline report ends with a banner instead of database findings.
Literal secrets never appear: URLs lose their password, parts show no password at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rich.text import Text

from flusso.app.ports import Coverage
from flusso.app.services.check import CheckResult
from flusso.domain.config.model import (
    ConnectionParts,
    Deployment,
    OpenSearchSinkConfig,
    Secret,
    StdoutSinkConfig,
)
from flusso.domain.config.secrets import redact_password
from flusso.domain.types import ResolvedField
from flusso.domain.validation import Diagnostic

OFFLINE_BANNER = "skipped database validation — types and nullability not checked"

Part = str | tuple[str, str]
"""Plain text, or `(text, rich style)`."""


def render_report(result: CheckResult, *, config_path: str) -> Text:
    """The whole report; every line without trailing blanks, the last one ending the text."""
    lines = [_line(("✓", "green"), " ", (f"config valid: {config_path}", "bold"))]
    _summary(lines, result.deployment)
    for mapping in result.mappings:
        _section(lines, f"Index  {mapping.index}")
        lines.extend(_tree(mapping.fields))
    if result.diagnostics is None:
        lines += [Text(), _line(("[offline]", "yellow"), f" {OFFLINE_BANNER}")]
    else:
        _diagnostics(lines, result.diagnostics)
        if result.coverage is not None:
            _coverage(lines, result.coverage, manage=result.manage_publication)
        lines.append(Text())
        if result.failed:
            lines += [Text(), _line(("[failed]", "yellow"), " schema disagrees with database")]
        else:
            lines.append(_line(("✓", "green"), " ", ("check passed", "bold")))
    return Text("\n").join(lines) + "\n"


def _line(*parts: Part) -> Text:
    line = Text.assemble(*parts)
    line.rstrip()
    return line


def _section(lines: list[Text], title: str) -> None:
    lines += [Text(), Text(title, "bold"), Text("─" * len(title), "dim")]


# -- summary ---------------------------------------------------------------------------


def _summary(lines: list[Text], deployment: Deployment) -> None:
    _section(lines, "Source")
    lines.append(
        _line("  ", (deployment.source.type, "magenta"), "  ", (describe_connection(deployment), "dim"))
    )

    _section(lines, "Sinks")
    if not deployment.sinks:
        lines.append(_line("  ", ("(none — defaults to a stdout sink)", "dim")))
    else:
        rows = []
        for name in sorted(deployment.sinks):
            kind, detail = describe_sink(deployment.sinks[name])
            rows.append((name, (kind, "magenta"), (detail, "dim")))
        lines.extend(_aligned(rows))

    _section(lines, "Indexes")
    rows = []
    for index in sorted(deployment.indexes, key=lambda i: i.name):
        schema = index.schema
        detail = f"{schema.db_schema}.{schema.table}"
        if schema.primary_key is not None:
            detail += f"   pk {schema.primary_key}"
        if schema.soft_delete is not None:
            detail += f'   soft-delete {schema.soft_delete.kind} "{schema.soft_delete.name}"'
        state = ("enabled", "green") if index.enabled else ("disabled", "dim")
        rows.append((index.name, state, (detail, "dim")))
    lines.extend(_aligned(rows))


def _aligned(rows: list[tuple[str, tuple[str, str], tuple[str, str]]]) -> list[Text]:
    width = max((len(name) for name, _, _ in rows), default=0)
    return [
        _line("  ", (name, "bold"), " " * (width - len(name)), "  ", first, "  ", second)
        for name, first, second in rows
    ]


def describe_connection(deployment: Deployment) -> str:
    """The source connection: a variable reference, a redacted URL, or user@host:port/db."""
    connection = deployment.source.connection
    if connection is None:
        return "(from DATABASE_URL at runtime)"
    if isinstance(connection, ConnectionParts):
        return f"{connection.user}@{connection.host}:{connection.port}/{connection.database}"
    return _describe_url(connection)


def _describe_url(secret: Secret) -> str:
    if secret.env is not None:
        return f"${{{secret.env}}}"
    return redact_password(secret.value or "")


def _describe_opensearch(sink: OpenSearchSinkConfig) -> str:
    detail = _describe_url(sink.url)
    return detail if sink.tls_verify else f"{detail}   tls-verify off"


def _describe_stdout(sink: StdoutSinkConfig) -> str:
    return "pretty" if sink.pretty else ""


# The kind shown for each sink config class, and its one-line detail.
_SINK_DESCRIPTIONS: dict[type, tuple[str, Callable[[Any], str]]] = {
    OpenSearchSinkConfig: ("opensearch", _describe_opensearch),
    StdoutSinkConfig: ("stdout", _describe_stdout),
}


def describe_sink(sink: object) -> tuple[str, str]:
    """(kind, detail) of one sink."""
    kind, describe = _SINK_DESCRIPTIONS[type(sink)]
    return kind, describe(sink)


# -- field tree ------------------------------------------------------------------------


def _tree(fields: Sequence[ResolvedField]) -> list[Text]:
    """One row per field, children indented two spaces a level, types aligned by dot leaders."""
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
        leader = " " + "." * (name_width + 1 - used) + " "
        nullability = ("optional", "yellow") if item.nullable else ("required", "dim")
        out.append(_line(
            "  " + "  " * depth, (item.name, "bold"), (leader, "dim"), (item.type, "cyan"),
            " " * (type_width - len(item.type)), "  ", nullability,
        ))
    return out


# -- database findings -----------------------------------------------------------------


def _diagnostics(lines: list[Text], diagnostics: Sequence[Diagnostic]) -> None:
    _section(lines, "Database validation")
    if not diagnostics:
        lines.append(_line("  ", ("(schema matches the database)", "dim")))
        return
    for diagnostic in diagnostics:
        severity = diagnostic.severity
        lines.append(_line(
            "  ", (f"[{severity}]", "red" if severity == "error" else "yellow"), " ",
            (f"{diagnostic.index}.{diagnostic.field}", "bold"), "  ", (diagnostic.message, "dim"),
        ))
        if diagnostic.fix:
            lines.append(_line("      ", ("fix:", "green"), f" {diagnostic.fix}"))


def _coverage(lines: list[Text], coverage: Coverage, *, manage: bool) -> None:
    _section(lines, "Publication coverage")
    if coverage.satisfied:
        lines.append(_line(
            "  ", ("✓", "green"), f" source streams all {len(coverage.present)} required table(s)"
        ))
        return
    lines.append(_line(
        "  ", ("!", "yellow"),
        f" {len(coverage.missing)} table(s) the indexes read are not yet streamed:",
    ))
    lines.extend(_line("    ", ("•", "dim"), f" {table}") for table in coverage.missing)
    if coverage.manageable and manage:
        lines.append(_line("  ", ("→ will be added automatically on the next `flusso run`", "green")))
    elif coverage.manageable:
        lines.append(_line("  ", (
            "→ the source role could add these, but automatic management is disabled "
            "(manage_publication = false) — run the SQL below", "yellow",
        )))
    else:
        lines.append(_line("  ", ("→ flusso will not add these automatically:", "bold yellow")))
        lines.extend(_line("    ", ("-", "dim"), f" {blocker}") for blocker in coverage.blockers)
    if coverage.remediation:
        _section(lines, "Run to stream every table")
        lines.extend(_line(f"  {sql}") for sql in coverage.remediation)
