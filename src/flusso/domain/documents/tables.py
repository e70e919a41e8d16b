"""Which tables a deployment reads, and how: the facts capture and publication management need."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from flusso.domain.config.model import (
    Aggregate,
    Deployment,
    Field,
    GroupSource,
    IndexSchema,
    Join,
    ManyToMany,
    Through,
)
from flusso.domain.documents.change import TableRef


def _walk_relation_tables(fields: Iterable[Field], schema: str) -> Iterator[TableRef]:
    for f in fields:
        source = f.source
        if isinstance(source, GroupSource):
            yield from _walk_relation_tables(source.fields, schema)
        elif isinstance(source, Join):
            yield TableRef(schema, source.table)
            if isinstance(source.kind, ManyToMany):
                yield TableRef(schema, source.kind.through.table)
            yield from _walk_relation_tables(source.fields, schema)
        elif isinstance(source, Aggregate):
            yield TableRef(schema, source.table)
            if isinstance(source.key, Through):
                yield TableRef(schema, source.key.table)


def tables_of_schema(schema: IndexSchema) -> set[TableRef]:
    """The root table and every join, aggregate and junction table, at any depth.

    Relations have no schema of their own: they live in the root's Postgres schema.
    """
    tables = {TableRef(schema.db_schema, schema.table)}
    tables.update(_walk_relation_tables(schema.fields, schema.db_schema))
    return tables


def required_tables(deployment: Deployment) -> list[TableRef]:
    """Every table the enabled indexes read, sorted by (schema, table): the publication's set."""
    tables: set[TableRef] = set()
    for index in deployment.enabled_indexes():
        tables |= tables_of_schema(index.schema)
    return sorted(tables)


def root_keys(deployment: Deployment) -> dict[TableRef, str | None]:
    """Root table → its declared `primary_key` (None when the schema declares none).

    A table that is the root of several indexes with different keys keeps the first.
    """
    roots: dict[TableRef, str | None] = {}
    for index in sorted(deployment.enabled_indexes(), key=lambda i: i.name):
        ref = TableRef(index.schema.db_schema, index.schema.table)
        roots.setdefault(ref, index.schema.primary_key)
    return roots


def declared_relation_keys(schema: IndexSchema) -> dict[str, str]:
    """Related table → the `primary_key` its join declares (the first join naming it wins).

    The adapter matches related rows on the table's single-column primary key and falls
    back to this one when the table's key is composite or missing.
    """
    keys: dict[str, str] = {}

    def walk(fields: Iterable[Field]) -> None:
        for f in fields:
            source = f.source
            if isinstance(source, GroupSource):
                walk(source.fields)
            elif isinstance(source, Join):
                keys.setdefault(source.table, source.primary_key)
                walk(source.fields)

    walk(schema.fields)
    return keys
