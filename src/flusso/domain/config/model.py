"""The validated, normalised deployment model every other layer reads.

Values here are already checked: identifiers are normalised, shapes are legal.
Loaders (`schema_file`, `config_file`) build them; the lock round-trips them;
mapping, hashing, document SQL and reverse resolution consume them. Frozen
dataclasses only; nothing here reads files or the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, Union

from flusso.domain.config.field_types import SCALAR_TYPES

# ---------------------------------------------------------------------------
# Vocabulary (the drift test for `flusso schema` compares against these)
# ---------------------------------------------------------------------------

TYPE_NAMES: tuple[str, ...] = SCALAR_TYPES
"""Names accepted by `values`, `value_type`, `element_type` (plus `geo_point`, parsed to be rejected)."""

JOIN_VERBS: tuple[str, ...] = ("belongs_to", "has_one", "has_many", "many_to_many")
AGGREGATE_OPS: tuple[str, ...] = ("count", "sum", "avg", "min", "max", "ids")
TYPE_KEYS: tuple[str, ...] = (
    *SCALAR_TYPES, "custom", "geo", "object", "map", *JOIN_VERBS, *AGGREGATE_OPS, "constant",
)
"""All 31 type keys a schema field may be written with."""

FIELD_SIBLINGS: tuple[str, ...] = (
    "column", "required", "options", "transforms", "default", "variants", "postgres",
    "opensearch", "lat", "lon", "values", "fields", "table", "primary_key", "foreign_key",
    "through", "filters", "order_by", "limit", "value_type", "element_type", "value",
)
"""The 22 sibling keys that may stand next to a type key."""

TRANSFORMS: tuple[str, ...] = ("lowercase", "trim")
"""Hash tags: lowercase 0, trim 1."""
VALUE_OPS: tuple[str, ...] = (
    "eq", "neq", "lt", "lte", "gt", "gte", "in", "not_in", "like", "ilike", "between",
)
"""Comparison filter ops, in hash-tag order."""
NULL_OPS: tuple[str, ...] = ("is_null", "is_not_null")
DIRECTIONS: tuple[str, ...] = ("asc", "desc")
ON_ERROR_POLICIES: tuple[str, ...] = ("stop", "skip")
TEXT_ANALYSIS: tuple[str, ...] = ("builtin", "icu")

Transform = Literal["lowercase", "trim"]
OnError = Literal["stop", "skip"]

Value = Union[None, bool, int, Decimal, str, list["Value"], dict[str, "Value"]]
"""A YAML value after loading: integers within i64 stay `int`, other numbers are `Decimal`."""


# ---------------------------------------------------------------------------
# Field types
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MapType:
    """`map` over a json/jsonb column whose values share one leaf type."""

    values: str


@dataclass(frozen=True)
class CustomType:
    """`custom`: accepted Postgres type names (normalised) and the OpenSearch type emitted verbatim."""

    postgres: tuple[str, ...]
    opensearch: str


FieldType = Union[str, MapType, CustomType]
"""A scalar type name (one of SCALAR_TYPES, or `geo_point` for one-column geo), or a map/custom type."""


# ---------------------------------------------------------------------------
# Filters, ordering, soft delete
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RawFilter:
    """Verbatim SQL inserted into a WHERE clause (stripped, non-empty)."""

    raw: str


@dataclass(frozen=True)
class NullCheck:
    """`column IS [NOT] NULL`."""

    column: str
    op: Literal["is_null", "is_not_null"]


@dataclass(frozen=True)
class Comparison:
    """`column op value`. Operands are kept as strings and cast by the SQL builder.

    `values` has one item for scalar ops, any count ≥ 1 for `in`/`not_in`, and
    exactly two for `between`.
    """

    column: str
    op: str
    values: tuple[str, ...]


Filter = Union[RawFilter, NullCheck, Comparison]


@dataclass(frozen=True)
class OrderBy:
    column: str
    direction: Literal["asc", "desc"] | None = None  # absent differs from "asc" in the hash


@dataclass(frozen=True)
class SoftDelete:
    """Marker is a column of the root row (`kind="column"`) or the column behind a root field."""

    kind: Literal["column", "field"]
    name: str
    when: tuple[Filter, ...] | None = None


# ---------------------------------------------------------------------------
# Field sources
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnSource:
    """A value read from one column of the current row (scalar, enum, custom, map, one-column geo)."""

    column: str
    type: FieldType
    nullable: bool  # raw `not required`; primary-key/default forcing happens in resolve_fields
    transforms: tuple[Transform, ...] = ()
    default: Value = None  # None means "no default"; `default: null` is the same as absent
    variants: tuple[str, ...] = ()  # enum rank order; empty = unordered


@dataclass(frozen=True)
class GroupSource:
    """`object`: a sub-object built from the same row."""

    fields: tuple[Field, ...]


@dataclass(frozen=True)
class GeoSource:
    """Two-column geo point: latitude and longitude columns of the current row."""

    lat: str
    lon: str
    nullable: bool


@dataclass(frozen=True)
class Through:
    """A many-to-many junction: `left_key` points at the parent, `right_key` at the far row."""

    table: str
    left_key: str
    right_key: str


@dataclass(frozen=True)
class BelongsTo:
    column: str  # on the parent row, points at the related primary key


@dataclass(frozen=True)
class HasOne:
    foreign_key: str  # on the related row, points back at the parent


@dataclass(frozen=True)
class HasMany:
    foreign_key: str  # on each related row, points back at the parent


@dataclass(frozen=True)
class ManyToMany:
    through: Through  # a junction row points at the parent and at the related row


JoinKind = Union[BelongsTo, HasOne, HasMany, ManyToMany]


@dataclass(frozen=True)
class Join:
    table: str
    kind: JoinKind
    primary_key: str
    nullable: bool  # to-one: not `required`; to-many: always False
    fields: tuple[Field, ...]
    filters: tuple[Filter, ...] | None = None
    order_by: tuple[OrderBy, ...] | None = None
    limit: int | None = None

    @property
    def verb(self) -> str:
        return {
            BelongsTo: "belongs_to", HasOne: "has_one", HasMany: "has_many",
            ManyToMany: "many_to_many",
        }[type(self.kind)]

    @property
    def to_many(self) -> bool:
        return isinstance(self.kind, (HasMany, ManyToMany))


@dataclass(frozen=True)
class ForeignKey:
    """Aggregate key: the related table's column pointing back at the parent."""

    column: str


