"""What both halves of the lock codec share: the reading helpers that check the JSON tree
by hand, the error of a malformed lock, and the tagged encodings of values, field types
and secrets."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from flusso.domain.config.model import CustomType, FieldType, MapType, Secret, Value

JSON = Any  # a JSON-able value: the tree is checked by hand while decoding


class Malformed(ValueError):
    """A lock that parsed as JSON but does not hold a deployment."""


def drop_none(mapping: dict[str, JSON]) -> dict[str, JSON]:
    return {k: v for k, v in mapping.items() if v is not None}


# -- reading the tree --------------------------------------------------------------------


def get(body: Mapping[str, JSON], key: str, kind: type | tuple[type, ...], where: str) -> JSON:
    """`body[key]`, which must be a `kind` (a boolean is not an int)."""
    if not isinstance(body, Mapping):
        raise Malformed(f"{where}: expected an object")
    if key not in body:
        raise Malformed(f"{where}: missing key `{key}`")
    value = body[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise Malformed(f"{where}.{key}: unexpected value {_shown(value)}")
    return value


def mapping(value: JSON, where: str) -> dict[str, JSON]:
    """`value`, which must be a JSON object."""
    if not isinstance(value, dict):
        raise Malformed(f"{where}: expected an object")
    return value


def opt(body: Mapping[str, JSON], key: str, kind: type, where: str) -> JSON:
    return get(body, key, kind, where) if key in body else None


def tagged(value: JSON, where: str) -> tuple[str, JSON]:
    """The one key and its value of an externally tagged object."""
    if not isinstance(value, dict) or len(value) != 1:
        raise Malformed(f"{where}: expected an object with exactly one key")
    return next(iter(value.items()))


def strings(value: JSON, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Malformed(f"{where}: expected a list of strings")
    return tuple(value)


def _shown(value: JSON) -> str:
    """A value for an error message: short, and only its kind when it is a container."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# -- values ----------------------------------------------------------------------------


def encode_value(value: Value) -> JSON:
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return {"Bool": value}
    if isinstance(value, int):
        return {"BigInt": value}
    if isinstance(value, Decimal):
        return {"Decimal": str(value)}
    if isinstance(value, str):
        return {"String": value}
    if isinstance(value, list):
        return {"Array": [encode_value(v) for v in value]}
    return {"Map": {k: encode_value(v) for k, v in value.items()}}


def decode_value(value: JSON, where: str) -> Value:
    if value == "Null":
        return None
    tag, body = tagged(value, where)
    if tag == "Bool" and isinstance(body, bool):
        return body
    if tag == "BigInt" and isinstance(body, int) and not isinstance(body, bool):
        return body
    if tag == "Decimal" and isinstance(body, str):
        return _decimal(body, where)
    if tag == "String" and isinstance(body, str):
        return body
    if tag == "Array" and isinstance(body, list):
        return [decode_value(v, f"{where}[{i}]") for i, v in enumerate(body)]
    if tag == "Map" and isinstance(body, dict):
        return {k: decode_value(v, f"{where}.{k}") for k, v in body.items()}
    raise Malformed(f"{where}: unexpected value of kind `{tag}`")


def _decimal(text: str, where: str) -> Decimal:
    try:
        return Decimal(text)
    except ArithmeticError:
        raise Malformed(f"{where}: not a decimal number") from None


# -- field types and secrets -------------------------------------------------------------


def encode_type(ty: FieldType) -> JSON:
    if isinstance(ty, MapType):
        return {"map": {"values": ty.values}}
    if isinstance(ty, CustomType):
        return {"custom": {"postgres": list(ty.postgres), "opensearch": ty.opensearch}}
    return ty


def decode_type(value: JSON, where: str) -> FieldType:
    if isinstance(value, str):
        return value
    kind, body = tagged(value, where)
    if kind == "map":
        return MapType(values=get(body, "values", str, where))
    if kind == "custom":
        return CustomType(
            postgres=strings(get(body, "postgres", list, where), f"{where}.postgres"),
            opensearch=get(body, "opensearch", str, where),
        )
    raise Malformed(f"{where}: unknown type `{kind}`")


def encode_secret(secret: Secret | None) -> JSON:
    if secret is None:
        return None
    if secret.env is not None:
        return {"env": secret.env}
    if secret.file is not None:
        return {"file": secret.file}
    return {"value": secret.value or ""}
