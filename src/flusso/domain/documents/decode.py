"""Decoding a document assembled by Postgres into its final values.

Pure: the JSON text is parsed with exact decimals, then each declared field is
coerced by its declared type. Keys not declared are dropped, declared nulls stay
null, and a value that does not fit its type keeps its plain JSON shape: decoding
never fails a document. Plans are compiled once per index so the per-document
path does work only for fields that need it.

The builder hands documents on as `WireDocument`s: the text plus its plans,
decoded into exact values only when read as a mapping. The sink path does not
read them; it renders the text in one pass with the *final* plan
(`plan_final_object`), which turns a float-parsed document straight into the
plain JSON values every sink writes (see `render.render_document`).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from flusso.domain.config.field_types import FIELD_TYPES
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
    if len(value) == 25 and value[10] == "T" and value.endswith("+00:00"):
        # What a UTC session sends for a whole second: already final (or, when not a
        # timestamp at all, returned unchanged by the general path too).
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
    """bytea hex text (`\\x0102ff`) → bytes (a sink renders bytes as base64)."""
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
"""Wire conversions (a field type's `wire`) by name; a type without one passes as is."""


def _wire(declared: object) -> str | None:
    """The registry's wire conversion of a declared scalar type name (map and custom: none)."""
    spec = FIELD_TYPES.get(declared) if isinstance(declared, str) else None
    return spec.wire if spec is not None else None


def scalar_coercer(declared: object) -> Coercer | None:
    """The coercer of a declared scalar type name, or None when the JSON value is already final."""
    wire = _wire(declared)
    return None if wire is None else _SCALAR_COERCERS[wire]


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


# -- the final plan: float-parsed JSON → the JSON values a sink renders ---------------------
#
# Applied to `json.loads(text)` (floats as float, not Decimal). Each coercer returns what
# `to_json_value(exact coercer(value))` would, for every value that parses to a finite
# float: a finite decimal converts to the same float whether it goes through Decimal or
# not (both round the same digits once). A non-finite float (an overflowing literal,
# `NaN`) is left in place; rendering refuses it and falls back to the exact path.


def final_decimal(value: Any) -> Any:
    """numeric → float, as the exact path renders `Decimal(int)`; a huge integer → its digits."""
    if type(value) is int:
        try:
            return float(value)
        except OverflowError:
            return str(Decimal(value))
    return value


def final_binary(value: Any) -> Any:
    """bytea hex text → standard base64; anything else keeps its JSON shape."""
    if isinstance(value, str) and value.startswith("\\x"):
        try:
            raw = bytes.fromhex(value[2:])
        except ValueError:
            return value
        return base64.b64encode(raw).decode("ascii")
    return value


_FINAL_SCALARS: dict[str, Coercer] = {
    "decimal": final_decimal,
    "timestamp": coerce_timestamp,
    "binary": final_binary,
}


def _final_scalar(declared: object) -> Coercer | None:
    wire = _wire(declared)
    return None if wire is None else _FINAL_SCALARS[wire]


def _final_aggregate(aggregate: Aggregate) -> Coercer | None:
    if aggregate.op in ("sum", "min", "max"):
        return _final_scalar(aggregate.value_type)
    if aggregate.op == "ids":
        element = _final_scalar(aggregate.element_type)
        return None if element is None else _list_of(element)
    return None


def _final_field(f: Field) -> Coercer | None:
    source = f.source
    if isinstance(source, ColumnSource):
        return _final_scalar(source.type)
    if isinstance(source, GroupSource):
        return plan_final_object(source.fields)
    if isinstance(source, Join):
        return _final_many(source.fields) if source.to_many else plan_final_object(source.fields)
    if isinstance(source, Aggregate):
        return _final_aggregate(source)
    return None


_Planned = tuple[tuple[str, Coercer], ...]


def _final_parts(fields: Sequence[Field]) -> tuple[frozenset[str], _Planned]:
    names = frozenset(f.name for f in fields)
    planned = tuple((f.name, fn) for f in fields if (fn := _final_field(f)) is not None)
    return names, planned


def _final_many(fields: Sequence[Field]) -> Coercer:
    """`_list_of(plan_final_object(fields))`, with the common case (an object holding only
    declared keys) handled inline: a to-many join is where documents spend their objects."""
    names, planned = _final_parts(fields)
    one = plan_final_object(fields)

    def coerce(value: Any) -> Any:
        if type(value) is not list:
            return one(value)
        for position, item in enumerate(value):
            if type(item) is dict and item.keys() <= names:
                for name, fn in planned:
                    field_value = item.get(name)
                    if field_value is not None and type(field_value) is not float:
                        item[name] = fn(field_value)
            elif item is not None:
                value[position] = one(item)
        return value

    return coerce


def plan_final_object(fields: Sequence[Field]) -> Coercer:
    """Like `plan_object`, for a float-parsed object, producing final JSON values.

    Works in place on the parsed dict (it belongs to the caller's one-off parse);
    undeclared keys are dropped just as `plan_object` drops them.
    """
    names, planned = _final_parts(fields)

    def coerce(value: Any) -> Any:
        if type(value) is not dict:
            return value
        if not value.keys() <= names:
            value = {k: v for k, v in value.items() if k in names}
        for name, fn in planned:
            item = value.get(name)
            # None and a float are final under every coercer (a decimal arrives as a float).
            if item is not None and type(item) is not float:
                value[name] = fn(item)
        return value

    if not planned:  # nothing to coerce at or below this level: only undeclared keys to drop

        def check(value: Any) -> Any:
            if type(value) is dict and value.keys() <= names:
                return value
            return coerce(value)

        return check
    return coerce


@dataclass(frozen=True)
class WirePlan:
    """Both plans of one index's documents: exact values (`exact`) and final JSON (`final`)."""

    exact: Coercer
    final: Coercer


def plan_wire(fields: Sequence[Field]) -> WirePlan:
    return WirePlan(plan_object(fields), plan_final_object(fields))


class WireDocument(Mapping[str, Any]):
    """A built document kept as the JSON text Postgres sent, decoded exactly on first read.

    As a mapping it equals `decode_document(text, plan.exact)`; `render_document`
    renders the text directly with `plan.final`.
    """

    __slots__ = ("_decoded", "plan", "text")

    def __init__(self, text: str, plan: WirePlan) -> None:
        self.text = text
        self.plan = plan
        self._decoded: dict[str, Any] | None = None

    def decoded(self) -> dict[str, Any]:
        if self._decoded is None:
            self._decoded = decode_document(self.text, self.plan.exact)
        return self._decoded

    def __getitem__(self, key: str) -> Any:
        return self.decoded()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.decoded())

    def __len__(self) -> int:
        return len(self.decoded())

    def __repr__(self) -> str:
        return repr(self.decoded())
