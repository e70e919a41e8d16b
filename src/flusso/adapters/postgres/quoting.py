"""How generated SQL spells identifiers, schema-qualified tables and string literals.

Used for text that cannot be a bound parameter (names, DDL, replication commands);
data values are always bound.
"""

from __future__ import annotations

from flusso.domain.documents.change import TableRef


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def qualified(db_schema: str, table: str) -> str:
    return f"{quote_ident(db_schema)}.{quote_ident(table)}"


def quote_table(table: TableRef) -> str:
    return qualified(table.schema, table.name)
