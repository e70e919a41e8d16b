"""Every field type flusso knows, declared once: one `FieldTypeSpec` row per type.

A row holds everything the rest of the program needs about a type: its OpenSearch
mapping type and injected mapping options, the Postgres column types it reads, how the
document query renders such a column, how the decoder turns the value Postgres sends
into the document value, its tag in the content hash, and the words the JSON Schema and
the documentation show for it. Loader, mapping, hash, document SQL, decoder, `flusso
schema index` and the docs drift test all read these rows.

To add a field type: add its row here (a new, unused `hash_tag`); paste the table line
the docs drift test prints into `docs/schema-authoring.md`; regenerate
`docs/schemas/index.schema.yml` with `flusso schema index`; update the pinned tags and
type counts in `tests/unit/test_field_types.py` and `test_index_jsonschema.py`. Only a new
kind of `wire` conversion also needs its function in `domain/documents/decode.py`.

Pure data: the Postgres adapter reads `column_sql` as a template; nothing here renders SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

_TEXT_FAMILY = frozenset(
    {"text", "character varying", "varchar", "character", "char", "bpchar", "citext", "name"}
)
_JSON = frozenset({"json", "jsonb"})
_TEXT_FAMILY_DOC = "text, varchar, char, citext, name"


@dataclass(frozen=True)
class FieldTypeSpec:
    """One field type.

    `hash_tag` is the type's number in the content hash: it must never change for an
    existing type (a changed tag renames every index using it) and no two rows may share
    one. `postgres` lists the normalised column types the type reads. `column_sql` is the
    template (`{column}` is the qualified column) the document query reads a column with.
    `wire` names the decoder's conversion from the JSON Postgres sends (None: kept as
    sent). `options` are mapping parameters added unless the schema sets them.
    """

    name: str
    hash_tag: int
    opensearch: str
    postgres: frozenset[str]
    description: str  # the JSON Schema's hover text for the type key
    postgres_doc: str  # the docs table's "Postgres columns" cell
    opensearch_doc: str  # the docs table's "OpenSearch" cell
    column_sql: str = "{column}"
    wire: str | None = None
    options: Mapping[str, object] = field(default_factory=dict)
    map_value: bool = True  # may be the `values` of a `map`
    coordinate: bool = False  # may hold one coordinate of a two-column geo point

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))


def _scalar(*rows: FieldTypeSpec) -> dict[str, FieldTypeSpec]:
    return {row.name: row for row in rows}


SCALAR_FIELD_TYPES: Mapping[str, FieldTypeSpec] = MappingProxyType(_scalar(
    FieldTypeSpec(
        "text", 0, "text", _TEXT_FAMILY,
        "Analyzed full text (Postgres text family; OpenSearch text with keyword subfields).",
        _TEXT_FAMILY_DOC, "`text` (+ `.keyword`, `.keyword_lowercase`)",
    ),
    FieldTypeSpec(
        "identifier", 1, "text", _TEXT_FAMILY,
        "Codes, SKUs and handles: text split on punctuation and case changes (Postgres text family).",
        "text family", "`text` with the `flusso_code` analyzer (codes, SKUs, handles)",
        options={"analyzer": "flusso_code"},
    ),
    FieldTypeSpec(
        "keyword", 2, "keyword", _TEXT_FAMILY,
        "Exact-match string for filters, sorting and aggregations (Postgres text family).",
        "text family", "`keyword` (+ `.text`, `.keyword_lowercase`)",
    ),
    FieldTypeSpec(
        "enum", 3, "keyword", _TEXT_FAMILY,
        "A keyword from a fixed set; `variants` lists them in sort order (text or a Postgres enum).",
        "text family, Postgres enum types",
        "`keyword`; with `variants:` also a `.sort` subfield in variant order",
    ),
    FieldTypeSpec(
        "uuid", 4, "keyword", frozenset({"uuid"}),
        "A Postgres uuid, indexed as a keyword.", "uuid", "`keyword`",
    ),
    FieldTypeSpec(
        "boolean", 5, "boolean", frozenset({"boolean", "bool"}),
        "A Postgres boolean.", "boolean", "`boolean`", map_value=False,
    ),
    FieldTypeSpec(
        "short", 6, "short", frozenset({"smallint", "int2", "smallserial"}),
        "A 16-bit integer (Postgres smallint).", "smallint", "`short`", coordinate=True,
    ),
    FieldTypeSpec(
        "integer", 7, "integer", frozenset({"integer", "int", "int4", "serial"}),
        "A 32-bit integer (Postgres integer).", "integer", "`integer`", coordinate=True,
    ),
    FieldTypeSpec(
        "long", 8, "long", frozenset({"bigint", "int8", "bigserial"}),
        "A 64-bit integer (Postgres bigint).", "bigint", "`long`", coordinate=True,
    ),
    FieldTypeSpec(
        "float", 9, "float", frozenset({"real", "float4"}),
        "A single-precision float (Postgres real).", "real", "`float`", coordinate=True,
    ),
    FieldTypeSpec(
        "double", 10, "double", frozenset({"double precision", "float8"}),
        "A double-precision float (Postgres double precision).", "double precision", "`double`", coordinate=True,
    ),
    FieldTypeSpec(
        "decimal", 11, "double", frozenset({"numeric", "decimal", "money"}),
        "An exact number (Postgres numeric or money): exact in the document, a double in the index.",
        "numeric, decimal, money", "`double`", wire="decimal", coordinate=True,
    ),
    FieldTypeSpec(
        "date", 12, "date", frozenset({"date"}),
        "A calendar date (Postgres date).", "date", "`date`",
    ),
    FieldTypeSpec(
        "timestamp", 13, "date", frozenset({
            "timestamp", "timestamptz", "timestamp with time zone",
            "timestamp without time zone", "time", "timetz", "time with time zone",
            "time without time zone",
        }),
        "A timestamp (with a time zone: rendered in UTC) or a time of day.",
        "timestamp, timestamptz, time, timetz", "`date`", wire="timestamp",
    ),
    FieldTypeSpec(
        "binary", 14, "binary", frozenset({"bytea"}),
        "Bytes (Postgres bytea), sent base64-encoded.", "bytea", "`binary` (base64)",
        wire="binary", map_value=False,
    ),
    # A json column's keys are not declared: without `dynamic: true` a strict index
    # would refuse every document whose column holds keys (a deliberate difference from
    # upstream, where such a field is unusable). `map` gets the same option.
    FieldTypeSpec(
        "json", 15, "object", _JSON,
        "A json or jsonb value whose keys are not declared (mapped with `dynamic: true`).",
        "json, jsonb", "`object`", options={"dynamic": True}, map_value=False,
    ),
))
"""The scalar type keys and type names, in the order the language lists them."""

MAP_TYPE = FieldTypeSpec(
    "map", 16, "object", _JSON,
    "A json/jsonb column of dynamic keys whose values share one leaf type (`values`).",
    "json, jsonb", "`object`", options={"dynamic": True}, map_value=False,
)
GEO_POINT_TYPE = FieldTypeSpec(
    # One-column geo: the value must already be JSON- or text-shaped; PostGIS
    # `geometry` and native `point` would serialise as WKB / `(x,y)`.
    "geo_point", 17, "geo_point", _JSON | _TEXT_FAMILY,
    "A point: two numeric columns (`lat`, `lon`) or one JSON or text column.",
    "json, jsonb or text family (one column); two numeric columns", "`geo_point`",
    map_value=False,
)
CUSTOM_TYPE = FieldTypeSpec(
    "custom", 18, "", frozenset(),
    "Any OpenSearch type: `postgres` lists the column types, `opensearch` the type.",
    "as listed in `postgres`", "as written in `opensearch`", map_value=False,
)

FIELD_TYPES: Mapping[str, FieldTypeSpec] = MappingProxyType({
    **SCALAR_FIELD_TYPES, "map": MAP_TYPE, "geo_point": GEO_POINT_TYPE, "custom": CUSTOM_TYPE,
})
"""Every row, keyed by name: the scalars, then the types a `map`, `geo` or `custom` declares."""

SCALAR_TYPES: tuple[str, ...] = tuple(SCALAR_FIELD_TYPES)
MAP_VALUE_TYPES: frozenset[str] = frozenset(
    name for name, row in SCALAR_FIELD_TYPES.items() if row.map_value
)
COORDINATE_TYPES: tuple[str, ...] = tuple(
    name for name, row in SCALAR_FIELD_TYPES.items() if row.coordinate
)


def spec_of(name: str) -> FieldTypeSpec | None:
    """The row of a type name; `geo` (the type key of a point) reads as `geo_point`."""
    return FIELD_TYPES.get("geo_point" if name == "geo" else name)


def normalise_postgres_type(name: str) -> str:
    """A Postgres type name reduced to its base: `numeric(10,2)[]` → `numeric`.

    Strips, drops trailing `[]` repeatedly, cuts at the first `(`, strips and lowercases,
    so a declared name and a catalog `format_type` name compare equal.
    """
    value = name.strip()
    while value.endswith("[]"):
        value = value[:-2].rstrip()
    return value.split("(", 1)[0].strip().lower()
