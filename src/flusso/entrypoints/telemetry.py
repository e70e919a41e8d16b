"""OpenTelemetry for `flusso run`: OTLP traces and metrics.

Both are off unless the standard `OTEL_EXPORTER_OTLP_*ENDPOINT` variables are set; then
the SDK is imported and the exporters built. A failure to build an exporter never stops
flusso: it warns and runs without that signal. Nothing here runs at import time, and the
SDK is imported only when a signal is on, so an unconfigured process pays nothing.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from opentelemetry import trace

from flusso.app.ports import BatchStats, Observer

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

logger = logging.getLogger("flusso.telemetry")

Signal = Literal["traces", "metrics"]
OtlpProtocol = Literal["http/protobuf", "grpc"]

TRACES_SERVICE_NAME = "flusso-cli"
METRICS_SERVICE_NAME = "flusso"
METRIC_EXPORT_INTERVAL_MS = 10_000
FLUSH_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNRECOGNIZED_PROTOCOL = "unrecognized OTEL_EXPORTER_OTLP_PROTOCOL; falling back to http/protobuf"

_GENERAL_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"


def _signal_var(signal: Signal, suffix: str) -> str:
    return f"OTEL_EXPORTER_OTLP_{signal.upper()}_{suffix}"


def _present(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    return value if value is not None and value.strip() else None


def is_signal_on(env: Mapping[str, str], signal: Signal) -> bool:
    """Traces (metrics) are on when the general or the per-signal endpoint is set."""
    return bool(_present(env, _GENERAL_ENDPOINT) or _present(env, _signal_var(signal, "ENDPOINT")))


def otlp_protocol(env: Mapping[str, str], signal: Signal) -> OtlpProtocol:
    """Per-signal protocol, else the general one; unset → HTTP; unknown warns and → HTTP."""
    raw = env.get(_signal_var(signal, "PROTOCOL"))
    if raw is None:
        raw = env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    value = None if raw is None else raw.strip()
    if value is None or value == "http/protobuf":
        return "http/protobuf"
    if value == "grpc":
        return "grpc"
    logger.warning(UNRECOGNIZED_PROTOCOL, extra={"protocol": value})
    return "http/protobuf"


def otlp_endpoint(env: Mapping[str, str], signal: Signal, protocol: OtlpProtocol) -> str | None:
    """The URL to export to; the port is never inferred.

    A per-signal endpoint is used as is. Over HTTP the general endpoint is a base URL
    that gets `/v1/<signal>` appended; over gRPC it is the collector address itself.
    """
    specific = _present(env, _signal_var(signal, "ENDPOINT"))
    if specific is not None:
        return specific.strip()
    general = _present(env, _GENERAL_ENDPOINT)
    if general is None:
        return None
    if protocol == "grpc":
        return general.strip()
    return f"{general.strip().rstrip('/')}/v1/{signal}"


def _headers(env: Mapping[str, str], signal: Signal) -> dict[str, str] | None:
    raw = env.get(_signal_var(signal, "HEADERS"), env.get("OTEL_EXPORTER_OTLP_HEADERS"))
    if not raw:
        return None
    from opentelemetry.util.re import parse_env_headers

    return parse_env_headers(raw, liberal=True)


def _exporter_arguments(env: Mapping[str, str], signal: Signal) -> tuple[OtlpProtocol, dict[str, Any]]:
    protocol = otlp_protocol(env, signal)
    arguments: dict[str, Any] = {"endpoint": otlp_endpoint(env, signal, protocol)}
    headers = _headers(env, signal)
    if headers:
        arguments["headers"] = headers
    timeout = _timeout(env, signal)
    if timeout is not None:
        arguments["timeout"] = timeout
    # Compression and certificates are read by the exporter itself from the same
    # standard variables.
    return protocol, arguments


def _timeout(env: Mapping[str, str], signal: Signal) -> float | None:
    """Seconds, as the Python OTLP exporters read `OTEL_EXPORTER_OTLP_[<SIGNAL>_]TIMEOUT`."""
    raw = env.get(_signal_var(signal, "TIMEOUT")) or env.get("OTEL_EXPORTER_OTLP_TIMEOUT")
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        logger.warning("ignoring an OTLP timeout that is not a number", extra={"timeout": raw})
        return None


# The exporter class of each signal and protocol, imported only once that signal is on.
_EXPORTERS: dict[tuple[Signal, OtlpProtocol], tuple[str, str]] = {
    ("traces", "http/protobuf"): (
        "opentelemetry.exporter.otlp.proto.http.trace_exporter", "OTLPSpanExporter"
    ),
    ("traces", "grpc"): ("opentelemetry.exporter.otlp.proto.grpc.trace_exporter", "OTLPSpanExporter"),
    ("metrics", "http/protobuf"): (
        "opentelemetry.exporter.otlp.proto.http.metric_exporter", "OTLPMetricExporter"
    ),
    ("metrics", "grpc"): (
        "opentelemetry.exporter.otlp.proto.grpc.metric_exporter", "OTLPMetricExporter"
    ),
}


def _build_exporter(env: Mapping[str, str], signal: Signal) -> Any:
    protocol, arguments = _exporter_arguments(env, signal)
    module, name = _EXPORTERS[signal, protocol]
    return getattr(importlib.import_module(module), name)(**arguments)


def build_span_exporter(env: Mapping[str, str]) -> Any:
    return _build_exporter(env, "traces")


def build_metric_exporter(env: Mapping[str, str]) -> Any:
    return _build_exporter(env, "metrics")


def _resource(service_name: str) -> Any:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    # Attributes given here win over OTEL_SERVICE_NAME: the service name is fixed, so
    # dashboards and alerts can rely on it.
    return Resource.create({SERVICE_NAME: service_name})


def install_tracing(env: Mapping[str, str], *, set_global: bool = True) -> TracerProvider | None:
    """An OTLP tracer provider when traces are on, else None; logs the trace notice.

    With `set_global`, spans made through the OpenTelemetry API anywhere in flusso
    (`trace.get_tracer(...)`) go to it; that can happen once per process.
    """
    if not is_signal_on(env, "traces"):
        return None
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=_resource(TRACES_SERVICE_NAME))
        provider.add_span_processor(BatchSpanProcessor(build_span_exporter(env)))
    # Telemetry is optional: whatever stopped the exporter from being built, keep running.
    except Exception as exc:
        logger.warning(
            "OTLP trace export disabled; logging to stderr only", extra={"error": str(exc)}
        )
        return None
    if set_global:
        trace.set_tracer_provider(provider)
    logger.info("OTLP trace export enabled")
    return provider


def install_metrics(
    env: Mapping[str, str], *, export_interval_ms: int = METRIC_EXPORT_INTERVAL_MS
) -> MeterProvider | None:
    """An OTLP meter provider pushing every 10 s when metrics are on, else None."""
    if not is_signal_on(env, "metrics"):
        return None
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        reader = PeriodicExportingMetricReader(
            build_metric_exporter(env), export_interval_millis=export_interval_ms
        )
        provider = MeterProvider(
            metric_readers=[reader], resource=_resource(METRICS_SERVICE_NAME)
        )
    # Telemetry is optional: whatever stopped the exporter from being built, keep running.
    except Exception as exc:
        logger.warning("OTLP metric export disabled", extra={"error": str(exc)})
        return None
    logger.info("OTLP metric export enabled")
    return provider


@dataclass
class Telemetry:
    """The providers of one process; both None when no OTLP endpoint is configured."""

    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None
    _observer: OtelObserver | None = field(default=None, init=False, repr=False)

    @property
    def enabled(self) -> bool:
        return self.tracer_provider is not None or self.meter_provider is not None

    def tracer(self, name: str = "flusso") -> trace.Tracer:
        """This process's tracer; the API's no-op tracer when traces are off."""
        if self.tracer_provider is not None:
            return self.tracer_provider.get_tracer(name)
        return trace.get_tracer(name)

    def observers(self, in_flight: Callable[[], int] = lambda: 0) -> list[Observer]:
        """The OTel metrics observer when metrics are on, else nothing (splat into a composite).

        One observer per process: every pipeline run gets the same instruments, so the
        counters stay cumulative across restarts. `in_flight` is taken from the first call.
        """
        if self.meter_provider is None:
            return []
        if self._observer is None:
            self._observer = OtelObserver(self.meter_provider, in_flight)
        return [self._observer]

    def shutdown(self) -> None:
        """Final metric push, then flush and stop the tracer. Failures only warn.

        Blocking (the exporters speak synchronous HTTP/gRPC): from the event loop use
        `shutdown_async`.
        """
        meters, self.meter_provider = self.meter_provider, None
        if meters is not None:
            try:
                meters.shutdown()
            # Shutting down must finish; a collector that is gone costs a warning only.
            except Exception as exc:
                logger.warning("OTLP metric shutdown failed", extra={"error": str(exc)})
        tracer, self.tracer_provider = self.tracer_provider, None
        if tracer is not None:
            try:
                tracer.force_flush()
                tracer.shutdown()
            # Shutting down must finish; a collector that is gone costs a warning only.
            except Exception as exc:
                logger.warning("OTLP trace flush failed", extra={"error": str(exc)})

    async def shutdown_async(self) -> None:
        if self.enabled:
            await asyncio.to_thread(self.shutdown)


def install_telemetry(env: Mapping[str, str], *, set_global: bool = True) -> Telemetry:
    """Tracing then metrics, each only if its endpoint is configured.

    `run` logs the trace notice first and the metric notice after the HTTP password
    warning; call `install_tracing` and `install_metrics` separately for that.
    """
    return Telemetry(install_tracing(env, set_global=set_global), install_metrics(env))


class OtelObserver:
    """An Observer recording the pipeline's events on OTel instruments, named like the
    Prometheus metrics with dots (`flusso.changes.captured`)."""

    def __init__(self, meter_provider: Any, in_flight: Callable[[], int] = lambda: 0) -> None:
        from opentelemetry.metrics import CallbackOptions, Observation

        meter = meter_provider.get_meter("flusso")
        self._captured = meter.create_counter(
            "flusso.changes.captured", description="Changes pulled from the source into the queue"
        )
        self._committed = meter.create_counter(
            "flusso.changes.committed",
            description="Changes whose documents have been flushed and acked",
        )
        self._built = meter.create_counter(
            "flusso.documents.built", description="Documents assembled and written to the sink"
        )
        self._batches = meter.create_counter("flusso.batches", description="Batches flushed")
        self._seeded = meter.create_counter(
            "flusso.indexes.seeded", description="Indexes whose backfill completed this run"
        )
        self._quarantined = meter.create_counter(
            "flusso.documents.quarantined",
            description="Documents the sink rejected and the engine skipped (on_error = skip). "
            "A non-zero value means data is being dropped — alert on it.",
        )
        self._errors = meter.create_counter(
            "flusso.errors", description="Errors that stopped the pipeline"
        )
        self._flush = meter.create_histogram(
            "flusso.flush.duration",
            unit="s",
            description="Time taken by each sink flush",
            explicit_bucket_boundaries_advisory=list(FLUSH_BUCKETS),
        )
        self._lag = meter.create_gauge(
            "flusso.replication.slot_lag",
            unit="By",
            description="Bytes the destination trails the source by",
        )
        self._indexes = meter.create_gauge(
            "flusso.indexes", description="Target indexes ensured at the sink"
        )

        def read_in_flight(_options: CallbackOptions) -> list[Observation]:
            return [Observation(in_flight())]

        meter.create_observable_gauge(
            "flusso.changes.in_flight",
            callbacks=[read_in_flight],
            description="Captured but not yet committed changes (back-pressure)",
        )

    def on_indexes_ensured(self, count: int) -> None:
        self._indexes.set(count)

    def on_backfill_started(self, indexes: Sequence[str]) -> None:
        return None

    def on_index_seeded(self, index: str) -> None:
        self._seeded.add(1, {"index": index})

    def on_backfill_completed(self) -> None:
        return None

    def on_live_started(self) -> None:
        return None

    def on_change_captured(self) -> None:
        self._captured.add(1)

    def on_batch_committed(self, stats: BatchStats) -> None:
        self._committed.add(stats.changes)
        for index, count in stats.documents_by_index.items():
            self._built.add(count, {"index": index})
        self._batches.add(1)
        self._flush.record(stats.flush_seconds)

    def on_slot_lag(self, lag_bytes: int) -> None:
        self._lag.set(max(0, lag_bytes))

    def on_document_quarantined(self, index: str, id: str, reason: str) -> None:
        self._quarantined.add(1, {"index": index})

    def on_changes_discarded(self, count: int) -> None:
        return None

    def on_error(self, message: str) -> None:
        self._errors.add(1)
