"""OTLP setup and the OTel metrics observer, without a network."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from flusso.app.ports import BatchStats
from flusso.entrypoints import telemetry
from flusso.entrypoints.telemetry import (
    FLUSH_BUCKETS,
    UNRECOGNIZED_PROTOCOL,
    OtelObserver,
    Telemetry,
    install_metrics,
    install_telemetry,
    install_tracing,
    is_signal_on,
    otlp_endpoint,
    otlp_protocol,
)

BASE = "http://127.0.0.1:4318"


def messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


def test_without_otlp_variables_nothing_is_installed_and_shutdown_is_a_no_op() -> None:
    installed = install_telemetry({"PATH": "/bin"}, set_global=False)
    assert installed.tracer_provider is None
    assert installed.meter_provider is None
    assert not installed.enabled
    assert installed.observers() == []
    installed.shutdown()


@pytest.mark.parametrize(
    ("env", "traces", "metrics"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": BASE}, True, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": BASE}, True, False),
        ({"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": BASE}, False, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, False, False),
        ({}, False, False),
    ],
)
def test_each_signal_is_on_only_when_its_endpoint_or_the_general_one_is_set(
    env: dict[str, str], traces: bool, metrics: bool
) -> None:
    assert is_signal_on(env, "traces") is traces
    assert is_signal_on(env, "metrics") is metrics


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "http/protobuf"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "grpc"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": " http/protobuf "}, "http/protobuf"),
        (
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"},
            "grpc",
        ),
        (
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"},
            "http/protobuf",
        ),
        ({"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc"}, "http/protobuf"),
    ],
)
def test_the_per_signal_protocol_wins_over_the_general_one(
    env: dict[str, str], expected: str
) -> None:
    assert otlp_protocol(env, "traces") == expected


def test_an_unknown_protocol_warns_and_falls_back_to_http(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="flusso"):
        chosen = otlp_protocol({"OTEL_EXPORTER_OTLP_PROTOCOL": " http/json "}, "metrics")
    assert chosen == "http/protobuf"
    [record] = [r for r in caplog.records if r.getMessage() == UNRECOGNIZED_PROTOCOL]
    assert record.levelno == logging.WARNING
    assert record.protocol == "http/json"


@pytest.mark.parametrize(
    ("env", "protocol", "expected"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": BASE}, "http/protobuf", f"{BASE}/v1/traces"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": BASE + "/"}, "http/protobuf", f"{BASE}/v1/traces"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}, "grpc", "http://c:4317"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": BASE, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t/x"},
            "http/protobuf",
            "http://t/x",
        ),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector"}, "http/protobuf", "http://collector/v1/traces"),
    ],
)
def test_the_endpoint_comes_from_the_variables_and_the_port_is_never_inferred(
    env: dict[str, str], protocol: str, expected: str
) -> None:
    assert otlp_endpoint(env, "traces", protocol) == expected  # type: ignore[arg-type]


def test_trace_export_enabled_logs_the_notice_and_names_the_service_flusso_cli(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "someone-else")
    with caplog.at_level(logging.INFO, logger="flusso"):
        provider = install_tracing({"OTEL_EXPORTER_OTLP_ENDPOINT": BASE}, set_global=False)
    assert provider is not None
    try:
        assert provider.resource.attributes["service.name"] == "flusso-cli"
        assert "OTLP trace export enabled" in messages(caplog, logging.INFO)
    finally:
        provider.shutdown()


def test_metric_export_enabled_logs_the_notice_and_names_the_service_flusso(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "someone-else")
    with caplog.at_level(logging.INFO, logger="flusso"):
        provider = install_metrics({"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": f"{BASE}/v1/metrics"})
    assert provider is not None
    try:
        assert provider._sdk_config.resource.attributes["service.name"] == "flusso"
        assert "OTLP metric export enabled" in messages(caplog, logging.INFO)
    finally:
        Telemetry(meter_provider=provider).shutdown()


def test_an_exporter_that_cannot_be_built_disables_that_signal_with_a_warning(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_env: object) -> object:
        raise ValueError("bad certificate file")

    monkeypatch.setattr(telemetry, "build_span_exporter", broken)
    monkeypatch.setattr(telemetry, "build_metric_exporter", broken)
    with caplog.at_level(logging.INFO, logger="flusso"):
        installed = install_telemetry({"OTEL_EXPORTER_OTLP_ENDPOINT": BASE}, set_global=False)
    assert not installed.enabled
    warnings = {r.getMessage(): r for r in caplog.records if r.levelno == logging.WARNING}
    assert warnings["OTLP trace export disabled; logging to stderr only"].error == (
        "bad certificate file"
    )
    assert warnings["OTLP metric export disabled"].error == "bad certificate file"
    assert messages(caplog, logging.INFO) == []


def test_grpc_protocol_builds_the_grpc_exporters() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    span_exporter = telemetry.build_span_exporter(env)
    metric_exporter = telemetry.build_metric_exporter(env)
    try:
        assert "grpc" in type(span_exporter).__module__
        assert "grpc" in type(metric_exporter).__module__
    finally:
        span_exporter.shutdown()
        metric_exporter.shutdown()


def test_a_failing_shutdown_only_warns(caplog: pytest.LogCaptureFixture) -> None:
    class Exploding:
        def shutdown(self) -> None:
            raise RuntimeError("collector gone")

        def force_flush(self) -> None:
            raise RuntimeError("collector gone")

    installed = Telemetry(tracer_provider=Exploding(), meter_provider=Exploding())  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="flusso"):
        installed.shutdown()
    assert messages(caplog, logging.WARNING) == [
        "OTLP metric shutdown failed",
        "OTLP trace flush failed",
    ]
    assert not installed.enabled


# -- OtelObserver ----------------------------------------------------------------------


def collected(reader: InMemoryMetricReader) -> dict[str, object]:
    data = reader.get_metrics_data()
    return {
        metric.name: metric
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }


def points(metric: object) -> dict[tuple[tuple[str, object], ...], object]:
    return {tuple(sorted(p.attributes.items())): p for p in metric.data.data_points}  # type: ignore[attr-defined]


def test_the_otel_observer_records_every_event_under_the_dotted_names() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    observer = OtelObserver(provider, in_flight=lambda: 4)
    observer.on_indexes_ensured(2)
    for _ in range(3):
        observer.on_change_captured()
    observer.on_batch_committed(
        BatchStats(changes=3, documents=3, documents_by_index={"users": 2, "orders": 1}, flush_seconds=0.02)
    )
    observer.on_index_seeded("users")
    observer.on_document_quarantined("orders", "9", "mapper_parsing_exception")
    observer.on_slot_lag(-5)
    observer.on_slot_lag(4096)
    observer.on_error("boom")

    metrics = collected(reader)
    assert set(metrics) == {
        "flusso.changes.captured",
        "flusso.changes.committed",
        "flusso.documents.built",
        "flusso.batches",
        "flusso.indexes.seeded",
        "flusso.documents.quarantined",
        "flusso.errors",
        "flusso.flush.duration",
        "flusso.replication.slot_lag",
        "flusso.indexes",
        "flusso.changes.in_flight",
    }
    value = lambda name: next(iter(points(metrics[name]).values())).value  # noqa: E731
    assert value("flusso.changes.captured") == 3
    assert value("flusso.changes.committed") == 3
    assert value("flusso.batches") == 1
    assert value("flusso.errors") == 1
    assert value("flusso.indexes") == 2
    assert value("flusso.replication.slot_lag") == 4096
    assert value("flusso.changes.in_flight") == 4
    built = points(metrics["flusso.documents.built"])
    assert {key: p.value for key, p in built.items()} == {
        (("index", "orders"),): 1,
        (("index", "users"),): 2,
    }
    assert [p.value for p in points(metrics["flusso.indexes.seeded"]).values()] == [1]
    assert list(points(metrics["flusso.documents.quarantined"])) == [(("index", "orders"),)]
    flush = metrics["flusso.flush.duration"]
    [histogram] = points(flush).values()
    assert tuple(histogram.explicit_bounds) == FLUSH_BUCKETS
    assert histogram.count == 1
    assert flush.unit == "s"
    assert metrics["flusso.replication.slot_lag"].unit == "By"
    assert metrics["flusso.errors"].description == "Errors that stopped the pipeline"
    provider.shutdown()


def test_telemetry_with_metrics_on_offers_one_otel_observer_per_process() -> None:
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    installed = Telemetry(meter_provider=provider)
    [observer] = installed.observers(in_flight=lambda: 0)
    assert isinstance(observer, OtelObserver)
    assert installed.observers() == [observer]  # the same instruments for every run
    installed.shutdown()
    assert installed.meter_provider is None
