"""OpenTelemetry for a service: tracer and meter providers, OTLP/Prometheus export, and the
RED metrics (rate, errors by status, duration) every RPC records."""

from __future__ import annotations

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


class RpcMetrics:
    """RED metrics of served RPCs, labelled by service, method and gRPC status code name."""

    def __init__(self, meter_provider: metrics.MeterProvider) -> None:
        meter = meter_provider.get_meter(INSTRUMENTATION)
        self._calls = meter.create_counter(
            "rpc.server.calls", unit="{call}", description="RPCs served, by method and status"
        )
        self._duration = meter.create_histogram(
            "rpc.server.duration", unit="ms", description="Time to serve an RPC"
        )

    def record(self, method: str, status: str, seconds: float) -> None:
        """Count one finished RPC and its duration."""
        service, _, name = method.lstrip("/").partition("/")
        attributes = {"rpc.service": service, "rpc.method": name, "rpc.grpc.status": status}
        self._calls.add(1, attributes)
        self._duration.record(seconds * 1000.0, attributes)
