"""The content hash that names an index.

32-bit FNV-1a over a canonical byte stream of one `IndexSchema`. The stream
reproduces upstream's (a Rust derived `Hash` walk) so hash aliases match the
reference implementation: the order of the items and every tag below are part of the
hash, and changing one renames (and rebuilds) every index.
Only the schema is hashed: index name, `enabled`, `on_error`, prefix and every
sink option stay out by construction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from flusso.domain.config import model
from flusso.domain.config.field_types import CUSTOM_TYPE, FIELD_TYPES, MAP_TYPE

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193
_U32 = 0xFFFFFFFF

# Tags of upstream's value enum; only the variants a YAML value can take appear here.
_VALUE_NULL, _VALUE_BOOL, _VALUE_INTEGER, _VALUE_DECIMAL = 0, 1, 4, 7
_VALUE_STRING, _VALUE_ARRAY, _VALUE_MAP = 8, 15, 16
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1

# The tags of each enum of upstream's model, in its declaration order. Field types have
# theirs in the field type registry; ops, transforms and directions are their position in
# the model's vocabulary tuples. No two entries of one table may share a tag.
SOURCE_TAGS: dict[type, tuple[int, ...]] = {
    model.ColumnSource: (0,), model.GroupSource: (1,), model.GeoSource: (2,),
    model.Join: (3, 0), model.Aggregate: (3, 1), model.Constant: (4,),
}
JOIN_KIND_TAGS: dict[type, int] = {
    model.BelongsTo: 0, model.HasOne: 1, model.HasMany: 2, model.ManyToMany: 3,
}
AGGREGATE_KEY_TAGS: dict[type, int] = {model.ForeignKey: 0, model.Through: 1}
AGGREGATE_OP_TAGS = {"count": 0, "sum": 1, "avg": 2, "min": 3, "max": 4, "ids": 5}
FILTER_TAGS: dict[type, int] = {model.RawFilter: 0, model.NullCheck: 1, model.Comparison: 2}
OPERAND_TAGS = {"single": 0, "list": 1, "range": 2}
SOFT_DELETE_TAGS = {"field": 0, "column": 1}


def fnv1a_32(data: bytes) -> int:
    """32-bit FNV-1a of `data`."""
    value = _FNV_OFFSET
    for byte in data:
        value = ((value ^ byte) * _FNV_PRIME) & _U32
    return value


def content_hash(schema: model.IndexSchema) -> str:
    """The 8-lowercase-hex content hash of one converted schema."""
    return f"{fnv1a_32(schema_bytes(schema)):08x}"


def decimal_words(value: Decimal) -> tuple[int, int, int, int]:
    """A decimal as upstream's normalised 96-bit form: (lo, mid, hi, flags).

    Normalised means trailing fractional zeros stripped and -0 folded into 0;
    flags hold the scale in bits 16–23 and the sign in bit 31. A coefficient
    beyond 96 bits keeps only its low 96 bits (upstream cannot load one).
    """
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):  # NaN and infinities are kept as strings by the loader
        raise ValueError(f"cannot hash the non-finite decimal {value}")
    coefficient = int("".join(map(str, digits)) or "0")
    if exponent > 0:
        coefficient *= 10**exponent
    scale = max(-exponent, 0)
    while scale > 0 and coefficient % 10 == 0:
        coefficient //= 10
        scale -= 1
    negative = bool(sign) and coefficient != 0
    flags = (scale & 0xFF) << 16 | (0x80000000 if negative else 0)
    return coefficient & _U32, (coefficient >> 32) & _U32, (coefficient >> 64) & _U32, flags


def schema_bytes(schema: model.IndexSchema) -> bytes:
    """The canonical byte stream hashed by `content_hash`."""
    out = _Stream()
    out.u8(schema.version)
    out.text(schema.table)
    out.text(schema.db_schema)
    out.opt(schema.primary_key, out.text)
    out.opt(None, out.text)  # upstream's `doc_id`: always absent once loaded
    out.opt(schema.soft_delete, out.soft_delete)
    out.opt(schema.filters, out.filters)
    out.fields(schema.fields)
    return bytes(out.buffer)


class _Stream:
    """Appends the primitives and items of the canonical stream to a byte buffer."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    # -- primitives --------------------------------------------------------

    def u8(self, value: int) -> None:
        self.buffer.append(value & 0xFF)

    def u32(self, value: int) -> None:
        self.buffer += (value & _U32).to_bytes(4, "little")

    def u64(self, value: int) -> None:
        self.buffer += value.to_bytes(8, "little")

    def i64(self, value: int) -> None:
        self.buffer += value.to_bytes(8, "little", signed=True)

    def tag(self, value: int) -> None:
        self.u64(value)

    def flag(self, value: bool) -> None:
        self.u8(1 if value else 0)

    def text(self, value: str) -> None:
        self.buffer += value.encode("utf-8")
        self.buffer.append(0xFF)

    def length(self, items: Iterable[object] | Mapping[str, object]) -> None:
        self.u64(len(items))  # type: ignore[arg-type]

    def opt(self, value: object, encode) -> None:  # noqa: ANN001 - any item encoder
        if value is None:
            self.tag(0)
        else:
            self.tag(1)
            encode(value)

    def strs(self, values: tuple[str, ...] | list[str]) -> None:
        self.length(values)
        for value in values:
            self.text(value)

    # -- values ------------------------------------------------------------

    def value(self, value: model.Value) -> None:
        if value is None:
            self.tag(_VALUE_NULL)
        elif isinstance(value, bool):
            self.tag(_VALUE_BOOL)
            self.flag(value)
        elif isinstance(value, int) and _I64_MIN <= value <= _I64_MAX:
            self.tag(_VALUE_INTEGER)
            self.i64(value)
        elif isinstance(value, (int, float, Decimal)):
            self.tag(_VALUE_DECIMAL)
            self.decimal(value if isinstance(value, Decimal) else Decimal(repr(value)))
        elif isinstance(value, str):
            self.tag(_VALUE_STRING)
            self.text(value)
        elif isinstance(value, (list, tuple)):
            self.tag(_VALUE_ARRAY)
            self.length(value)
            for item in value:
                self.value(item)
        elif isinstance(value, Mapping):
            self.tag(_VALUE_MAP)
            self.value_map(value)
        else:
            raise TypeError(f"cannot hash a value of type {type(value).__name__}")

    def value_map(self, values: Mapping[str, model.Value]) -> None:
        self.length(values)
        for key in sorted(values):
            self.text(key)
            self.value(values[key])

    def decimal(self, value: Decimal) -> None:
        for word in decimal_words(value):
            self.u32(word)

    # -- structure -----------------------------------------------------------

    def fields(self, fields: tuple[model.Field, ...]) -> None:
        self.length(fields)
        for field in fields:
            self.text(field.name)
            self.value_map(field.options)
            self.source(field)

    def source(self, field: model.Field) -> None:
        source = field.source
        tags = SOURCE_TAGS.get(type(source))
        if tags is None:
            raise TypeError(f"field {field.name!r}: unknown source {type(source).__name__}")
        for tag in tags:
            self.tag(tag)
        if isinstance(source, model.ColumnSource):
            self.column(source)
        elif isinstance(source, model.GroupSource):
            self.fields(source.fields)
        elif isinstance(source, model.GeoSource):
            self.text(source.lat)
            self.text(source.lon)
            self.flag(source.nullable)
        elif isinstance(source, model.Join):
            self.join(source)
        elif isinstance(source, model.Aggregate):
            self.aggregate(source)
        else:
            self.value(source.value)

    def column(self, column: model.ColumnSource) -> None:
        self.text(column.column)
        self.field_type(column.type)
        self.flag(column.nullable)
        self.length(column.transforms)
        for transform in column.transforms:
            self.tag(model.TRANSFORMS.index(transform))
        self.opt(column.default, self.value)
        self.strs(column.variants)

    def field_type(self, declared: model.FieldType) -> None:
        if isinstance(declared, model.MapType):
            self.tag(MAP_TYPE.hash_tag)
            self.field_type(declared.values)
        elif isinstance(declared, model.CustomType):
            self.tag(CUSTOM_TYPE.hash_tag)
            self.strs(declared.postgres)
            self.text(declared.opensearch)
        else:
            self.tag(FIELD_TYPES[declared].hash_tag)

    def join(self, join: model.Join) -> None:
        self.text(join.table)
        kind = join.kind
        self.tag(JOIN_KIND_TAGS[type(kind)])
        if isinstance(kind, model.ManyToMany):
            self.through(kind.through)
        else:
            self.text(kind.column if isinstance(kind, model.BelongsTo) else kind.foreign_key)
        self.text(join.primary_key)
        self.flag(join.nullable)
        self.opt(join.filters, self.filters)
        self.opt(join.order_by, self.order_by)
        self.opt(join.limit, self.u64)
        self.fields(join.fields)

    def through(self, through: model.Through) -> None:
        self.text(through.table)
        self.text(through.left_key)
        self.text(through.right_key)

    def order_by(self, items: tuple[model.OrderBy, ...]) -> None:
        self.length(items)
        for item in items:
            self.text(item.column)
            self.opt(item.direction, lambda d: self.tag(model.DIRECTIONS.index(d)))

    def aggregate(self, aggregate: model.Aggregate) -> None:
        self.text(aggregate.table)
        self.tag(AGGREGATE_OP_TAGS[aggregate.op])
        if aggregate.op in ("sum", "avg", "min", "max"):
            self.text(aggregate.column or "")
        elif aggregate.op == "ids":
            self.field_type(aggregate.element_type or "long")
        key = aggregate.key
        self.tag(AGGREGATE_KEY_TAGS[type(key)])
        if isinstance(key, model.ForeignKey):
            self.text(key.column)
        else:
            self.through(key)
        self.opt(aggregate.value_type, self.field_type)
        self.opt(aggregate.filters, self.filters)

    def filters(self, filters: tuple[model.Filter, ...]) -> None:
        self.length(filters)
        for item in filters:
            self.filter(item)

    def filter(self, item: model.Filter) -> None:
        self.tag(FILTER_TAGS[type(item)])
        if isinstance(item, model.RawFilter):
            self.text(item.raw)
        elif isinstance(item, model.NullCheck):
            self.text(item.column)
            self.tag(model.NULL_OPS.index(item.op))
        else:
            self.text(item.column)
            self.tag(model.VALUE_OPS.index(item.op))
            shape = _operand_shape(item.op)
            self.tag(OPERAND_TAGS[shape])
            if shape == "list":
                self.strs(item.values)
            else:
                for value in item.values[: 2 if shape == "range" else 1]:
                    self.text(value)

    def soft_delete(self, soft_delete: model.SoftDelete) -> None:
        self.tag(SOFT_DELETE_TAGS[soft_delete.kind])
        self.text(soft_delete.name)
        self.opt(soft_delete.when, self.filters)


def _operand_shape(op: str) -> str:
    if op in ("in", "not_in"):
        return "list"
    return "range" if op == "between" else "single"
