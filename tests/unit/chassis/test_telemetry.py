"""The RED metrics a server records per RPC, as a metrics reader collects them."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from services.chassis.telemetry import RpcMetrics


def _points(reader: InMemoryMetricReader, name: str) -> dict[tuple[str, str], Any]:
    data = reader.get_metrics_data()
    assert data is not None
    return {
        (str(_labels(point)["rpc.method"]), str(_labels(point)["rpc.grpc.status"])): point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    }


def _labels(point: Any) -> dict[str, Any]:
    return dict(point.attributes or {})


def test_calls_are_counted_per_method_and_status_and_their_durations_recorded() -> None:
    reader = InMemoryMetricReader()
    metrics = RpcMetrics(MeterProvider(metric_readers=[reader]))
    record = metrics.recorder("/commerce.ledger.v1.LedgerService/GetAccount")
    record("OK", 0.002)
    record("OK", 0.004)
    record("NOT_FOUND", 0.001)
    metrics.record("/commerce.ledger.v1.LedgerService/ListAccounts", "OK", 0.003)
    calls = _points(reader, "rpc.server.calls")
    assert {key: point.value for key, point in calls.items()} == {
        ("GetAccount", "OK"): 2,
        ("GetAccount", "NOT_FOUND"): 1,
        ("ListAccounts", "OK"): 1,
    }
    durations = _points(reader, "rpc.server.duration")
    ok = durations[("GetAccount", "OK")]
    assert (ok.count, ok.sum) == (2, 6.0)  # milliseconds
    record("OK", 0.001)
    counted = _points(reader, "rpc.server.calls")[("GetAccount", "OK")]
    assert counted.value == 3  # cumulative, like a Counter


def test_servers_sharing_a_meter_provider_count_into_the_same_series() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    first, second = RpcMetrics(provider), RpcMetrics(provider)
    first.record("/commerce.ledger.v1.LedgerService/GetAccount", "OK", 0.001)
    second.record("/commerce.ledger.v1.LedgerService/GetAccount", "OK", 0.001)
    second.record("/commerce.ledger.v1.LedgerService/GetAccount", "NOT_FOUND", 0.001)
    calls = _points(reader, "rpc.server.calls")
    assert {key: point.value for key, point in calls.items()} == {
        ("GetAccount", "OK"): 2,
        ("GetAccount", "NOT_FOUND"): 1,
    }
