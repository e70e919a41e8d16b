"""The typed mapping of an index and the OpenSearch index body built from it.

Pure: `build_index_body` returns the `PUT /<index>` body as plain JSON data; the
OpenSearch adapter sends it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from flusso.domain.config.model import IndexSchema, Value
from flusso.domain.hashing import content_hash
from flusso.domain.types import IndexMapping, ResolvedField, resolve_fields

CODE_ANALYZER = "flusso_code"
TEXT_ANALYZER = "flusso_text"
LOWERCASE_NORMALIZER = "flusso_lowercase"
WORD_DELIMITER_FILTER = "flusso_word_delimiter"
ENUM_SORT_PREFIX = "flusso_enumsort__"
KEYWORD_IGNORE_ABOVE = 256


def index_mapping(name: str, schema: IndexSchema) -> IndexMapping:
    """The resolved fields and content hash of one index."""
    return IndexMapping(index=name, hash=content_hash(schema), fields=resolve_fields(schema))


def build_index_body(
    mapping: IndexMapping,
    *,
    shards: int = 1,
    replicas: int = 1,
    text_analysis: str = "builtin",
    auto_subfields: bool = True,
) -> dict[str, Any]:
    """The body that creates a generation index for `mapping`.

    `refresh_interval` is `-1` for seeding; the sink applies the configured
    interval once the generation is seeded.
    """
    enums = list(_ordered_enums(mapping.fields, ""))
    return {
        "settings": {
            "index": {
                "refresh_interval": "-1",
                "number_of_shards": max(1, shards),
                "number_of_replicas": replicas,
            },
            "analysis": _analysis(text_analysis, enums),
        },
        "mappings": {
            "dynamic": "strict",
            "properties": _properties(mapping.fields, "", auto_subfields=auto_subfields),
        },
    }


def enum_sort_name(path: str) -> str:
    """The char filter / normalizer name of the ordered enum at dotted `path`."""
    safe = "".join(c if c.isascii() and c.isalnum() else "_" for c in path)
    return ENUM_SORT_PREFIX + safe


def enum_sort_rules(variants: Sequence[str]) -> list[str]:
    """`variant => rank` rules, ranks zero-padded so a keyword sort follows rank order."""
    width = len(str(max(len(variants) - 1, 0)))
    return [f"{variant} => {rank:0{width}d}" for rank, variant in enumerate(variants)]


def to_json(value: Value) -> Any:
    """An option value as plain JSON data: a decimal with a fraction becomes a float."""
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        return int(value) if isinstance(exponent, int) and exponent >= 0 else float(value)
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    if isinstance(value, Mapping):
        return {key: to_json(item) for key, item in value.items()}
    return value


def _path(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _ordered_enums(
    fields: Sequence[ResolvedField], prefix: str
) -> list[tuple[str, tuple[str, ...]]]:
    found: list[tuple[str, tuple[str, ...]]] = []
    for field in fields:
        path = _path(prefix, field.name)
        if field.enum_order:
            found.append((path, field.enum_order))
        found.extend(_ordered_enums(field.children, path))
    return found


def _analysis(mode: str, enums: list[tuple[str, tuple[str, ...]]]) -> dict[str, Any]:
    icu = mode == "icu"
    analysis: dict[str, Any] = {
        "filter": {
            WORD_DELIMITER_FILTER: {
                "type": "word_delimiter_graph",
                "catenate_all": True,
                "preserve_original": True,
            },
        },
    }
    normalizers: dict[str, Any] = {
        LOWERCASE_NORMALIZER: {
            "type": "custom",
            "filter": ["icu_normalizer"] if icu else ["lowercase", "asciifolding"],
        },
    }
    char_filters: dict[str, Any] = {}
    for path, variants in enums:
        name = enum_sort_name(path)
        char_filters[name] = {"type": "mapping", "mappings": enum_sort_rules(variants)}
        normalizers[name] = {"type": "custom", "char_filter": [name], "filter": []}
    if char_filters:
        analysis["char_filter"] = char_filters
    analysis["analyzer"] = {
        CODE_ANALYZER: {
            "type": "custom",
            "tokenizer": "whitespace",
            "filter": [
                WORD_DELIMITER_FILTER, "flatten_graph", "lowercase",
                "icu_folding" if icu else "asciifolding",
            ],
        },
        TEXT_ANALYZER: (
            {"type": "custom", "tokenizer": "icu_tokenizer",
             "filter": ["icu_normalizer", "icu_folding"]}
            if icu
            else {"type": "custom", "tokenizer": "standard",
                  "filter": ["lowercase", "asciifolding"]}
        ),
    }
    analysis["normalizer"] = normalizers
    return analysis


def _properties(
    fields: Sequence[ResolvedField], prefix: str, *, auto_subfields: bool
) -> dict[str, Any]:
    return {
        field.name: _property(field, _path(prefix, field.name), auto_subfields=auto_subfields)
        for field in fields
    }


def _lowercase_subfield() -> dict[str, Any]:
    return {
        "type": "keyword",
        "normalizer": LOWERCASE_NORMALIZER,
        "ignore_above": KEYWORD_IGNORE_ABOVE,
    }


def _property(field: ResolvedField, path: str, *, auto_subfields: bool) -> dict[str, Any]:
    prop: dict[str, Any] = {"type": field.type}
    if auto_subfields and not field.children:
        if field.type == "text":
            prop["analyzer"] = TEXT_ANALYZER
            prop["fields"] = {
                "keyword": {"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE},
                "keyword_lowercase": _lowercase_subfield(),
            }
        elif field.type == "keyword":
            prop["fields"] = {
                "text": {"type": "text", "analyzer": CODE_ANALYZER},
                "keyword_lowercase": _lowercase_subfield(),
            }
    if field.enum_order:
        # The rank-ordered sort subfield is how ordered enums sort, so it is
        # added even when auto_subfields is off.
        prop.setdefault("fields", {})["sort"] = {
            "type": "keyword",
            "normalizer": enum_sort_name(path),
            "ignore_above": KEYWORD_IGNORE_ABOVE,
        }
    for key, value in field.extra.items():
        prop[key] = to_json(value)  # shallow: a user's `fields` replaces every subfield
    if field.children:
        prop["properties"] = _properties(field.children, path, auto_subfields=auto_subfields)
    return prop