AggregateKey = Union[ForeignKey, Through]


@dataclass(frozen=True)
class Aggregate:
    """`count`, `sum`/`avg`/`min`/`max` of `column`, or `ids` (the related primary keys).

    `value_type` is set for sum/min/max (and kept, ignored, if written on count/avg);
    `element_type` only for ids.
    """

    table: str
    op: Literal["count", "sum", "avg", "min", "max", "ids"]
    key: AggregateKey
    column: str | None = None
    value_type: str | None = None
    element_type: str | None = None
    filters: tuple[Filter, ...] | None = None


@dataclass(frozen=True)
class Constant:
    value: Value


Source = Union[ColumnSource, GroupSource, GeoSource, Join, Aggregate, Constant]


@dataclass(frozen=True)
class Field:
    """One document key: its name (case kept), mapping options, and where its value comes from.

    `options` already carries the injections of the language (`analyzer: flusso_code`
    on identifiers, `dynamic: true` on maps) unless the user set those keys.
    """

    name: str
    source: Source
    options: Mapping[str, Value] = field(default_factory=dict)


# ---------------------------------------------------------------------------
# Schema and deployment
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexSchema:
    """One converted `*.schema.yml`."""

    table: str
    fields: tuple[Field, ...]
    db_schema: str = "public"
    primary_key: str | None = None
    soft_delete: SoftDelete | None = None
    filters: tuple[Filter, ...] | None = None
    version: int = 1

    @property
    def soft_delete_column(self) -> str | None:
        """The root-row column that marks a row deleted (`soft_delete.field` names a root
        field, whose column is the marker); None without soft delete."""
        if self.soft_delete is None:
            return None
        if self.soft_delete.kind == "column":
            return self.soft_delete.name
        source = root_column_field(self.fields, self.soft_delete.name)
        return source.column if source is not None else None


