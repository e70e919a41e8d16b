"""OTLP export end to end: a real HTTP collector stub on loopback
receives the spans and metrics flusso pushes, and decodes their protobuf bodies."""

from __future__ import annotations

import gzip
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from flusso.app.ports import BatchStats
from flusso.entrypoints.telemetry import install_telemetry


@dataclass
class Collector:
    url: str
    traces: list[ExportTraceServiceRequest] = field(default_factory=list)
    metrics: list[ExportMetricsServiceRequest] = field(default_factory=list)

    def span_names(self) -> list[str]:
        return [
            span.name
            for request in self.traces
            for resource in request.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]

    def metric_names(self) -> set[str]:
        return {
            metric.name
            for request in self.metrics
            for resource in request.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
        }

    def resource_services(self) -> set[tuple[str, str]]:
        found = set()
        for kind, requests in (("traces", self.traces), ("metrics", self.metrics)):
            for request in requests:
                resources = getattr(
                    request, "resource_spans" if kind == "traces" else "resource_metrics"
                )
                for resource in resources:
                    for attribute in resource.resource.attributes:
                        if attribute.key == "service.name":
                            found.add((kind, attribute.value.string_value))
        return found


async def _body(request: web.Request) -> bytes:
    raw = await request.read()
    return gzip.decompress(raw) if request.headers.get("Content-Encoding") == "gzip" else raw


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    received = Collector(url="")

    async def traces(request: web.Request) -> web.Response:
        received.traces.append(ExportTraceServiceRequest.FromString(await _body(request)))
        reply = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=reply, content_type="application/x-protobuf")

    async def metrics(request: web.Request) -> web.Response:
        received.metrics.append(ExportMetricsServiceRequest.FromString(await _body(request)))
        reply = ExportMetricsServiceResponse().SerializeToString()
        return web.Response(body=reply, content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    app.router.add_post("/v1/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    received.url = f"http://127.0.0.1:{port}"
    try:
        yield received
    finally:
        await runner.cleanup()


async def test_spans_and_metrics_reach_an_otlp_http_collector(
    collector: Collector, caplog: pytest.LogCaptureFixture
) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url}
    with caplog.at_level(logging.INFO, logger="flusso"):
        telemetry = install_telemetry(env, set_global=False)
    assert telemetry.enabled
    [observer] = telemetry.observers(in_flight=lambda: 0)

    tracer = telemetry.tracer("flusso.run")
    with tracer.start_as_current_span("daemon.run"), tracer.start_as_current_span(
        "engine.run", attributes={"skip_backfill": False, "queue_capacity": 1024}
    ):
        observer.on_indexes_ensured(1)
        observer.on_change_captured()
        observer.on_batch_committed(
            BatchStats(changes=1, documents=1, documents_by_index={"users": 1}, flush_seconds=0.01)
        )
        observer.on_index_seeded("users")
        observer.on_slot_lag(128)

    # The exporters speak blocking HTTP to a server on this very loop: shut down off-loop.
    await telemetry.shutdown_async()

    assert sorted(collector.span_names()) == ["daemon.run", "engine.run"]
    assert {
        "flusso.changes.captured",
        "flusso.changes.committed",
        "flusso.documents.built",
        "flusso.batches",
        "flusso.indexes.seeded",
        "flusso.flush.duration",
        "flusso.replication.slot_lag",
        "flusso.indexes",
        "flusso.changes.in_flight",
    } <= collector.metric_names()
    assert collector.resource_services() == {("traces", "flusso-cli"), ("metrics", "flusso")}
    notices = [r.getMessage() for r in caplog.records]
    assert notices.index("OTLP trace export enabled") < notices.index("OTLP metric export enabled")


async def test_a_collector_that_is_down_never_stops_the_shutdown(
    caplog: pytest.LogCaptureFixture, unused_tcp_port: int
) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{unused_tcp_port}",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
    }
    telemetry = install_telemetry(env, set_global=False)
    [observer] = telemetry.observers()
    observer.on_change_captured()
    with telemetry.tracer().start_as_current_span("daemon.start"):
        pass
    await telemetry.shutdown_async()
    assert not telemetry.enabled
