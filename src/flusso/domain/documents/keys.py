"""Canonical key values (engine spec R-7): one function for WAL text, snapshot, read-back and lookups.

Keys are read as Postgres text and typed by the OID of the key column they
belong to, so the same row always yields the same Python value and `_id`.
"""

from __future__ import annotations

import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

BOOL_OID = 16
INT_OIDS = frozenset({20, 21, 23, 26})  # int8, int2, int4, oid
FLOAT_OIDS = frozenset({700, 701})
NUMERIC_OID = 1700
UUID_OID = 2950


def canonical_key_value(type_oid: int, text: str | None) -> Any:
    """Type a key cell by its column's type OID; unparseable text stays the raw string."""
    if text is None:
        return None
    try:
        if type_oid in INT_OIDS:
            return int(text)
        if type_oid == BOOL_OID:
            if text in ("t", "true"):
                return True
            if text in ("f", "false"):
                return False
            return text
        if type_oid in FLOAT_OIDS:
            return float(text)
        if type_oid == NUMERIC_OID:
            return Decimal(text)
        if type_oid == UUID_OID:
            return uuid.UUID(text)
    except (ValueError, InvalidOperation):
        return text
    return text
