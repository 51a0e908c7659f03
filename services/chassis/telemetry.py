"""OpenTelemetry for a service: tracer and meter providers, OTLP/Prometheus export, and the
RED metrics (rate, errors by status, duration) every RPC records."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated
from wsgiref.simple_server import WSGIServer

from opentelemetry import metrics, trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.exporter.zipkin.json import ZipkinExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from prometheus_client import CollectorRegistry, start_http_server
from pydantic import BaseModel, Field

INSTRUMENTATION = "commerce-mesh.chassis"


class TelemetrySettings(BaseModel):
    """Where telemetry goes. Nothing is exported unless configured."""

    otlp_endpoint: str | None = None  # e.g. http://otel-collector:4317
    # Zipkin JSON v2 (the local trace viewer of `make run`, docs/adr/0018), beside or instead.
    zipkin_endpoint: str | None = None  # e.g. http://127.0.0.1:9411/api/v2/spans
    sample_ratio: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    metrics_port: Annotated[int, Field(ge=0, le=65535)] | None = None  # Prometheus /metrics
    metrics_host: str = "0.0.0.0"  # noqa: S104 - scraped from inside the cluster
    service_version: str = "dev"


@dataclass(frozen=True, slots=True)
class Telemetry:
    """The providers a server instruments itself with, and the /metrics endpoint if any."""

    tracer_provider: trace.TracerProvider
    meter_provider: metrics.MeterProvider
    metrics_server: WSGIServer | None = None

    @classmethod
    def current(cls) -> Telemetry:
        """The process-wide providers (no-op until `configure` installs real ones)."""
        return cls(trace.get_tracer_provider(), metrics.get_meter_provider())

    @property
    def metrics_port(self) -> int | None:
        """The port Prometheus scrapes (`/metrics`), if metrics are exported."""
        return self.metrics_server.server_port if self.metrics_server else None

    def shutdown(self) -> None:
        """Flush spans and metrics, and stop the /metrics endpoint."""
        if isinstance(self.tracer_provider, TracerProvider):
            self.tracer_provider.shutdown()
        if isinstance(self.meter_provider, MeterProvider):
            self.meter_provider.shutdown()
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
            self.metrics_server.server_close()


def build(service_name: str, settings: TelemetrySettings) -> Telemetry:
    """SDK providers for a service, exporting as configured; installs nothing globally."""
    resource = Resource.create(
        {"service.name": service_name, "service.version": settings.service_version}
    )
    tracer_provider = TracerProvider(
        resource=resource, sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio))
    )
    if settings.otlp_endpoint:
        tracer_provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_endpoint))
        )
    if settings.zipkin_endpoint:
        tracer_provider.add_span_processor(
            BatchSpanProcessor(ZipkinExporter(endpoint=settings.zipkin_endpoint))
        )
    readers: list[MetricReader] = []
    metrics_server = None
    if settings.metrics_port is not None:
        registry = CollectorRegistry()  # one per service: no clash with other instrumentation
        readers.append(PrometheusMetricReader(registry=registry))
        metrics_server, _ = start_http_server(
            settings.metrics_port, addr=settings.metrics_host, registry=registry
        )
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    return Telemetry(tracer_provider, meter_provider, metrics_server)


def configure(service_name: str, settings: TelemetrySettings) -> Telemetry:
    """`build`, then install the providers process-wide; call once from a service's bootstrap."""
    telemetry = build(service_name, settings)
    trace.set_tracer_provider(telemetry.tracer_provider)
    metrics.set_meter_provider(telemetry.meter_provider)
    return telemetry


class _CallCounts:
    """Calls per (method, status) in plain integers, reported by one observable counter per
    meter provider: every RpcMetrics of a provider (several servers in one process) shares it,
    as they would share a synchronous counter of the same name."""

    def __init__(self, meter: metrics.Meter) -> None:
        # (attributes, [count]) per (method, status); entries are only ever added, so the
        # collecting thread can snapshot them while the event loop counts.
        self._cells: dict[tuple[str, str], tuple[dict[str, str], list[int]]] = {}
        meter.create_observable_counter(
            "rpc.server.calls",
            callbacks=[self._observe],
            unit="{call}",
            description="RPCs served, by method and status",
        )

    def cell(self, method: str, status: str) -> tuple[dict[str, str], list[int]]:
        """The label set and the counter of one method and status."""
        found = self._cells.get((method, status))
        if found is None:
            service, _, name = method.lstrip("/").partition("/")
            attributes = {"rpc.service": service, "rpc.method": name, "rpc.grpc.status": status}
            found = self._cells.setdefault((method, status), (attributes, [0]))
        return found

    def _observe(self, _options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        return [
            metrics.Observation(count[0], attributes)
            for attributes, count in list(self._cells.values())
        ]


_CALL_COUNTS: weakref.WeakKeyDictionary[metrics.MeterProvider, _CallCounts] = (
    weakref.WeakKeyDictionary()
)


class RpcMetrics:
    """RED metrics of served RPCs, labelled by service, method and gRPC status code name.

    The call count is kept in plain integers per label set and reported through an
    observable counter when a reader collects: the SDK's per-measurement work (attribute
    cleaning, hashing, locking: ~9 µs per instrument call) is paid once per call, for the
    duration histogram, instead of twice (docs/adr/0020)."""

    def __init__(self, meter_provider: metrics.MeterProvider) -> None:
        meter = meter_provider.get_meter(INSTRUMENTATION)
        counts = _CALL_COUNTS.get(meter_provider)
        if counts is None:
            counts = _CALL_COUNTS[meter_provider] = _CallCounts(meter)
        self._counts = counts
        self._duration = meter.create_histogram(
            "rpc.server.duration", unit="ms", description="Time to serve an RPC"
        )
        self._recorders: dict[str, Callable[[str, float], None]] = {}

    def record(self, method: str, status: str, seconds: float) -> None:
        """Count one finished RPC and its duration."""
        self.recorder(method)(status, seconds)

    def recorder(self, method: str) -> Callable[[str, float], None]:
        """`record` for one method, its label sets looked up once per status (the hot path)."""
        recorder = self._recorders.get(method)
        if recorder is not None:
            return recorder
        cells: dict[str, tuple[dict[str, str], list[int]]] = {}
        cell_of = self._counts.cell
        observe = self._duration.record

        def record(status: str, seconds: float) -> None:
            found = cells.get(status)
            if found is None:
                found = cells[status] = cell_of(method, status)
            found[1][0] += 1
            observe(seconds * 1000.0, found[0])

        self._recorders[method] = record
        return record