def root_column_field(fields: tuple[Field, ...], name: str) -> ColumnSource | None:
    """The column-backed field `name` of the root row: top level or inside `object`s, depth
    first, never inside a join (a join's rows are other rows)."""
    for item in fields:
        if item.name == name and isinstance(item.source, ColumnSource):
            return item.source
        if isinstance(item.source, GroupSource):
            found = root_column_field(item.source.fields, name)
            if found is not None:
                return found
    return None


@dataclass(frozen=True, repr=False)
class Secret:
    """A value from the config that may be secret: a literal, a reference to an env var,
    or a file to read it from.

    Resolved only at run time (entrypoints); never written into the lock as a value
    unless it was a literal in the file. `repr` is masked so it cannot leak into logs.
    """

    env: str | None = None
    value: str | None = None
    file: str | None = None  # absolute once loaded; the value is the file's text, trimmed

    def __repr__(self) -> str:
        if self.env is not None:
            return f"Secret(env={self.env!r})"
        if self.file is not None:
            return f"Secret(file={self.file!r})"
        return "Secret(value='***')"


@dataclass(frozen=True)
class ConnectionParts:
    database: str
    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"
    password: Secret | None = None


@dataclass(frozen=True)
class SourceConfig:
    connection: Secret | ConnectionParts | None = None  # None: DATABASE_URL at run time
    manage_publication: bool = True
    type: Literal["postgres"] = "postgres"


AWS_SERVICES: tuple[str, ...] = ("es", "aoss")
"""SigV4 service names: `es` for OpenSearch Service domains, `aoss` for Serverless collections."""


@dataclass(frozen=True)
class AwsSigV4:
    """Sign every request with AWS Signature Version 4; credentials come from the AWS chain."""

    region: str
    service: Literal["es", "aoss"] = "es"

    @property
    def serverless(self) -> bool:
        return self.service == "aoss"


@dataclass(frozen=True)
class SinkSecurity:
    """How an OpenSearch sink proves who it is and checks who it talks to.

    File paths are absolute once loaded. At most one authentication scheme is set:
    basic auth (on the sink itself), `api_key`, `bearer_token` or `aws_sigv4`.
    """

    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_verify_hostname: bool = True
    api_key: Secret | None = None
    bearer_token: Secret | None = None
    aws_sigv4: AwsSigV4 | None = None


@dataclass(frozen=True)
class OpenSearchSinkConfig:
    url: Secret
    username: Secret | None = None
    password: Secret | None = None
    tls_verify: bool = True
    batch_size: int = 1000
    max_bytes: int = 10_485_760
    timeout_secs: int = 30
    max_retries: int = 3
    pipeline: str | None = None
    number_of_shards: int = 1
    number_of_replicas: int = 1
    refresh_interval: str = "10s"
    text_analysis: Literal["builtin", "icu"] = "builtin"
    auto_subfields: bool = True
    security: SinkSecurity = field(default_factory=SinkSecurity)


@dataclass(frozen=True)
class StdoutSinkConfig:
    pretty: bool = False


SinkConfig = Union[OpenSearchSinkConfig, StdoutSinkConfig]


@dataclass(frozen=True)
class IndexConfig:
    name: str
    enabled: bool
    schema: IndexSchema
    on_error: OnError | None = None  # None inherits the deployment's
    schema_path: str | None = None  # where it was read from; not part of the lock


@dataclass(frozen=True)
class ServerConfig:
    public_address: str | None = None  # "ip:port" or "[ipv6]:port", checked at load
    private_address: str | None = None


@dataclass(frozen=True)
class Deployment:
    """The whole validated config: what `build` compiles into the lock and `run` executes."""

    source: SourceConfig
    sinks: Mapping[str, SinkConfig] = field(default_factory=dict)  # sorted by name
    indexes: tuple[IndexConfig, ...] = ()  # in file order
    on_error: OnError = "stop"
    prefix: str = ""
    server: ServerConfig = field(default_factory=ServerConfig)

    def enabled_indexes(self) -> tuple[IndexConfig, ...]:
        return tuple(i for i in self.indexes if i.enabled)

    def index(self, name: str) -> IndexConfig | None:
        return next((i for i in self.indexes if i.name == name), None)

    def on_error_for(self, index: str) -> OnError:
        found = self.index(index)
        if found is not None and found.on_error is not None:
            return found.on_error
        return self.on_error
