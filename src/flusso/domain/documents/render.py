"""A built document as the JSON a sink ingests (sinks spec §1.6): keys sorted, compact, UTF-8.

Pure: `to_json_value` turns Python/Postgres values into plain JSON values and
`render_document` spells them; sinks translate a TypeError into their own error.
A `WireDocument` (what the Postgres builder produces) is rendered from its text
in one pass, without decoding it into exact values first; a sink may hand in a
faster `JsonCodec` for that pass.
"""

from __future__ import annotations

import base64
import json
import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from flusso.domain.documents.decode import WireDocument

_COMPACT = json.JSONEncoder(
    sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False
)
_PRETTY = json.JSONEncoder(sort_keys=True, ensure_ascii=False, indent=2, allow_nan=False)


@dataclass(frozen=True)
class JsonCodec:
    """The parser and printer of the one-pass rendering of a `WireDocument`.

    `loads` must give Python's values for every text it accepts (floats as float,
    integers as int) and raise ValueError for any it cannot; `dumps` must print
    like `render_json` (sorted keys, compact, raw UTF-8) and raise ValueError or
    TypeError for what it cannot print exactly (such as a non-finite float). Either
    error sends the document down the exact path instead; output is the same.
    """

    loads: Callable[[str], Any]
    dumps: Callable[[Any], str]


STDLIB_CODEC = JsonCodec(json.loads, _COMPACT.encode)


def render_document(doc: Mapping[str, Any], codec: JsonCodec = STDLIB_CODEC) -> str:
    """Compact JSON with sorted keys and raw UTF-8. Raises TypeError for an unrenderable value."""
    if type(doc) is WireDocument:
        rendered = _render_wire(doc, codec)
        if rendered is not None:
            return rendered
    return render_json(to_json_value(doc))


def _render_wire(doc: WireDocument, codec: JsonCodec) -> str | None:
    """One pass over the wire text (parse, final plan, dump), or None to take the exact path.

    The exact path is needed only when a number does not parse to a finite float
    (an overflowing literal, which the exact path keeps as a decimal string), the
    codec declines the text, or the text is not a JSON object.
    """
    try:
        parsed = codec.loads(doc.text)
        if type(parsed) is not dict:
            return None
        return codec.dumps(doc.plan.final(parsed))
    except (ValueError, TypeError):  # e.g. allow_nan=False refusing a non-finite float
        return None


def render_json(value: Any, *, pretty: bool = False) -> str:
    """Spell an already-plain JSON value the way every flusso sink does."""
    return (_PRETTY if pretty else _COMPACT).encode(value)


def to_json_value(value: Any) -> Any:
    """The plain JSON value (None/bool/int/float/str/list/dict) standing for `value`."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return _decimal(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):  # before `date`: a datetime is a date
        return _datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return _time(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {_key(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(item) for item in value]
    raise TypeError(f"cannot render a value of type {type(value).__name__} as JSON")


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool | int):
        return json.dumps(key)
    raise TypeError(f"cannot render a map key of type {type(key).__name__} as JSON")


def _decimal(value: Decimal) -> float | str:
    if value.is_finite():
        converted = float(value)
        if math.isfinite(converted):
            return converted
    return str(value)


def _fraction(microsecond: int) -> str:
    if microsecond == 0:
        return ""
    if microsecond % 1000 == 0:
        return f".{microsecond // 1000:03d}"
    return f".{microsecond:06d}"


def _clock(value: datetime | time) -> str:
    return f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}{_fraction(value.microsecond)}"


def _datetime(value: datetime) -> str:
    if value.tzinfo is not None and value.utcoffset() is not None:
        utc = value.astimezone(UTC)
        return f"{utc.date().isoformat()}T{_clock(utc)}+00:00"
    # D15: a naive timestamp uses `T`, which OpenSearch's default date format accepts.
    return f"{value.date().isoformat()}T{_clock(value)}"


def _time(value: time) -> str:
    offset = value.utcoffset()
    if offset is None:
        return _clock(value)
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"{_clock(value)}{sign}{minutes // 60:02d}:{minutes % 60:02d}"
