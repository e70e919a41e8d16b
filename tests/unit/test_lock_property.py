"""Any valid deployment survives encode → decode unchanged."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flusso.domain.config.lock import decode_lock, encode_lock
from flusso.domain.config.model import (
    AGGREGATE_OPS,
    SCALAR_TYPES,
    TRANSFORMS,
    VALUE_OPS,
    Aggregate,
    AwsSigV4,
    BelongsTo,
    ColumnSource,
    Comparison,
    ConnectionParts,
    Constant,
    CustomType,
    Deployment,
    Field,
    ForeignKey,
    GeoSource,
    GroupSource,
    HasMany,
    HasOne,
    IndexConfig,
    IndexSchema,
    Join,
    ManyToMany,
    MapType,
    NullCheck,
    OpenSearchSinkConfig,
    OrderBy,
    RawFilter,
    Secret,
    ServerConfig,
    SinkSecurity,
    SoftDelete,
    SourceConfig,
    StdoutSinkConfig,
    Through,
)

try:
    from flusso.domain.hashing import content_hash
except ImportError:  # hashing is written alongside; the round trip is checked either way
    content_hash = None

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)
names = st.from_regex(r"[a-z_][a-z0-9_]{0,7}", fullmatch=True)
optional = st.none().__or__

secrets = st.one_of(st.builds(Secret, env=names), st.builds(Secret, value=text))
references = st.one_of(st.builds(Secret, env=names), st.builds(Secret, file=text))

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=-10**9, max_value=10**9),
    text,
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)
    ),
    max_leaves=6,
)
options = st.dictionaries(text, values, max_size=2)


@st.composite
def comparisons(draw) -> Comparison:
    op = draw(st.sampled_from(VALUE_OPS))
    if op in ("in", "not_in"):
        operands = draw(st.lists(text, min_size=1, max_size=3))
    elif op == "between":
        operands = draw(st.lists(text, min_size=2, max_size=2))
    else:
        operands = [draw(text)]
    return Comparison(column=draw(names), op=op, values=tuple(operands))


filters = st.one_of(
    st.builds(RawFilter, raw=text),
    st.builds(NullCheck, column=names, op=st.sampled_from(["is_null", "is_not_null"])),
    comparisons(),
)
filter_lists = optional(st.lists(filters, max_size=2).map(tuple))
throughs = st.builds(Through, table=names, left_key=names, right_key=names)
field_types = st.one_of(
    st.sampled_from((*SCALAR_TYPES, "geo_point")),
    st.builds(MapType, values=st.sampled_from(SCALAR_TYPES)),
    st.builds(
        CustomType,
        postgres=st.lists(names, min_size=1, max_size=2).map(tuple),
        opensearch=names,
    ),
)

column_sources = st.builds(
    ColumnSource,
    column=names,
    type=field_types,
    nullable=st.booleans(),
    transforms=st.lists(st.sampled_from(TRANSFORMS), max_size=2).map(tuple),
    default=scalars,
    variants=st.lists(names, max_size=3).map(tuple),
)
aggregates = st.builds(
    Aggregate,
    table=names,
    op=st.sampled_from(AGGREGATE_OPS),
    key=st.one_of(st.builds(ForeignKey, column=names), throughs),
    column=optional(names),
    value_type=optional(st.sampled_from(SCALAR_TYPES)),
    element_type=optional(st.sampled_from(SCALAR_TYPES)),
    filters=filter_lists,
)
leaf_sources = st.one_of(
    column_sources,
    st.builds(GeoSource, lat=names, lon=names, nullable=st.booleans()),
    st.builds(Constant, value=values),
    aggregates,
)


def with_children(children: st.SearchStrategy[tuple[Field, ...]]) -> st.SearchStrategy:
    kinds = st.one_of(
        st.builds(BelongsTo, column=names),
        st.builds(HasOne, foreign_key=names),
        st.builds(HasMany, foreign_key=names),
        st.builds(ManyToMany, through=throughs),
    )
    return st.one_of(
        st.builds(GroupSource, fields=children),
        st.builds(
            Join,
            table=names,
            kind=kinds,
            primary_key=names,
            nullable=st.booleans(),
            fields=children,
            filters=filter_lists,
            order_by=optional(
                st.lists(
                    st.builds(OrderBy, column=names, direction=optional(st.sampled_from(["asc", "desc"]))),
                    max_size=2,
                ).map(tuple)
            ),
            limit=optional(st.integers(0, 2**32)),
        ),
    )


def fields_of(sources: st.SearchStrategy) -> st.SearchStrategy[tuple[Field, ...]]:
    field = st.builds(Field, name=names, source=sources, options=options)
    return st.lists(field, max_size=3).map(tuple)


field_lists = st.recursive(
    fields_of(leaf_sources),
    lambda inner: fields_of(st.one_of(leaf_sources, with_children(inner))),
    max_leaves=8,
)

# Every schema also carries one join (any kind, with a comparison filter and a nested
# aggregate) and one aggregate (any op, with a filter), so each run of the round trip
# exercises relations and filters, not only scalars.
some_filters = st.tuples(comparisons(), st.lists(filters, max_size=1)).map(
    lambda pair: (pair[0], *pair[1])
)
filtered_aggregates = st.builds(
    Aggregate,
    table=names,
    op=st.sampled_from(AGGREGATE_OPS),
    key=st.one_of(st.builds(ForeignKey, column=names), throughs),
    column=optional(names),
    value_type=optional(st.sampled_from(SCALAR_TYPES)),
    element_type=optional(st.sampled_from(SCALAR_TYPES)),
    filters=some_filters,
)
filtered_joins = st.builds(
    Join,
    table=names,
    kind=st.one_of(
        st.builds(BelongsTo, column=names),
        st.builds(HasOne, foreign_key=names),
        st.builds(HasMany, foreign_key=names),
        st.builds(ManyToMany, through=throughs),
    ),
    primary_key=names,
    nullable=st.booleans(),
    fields=st.tuples(
        st.builds(Field, name=names, source=aggregates), fields_of(leaf_sources)
    ).map(lambda pair: (pair[0], *pair[1])),
    filters=some_filters,
    order_by=optional(st.lists(st.builds(OrderBy, column=names), max_size=1).map(tuple)),
    limit=optional(st.integers(0, 2**32)),
)
relational_fields = st.tuples(
    st.builds(Field, name=names, source=filtered_joins, options=options),
    st.builds(Field, name=names, source=filtered_aggregates),
)

schemas = st.builds(
    IndexSchema,
    table=names,
    fields=st.tuples(relational_fields, field_lists).map(lambda pair: pair[0] + pair[1]),
    db_schema=names,
    primary_key=optional(names),
    soft_delete=optional(
        st.builds(
            SoftDelete, kind=st.sampled_from(["column", "field"]), name=names, when=filter_lists
        )
    ),
    filters=filter_lists,
    version=st.just(1),
)
on_error = st.sampled_from(["stop", "skip"])
indexes = st.builds(
    IndexConfig, name=names, enabled=st.booleans(), schema=schemas, on_error=optional(on_error)
)
sinks = st.one_of(
    st.builds(StdoutSinkConfig, pretty=st.booleans()),
    st.builds(
        OpenSearchSinkConfig,
        url=secrets,
        username=optional(secrets),
        password=optional(secrets),
        tls_verify=st.booleans(),
        batch_size=st.integers(0, 2**32 - 1),
        max_bytes=st.integers(0, 2**64 - 1),
        timeout_secs=st.integers(0, 2**64 - 1),
        max_retries=st.integers(0, 2**32 - 1),
        pipeline=optional(text),
        number_of_shards=st.integers(0, 2**32 - 1),
        number_of_replicas=st.integers(0, 2**32 - 1),
        refresh_interval=text,
        text_analysis=st.sampled_from(["builtin", "icu"]),
        auto_subfields=st.booleans(),
        security=st.builds(
            SinkSecurity,
            tls_ca_file=optional(text),
            tls_cert_file=optional(text),
            tls_key_file=optional(text),
            tls_verify_hostname=st.booleans(),
            api_key=optional(references),
            bearer_token=optional(references),
            aws_sigv4=optional(
                st.builds(AwsSigV4, region=text, service=st.sampled_from(["es", "aoss"]))
            ),
        ),
    ),
)
connections = optional(
    st.one_of(
        secrets,
        st.builds(
            ConnectionParts,
            database=text,
            host=text,
            port=st.integers(0, 65535),
            user=text,
            password=optional(secrets),
        ),
    )
)
deployments = st.builds(
    Deployment,
    source=st.builds(SourceConfig, connection=connections, manage_publication=st.booleans()),
    sinks=st.dictionaries(names, sinks, max_size=3).map(lambda d: dict(sorted(d.items()))),
    indexes=st.lists(indexes, max_size=3).map(tuple),
    on_error=on_error,
    prefix=text,
    server=st.builds(
        ServerConfig,
        public_address=optional(st.just("0.0.0.0:9464")),
        private_address=optional(st.just("[::1]:9465")),
    ),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deployments)
def test_encode_then_decode_gives_the_same_deployment_and_hashes(deployment):
    text_ = encode_lock(deployment, flusso_version="9.9.9")
    decoded = decode_lock(text_, path="flusso.lock")
    assert decoded == deployment
    assert encode_lock(decoded, flusso_version="9.9.9") == text_
    if content_hash is not None:
        for before, after in zip(deployment.indexes, decoded.indexes, strict=True):
            assert content_hash(after.schema) == content_hash(before.schema)


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_decimal_values_keep_their_exact_digits(value):
    deployment = Deployment(
        source=SourceConfig(),
        indexes=(
            IndexConfig(
                name="d",
                enabled=True,
                schema=IndexSchema(table="t", fields=(Field("c", Constant(value)),)),
            ),
        ),
    )
    decoded = decode_lock(encode_lock(deployment, flusso_version="x"), path="l")
    constant = decoded.indexes[0].schema.fields[0].source
    assert isinstance(constant, Constant)
    assert isinstance(constant.value, Decimal)
    assert str(constant.value) == str(value)
