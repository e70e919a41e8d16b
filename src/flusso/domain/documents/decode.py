"""Decoding a document assembled by Postgres into its final values (engine spec §6.9).

Pure: the JSON text is parsed with exact decimals, then each declared field is
coerced by its declared type. Keys not declared are dropped, declared nulls stay
null, and a value that does not fit its type keeps its plain JSON shape: decoding
never fails a document. Plans are compiled once per index so the per-document
path does work only for fields that need it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from flusso.domain.config.model import (
    Aggregate,
    ColumnSource,
    Field,
    GroupSource,
    Join,
)

Coercer = Callable[[Any], Any]
"""Turns one non-null parsed JSON value into its document value."""

_DATETIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?"
    r"(Z|[+-]\d{2}(?::?\d{2}(?::?\d{2})?)?)?"
)
_TIME = re.compile(r"(\d{2}:\d{2}:\d{2})(?:\.(\d+))?")
_UTC_OFFSETS = frozenset({"Z", "+00", "+00:00", "-00", "-00:00", "+0000"})


def _fraction(digits: str | None) -> str:
    """Fraction only when non-zero: `.fff` for whole milliseconds, else `.ffffff`."""
    if not digits:
        return ""
    digits = digits[:6].rstrip("0")
    if not digits:
        return ""
    return "." + digits.ljust(3 if len(digits) <= 3 else 6, "0")


def coerce_timestamp(value: Any) -> Any:
    """timestamptz → RFC 3339 in UTC (`+00:00`); naive → ISO with `T`; time → `HH:MM:SS[.f]`."""
    if not isinstance(value, str):
        return value
    match = _DATETIME.fullmatch(value)
    if match is not None:
        day, clock, fraction, offset = match.groups()
        if offset is None:
            return f"{day}T{clock}{_fraction(fraction)}"
        if offset in _UTC_OFFSETS:
            return f"{day}T{clock}{_fraction(fraction)}+00:00"
        return _to_utc(day, clock, fraction, offset, value)
    match = _TIME.fullmatch(value)
    if match is not None:
        clock, fraction = match.groups()
        return f"{clock}{_fraction(fraction)}"
    return value


def _to_utc(day: str, clock: str, fraction: str | None, offset: str, original: str) -> str:
    micros = (fraction or "")[:6].ljust(6, "0")
    if len(offset) == 3:
        offset += ":00"
    try:
        moment = datetime.fromisoformat(f"{day}T{clock}.{micros}{offset}").astimezone(UTC)
    except (ValueError, OverflowError):
        return original
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}{_fraction(f'{moment.microsecond:06d}')}+00:00"


def coerce_decimal(value: Any) -> Any:
    """numeric → exact Decimal (an integral JSON number becomes one too)."""
    if type(value) is int:
        return Decimal(value)
    return value


def coerce_binary(value: Any) -> Any:
    """bytea hex text (`\\x0102ff`) → bytes (R-21: the sink renders base64)."""
    if isinstance(value, str) and value.startswith("\\x"):
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            return value
    return value


_SCALAR_COERCERS: dict[str, Coercer] = {
    "decimal": coerce_decimal,
    "timestamp": coerce_timestamp,
    "binary": coerce_binary,
}
"""Declared types whose wire value differs from the document value; every other type passes as is."""


def scalar_coercer(declared: object) -> Coercer | None:
    """The coercer of a declared scalar type name, or None when the JSON value is already final."""
    if isinstance(declared, str):
        return _SCALAR_COERCERS.get(declared)
    return None  # map and custom types keep their JSON shape


def _list_of(item: Coercer) -> Coercer:
    def coerce(value: Any) -> Any:
        if type(value) is list:
            return [None if v is None else item(v) for v in value]
        return item(value)

    return coerce


def _aggregate_coercer(aggregate: Aggregate) -> Coercer | None:
    if aggregate.op in ("sum", "min", "max"):
        return scalar_coercer(aggregate.value_type)
    if aggregate.op == "ids":
        element = scalar_coercer(aggregate.element_type)
        return None if element is None else _list_of(element)
    return None  # count is an integer, avg a float: both final as parsed


def _field_coercer(f: Field) -> Coercer | None:
    source = f.source
    if isinstance(source, ColumnSource):
        return scalar_coercer(source.type)
    if isinstance(source, GroupSource):
        return plan_object(source.fields)
    if isinstance(source, Join):
        obj = plan_object(source.fields)
        return _list_of(obj) if source.to_many else obj
    if isinstance(source, Aggregate):
        return _aggregate_coercer(source)
    return None  # geo and constants keep their JSON shape


def plan_object(fields: Sequence[Field]) -> Coercer:
    """A coercer for one JSON object level: declared keys only, each coerced by its type."""
    planned = tuple((f.name, _field_coercer(f)) for f in fields)

    def coerce(value: Any) -> Any:
        if type(value) is not dict:
            return value
        out = {}
        for name, fn in planned:
            if name in value:
                item = value[name]
                out[name] = item if fn is None or item is None else fn(item)
        return out

    return coerce


def parse_document(text: str) -> Any:
    """Parse the document JSON text keeping every non-integral number an exact Decimal."""
    return json.loads(text, parse_float=Decimal)


def decode_document(text: str, plan: Coercer) -> dict[str, Any]:
    """Parse and coerce one document with a plan from `plan_object(schema.fields)`."""
    decoded = plan(parse_document(text))
    return decoded if isinstance(decoded, dict) else {}
