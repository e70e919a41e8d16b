"""Use case `flusso check`: compile the config from source, and unless offline compare it with the database.

Online, the source URL is resolved from the environment the entrypoint hands in,
column facts and publication coverage come from a `Catalog`, and the pure rules
in `domain.validation` turn them into diagnostics. Check never changes the database.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from flusso.app.ports import Catalog, Coverage, Files, SourceError
from flusso.app.services.compile import compile_config
from flusso.domain.config.model import Deployment
from flusso.domain.config.secrets import resolve_source_url
from flusso.domain.documents.change import TableRef
from flusso.domain.documents.tables import required_tables
from flusso.domain.errors import ConfigError
from flusso.domain.mapping import index_mapping
from flusso.domain.source_check import (
    diagnose_publication,
    diagnose_source,
    plan_source_needs,
)
from flusso.domain.types import IndexMapping
from flusso.domain.validation import (
    Diagnostic,
    TableFacts,
    diagnose,
    has_errors,
    plan_column_checks,
    tables_to_inspect,
)

FAILED_MESSAGE = "schema validation failed against the database"

OpenCatalog = Callable[[str], AbstractAsyncContextManager[Catalog]]
"""Opens a `Catalog` on a resolved Postgres URL (and closes it on exit)."""


@dataclass(frozen=True)
class CheckResult:
    """What `check` found; `diagnostics` and `coverage` are None offline."""

    deployment: Deployment
    mappings: tuple[IndexMapping, ...]
    diagnostics: tuple[Diagnostic, ...] | None = None
    coverage: Coverage | None = None
    manage_publication: bool = True

    @property
    def failed(self) -> bool:
        """An error-level disagreement with the database; warnings never fail."""
        return self.diagnostics is not None and has_errors(self.diagnostics)


def enabled_mappings(deployment: Deployment) -> tuple[IndexMapping, ...]:
    """The typed mapping of every enabled index, in name order."""
    return tuple(
        index_mapping(index.name, index.schema)
        for index in sorted(deployment.enabled_indexes(), key=lambda i: i.name)
    )


def check_offline(config: str, files: Files) -> CheckResult:
    """Load and resolve everything without secrets or a database."""
    deployment = compile_config(config, files)
    return CheckResult(
        deployment, enabled_mappings(deployment),
        manage_publication=deployment.source.manage_publication,
    )


async def check_online(
    config: str,
    files: Files,
    env: Mapping[str, str],
    open_catalog: OpenCatalog,
    *,
    publication: str = "flusso",
    manage_publication: bool | None = None,
    slot: str = "flusso",
) -> CheckResult:
    """Compile, connect, then report what a run would trip on: the server and role, each
    table's privileges and keys, the columns, and the publication."""
    deployment = compile_config(config, files)
    manage = (
        deployment.source.manage_publication if manage_publication is None else manage_publication
    )
    url = resolve_source_url(deployment.source, env)
    async with open_catalog(url) as catalog:
        needs = plan_source_needs(deployment, slot=slot)
        diagnostics = diagnose_source(needs, await catalog.source_facts(needs))
        diagnostics += await validate_deployment(deployment, catalog)
        coverage = await catalog.inspect_coverage(
            publication, required_tables(deployment), manage
        )
        diagnostics += diagnose_publication(coverage, publication, manage)
    return CheckResult(
        deployment, enabled_mappings(deployment), tuple(diagnostics), coverage, manage
    )


async def validate_deployment(deployment: Deployment, catalog: Catalog) -> list[Diagnostic]:
    """Diagnostics of every enabled index in name order; each table is read once."""
    facts: dict[TableRef, TableFacts | None] = {}
    diagnostics: list[Diagnostic] = []
    for index in sorted(deployment.enabled_indexes(), key=lambda i: i.name):
        checks = plan_column_checks(index.schema)
        for table in tables_to_inspect(checks):
            if table not in facts:
                facts[table] = await catalog.table_columns(table)
        diagnostics.extend(diagnose(index.name, checks, facts))
    return diagnostics


async def require_referenced_objects(
    deployment: Deployment, catalog: Catalog, *, slot: str = "flusso"
) -> None:
    """`run`'s preflight: refuse schemas naming tables or columns the database lacks, then
    anything else a run would trip on (the right to replicate, wal_level, a free slot,
    SELECT on what is read, keys documents and deletes are addressed by).

    Runs before any slot or publication is made, so a typo costs nothing but a
    message naming the file, the field and the fix. Type disagreements are left
    to `flusso check` (they do not stop documents from being built).
    """
    diagnostics = await validate_deployment(deployment, catalog)
    files = {index.name: index.schema_path for index in deployment.indexes}
    problems = []
    for diagnostic in diagnostics:
        if not diagnostic.missing:
            continue
        path = files.get(diagnostic.index)
        where = f"{path} (index {diagnostic.index})" if path else f"index {diagnostic.index}"
        problems.append(ConfigError(
            f"{where}: {diagnostic.field}: {diagnostic.message}",
            hint="fix the schema, or create it in the database; "
            "`flusso check` lists every disagreement",
        ))
    if problems:
        raise ConfigError.collect(problems)
    needs = plan_source_needs(deployment, slot=slot)
    blocking = [
        d for d in diagnose_source(needs, await catalog.source_facts(needs)) if d.severity == "error"
    ]
    if blocking:
        raise SourceError(
            "the source database is not ready: "
            + "; ".join(f"{d.field}: {d.message}" for d in blocking),
            hint="run " + " ".join(d.fix for d in blocking)
            + " — `flusso check` lists every finding with its fix",
        )


async def preflight(
    deployment: Deployment,
    env: Mapping[str, str],
    open_catalog: OpenCatalog,
    *,
    slot: str = "flusso",
) -> None:
    """`run`'s first step: reach Postgres and refuse what the run would trip on."""
    async with open_catalog(resolve_source_url(deployment.source, env)) as catalog:
        await require_referenced_objects(deployment, catalog, slot=slot)

