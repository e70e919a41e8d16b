"""Schemas whose content hashes, mappings and locks are pinned by `test_pinned_hashes.py`.

An index hash decides whether an index is rebuilt, so a refactoring of the loader, the
type registry or the hash stream must leave every value here unchanged. The corpus covers
the shipped examples, the test fixtures, and one schema that uses every type key, every
scalar type in each place a type name may stand, every filter and join shape.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCALARS = (
    "text", "identifier", "keyword", "enum", "uuid", "boolean", "short", "integer",
    "long", "float", "double", "decimal", "date", "timestamp", "binary", "json",
)
MAP_VALUES = (
    "text", "identifier", "keyword", "enum", "uuid", "short", "integer", "long", "float",
    "double", "decimal", "date", "timestamp",
)


def _every_scalar() -> str:
    lines = ["version: 1", "table: things", "primary_key: id", "fields:"]
    for position, name in enumerate(SCALARS):
        lines += [f"  - {name}: f{position}", f"    required: {str(position % 2 == 0).lower()}"]
    for position, name in enumerate(MAP_VALUES):
        lines += [f"  - map: m{position}", f"    values: {name}", "    required: false"]
    for op in ("sum", "min", "max"):
        for position, name in enumerate(SCALARS):
            lines += [
                f"  - {op}: {op}{position}", "    table: rel", "    column: v",
                f"    value_type: {name}", "    foreign_key: thing_id",
            ]
    for position, name in enumerate(SCALARS):
        lines += [
            f"  - ids: ids{position}", "    table: rel", f"    element_type: {name}",
            "    through: {table: j, left_key: a, right_key: b}",
        ]
    lines += [
        "  - count: n", "    table: rel", "    foreign_key: thing_id",
        "    filters: [{column: k, op: not_in, value: [1, 2]}, {raw: 'x > 1'}]",
        "  - avg: mean", "    table: rel", "    column: v", "    foreign_key: thing_id",
        "  - avg: typedMean", "    table: rel", "    column: v", "    value_type: float",
        "    foreign_key: thing_id",
        "  - geo: place", "    column: place", "    required: false",
        "  - custom: vec", "    postgres: ['numeric(10,2)[]', tsvector]",
        "    opensearch: rank_features", "    required: true",
        "    options: {positive_score_impact: false}",
        "  - keyword: code", "    required: false", "    transforms: [lowercase, trim]",
        "    default: 'n/a'",
        "  - long: big", "    required: false", "    default: 99999999999999999999",
        "  - double: ratio", "    required: false", "    default: -0.50",
        "  - boolean: flag", "    required: false", "    default: true",
        "  - constant: nothing", "    value: null",
        "  - constant: mixed", "    value: [1, 2.50, '3', {k: [true, ~]}, 1e3, -0.0]",
        "  - has_one: latest", "    table: rel", "    primary_key: id",
        "    foreign_key: thing_id", "    required: true",
        "    order_by: [{column: at}, {column: id, direction: asc}]",
        "    filters:",
        "      - {column: at, op: gte, value: '2024-01-01'}",
        "      - {column: at, op: lt, value: 2025}",
        "      - {column: name, op: like, value: 'a%'}",
        "      - {column: name, op: ilike, value: 'B%'}",
        "      - {column: n, op: neq, value: 0}",
        "      - {column: n, op: lte, value: 10}",
        "      - {column: n, op: gt, value: -1}",
        "      - {column: gone, op: is_not_null}",
        "    fields:",
        "      - object: inner",
        "        options: {enabled: true}",
        "        fields:",
        "          - many_to_many: tags",
        "            table: tags",
        "            primary_key: id",
        "            through: {table: thing_tags, left_key: thing_id, right_key: tag_id}",
        "            limit: 3",
        "            order_by: [{column: label, direction: desc}]",
        "            fields:",
        "              - text: label",
        "                required: true",
    ]
    return "\n".join(lines) + "\n"


SOFT_DELETE_BY_FIELD = """\
version: 1
table: posts
schema: blog
primary_key: id
soft_delete:
  field: isDeleted
  when:
    - {column: purged_at, op: is_null}
    - {column: score, op: between, value: [1, 10.0]}
filters:
  - raw: "published"
  - {column: lang, op: in, value: [en, de]}
fields:
  - object: flags
    fields:
      - boolean: isDeleted
        column: is_deleted
        required: false
  - geo: loc
    lat: latitude
    lon: longitude
    required: true
  - belongs_to: author
    table: authors
    primary_key: id
    fields: []
"""


def corpus() -> dict[str, str]:
    """Name → schema YAML of every pinned schema."""
    from mapping_examples import WORKED_EXAMPLE_YAML
    from test_index_jsonschema import EXAMPLES
    from test_schema_fuzz import SEEDS

    found = {
        f"examples/{path.name}": path.read_text(encoding="utf-8")
        for path in sorted((ROOT / "examples" / "schemas").glob("*.schema.yml"))
    }
    found["worked_example"] = WORKED_EXAMPLE_YAML
    found.update({f"fuzz_seed_{n}": text for n, text in enumerate(SEEDS)})
    found.update({f"jsonschema_example_{n}": text for n, text in enumerate(EXAMPLES)})
    found["every_type"] = _every_scalar()
    found["soft_delete_by_field"] = SOFT_DELETE_BY_FIELD
    return found
