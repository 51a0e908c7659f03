"""Failover, retries, breaker and bulkhead against real sandboxes over HTTP."""

import asyncio
import uuid

import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from clients.deadline import Deadline
from clients.retry import RetryPolicy
from services.payments.domain.attempts import AttemptOutcome
from services.payments.domain.money import Money
from services.payments.psp.breaker import STATE_GAUGE, CircuitState, PspCircuitBreakers
from services.payments.psp.bulkhead import Bulkhead
from services.payments.psp.failover import authorize_with_failover, resolve_authorization
from services.payments.psp.guarded import GuardedPsp
from services.payments.psp.model import AuthorizeRequest, FailureKind, PspPaymentStatus
from services.payments.psp.sandbox_connector import SandboxConnector

POLICY = RetryPolicy(max_attempts=2, initial_backoff=0.01, max_backoff=0.05)
ROUTE = ["alpha", "beta"]


OK_TOKEN = "pm_sandbox_ok"


def authorization(token=OK_TOKEN):
    return AuthorizeRequest(
        amount=Money(2_500, "GBP"),
        payment_method_token=token,
        idempotency_key=str(uuid.uuid4()),
    )


class Mesh:
    """Two sandbox PSPs, alpha and beta, each behind its own guard, sharing a breaker set."""

    def __init__(
        self, alpha_url, beta_url, client, *, threshold=5, ttl=30.0, limit=8, attempt_timeout=0.8
    ):
        self.reader = InMemoryMetricReader()
        meter = MeterProvider(metric_readers=[self.reader]).get_meter("test")
        self.breakers = PspCircuitBreakers(threshold=threshold, ttl=ttl, meter=meter)
        self.bulkheads = {
            "alpha": Bulkhead("alpha", limit, max_wait=2),
            "beta": Bulkhead("beta", 8),
        }
        self.psps = {
            psp: GuardedPsp(
                SandboxConnector(client, url, psp_id=psp),
                self.breakers,
                self.bulkheads[psp],
                policy=POLICY,
                # Below the sandbox's 1 s timeouts in these tests, well above a local call on a
                # loaded machine (an attempt cut short is ambiguous and never fails over).
                attempt_timeout=attempt_timeout,
            )
            for psp, url in (("alpha", alpha_url), ("beta", beta_url))
        }

    async def authorize(self, request, seconds=3.0):
        return await authorize_with_failover(ROUTE, self.psps, request, Deadline.after(seconds))

    def gauge(self, psp):
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == STATE_GAUGE:
                        for point in metric.data.data_points:
                            if dict(point.attributes or {}).get("psp") == psp:
                                return getattr(point, "value", None)
        return None


@pytest.fixture
async def sandboxes(sandbox_factory):
    return await sandbox_factory(), await sandbox_factory()


async def test_retryable_failures_on_the_first_psp_succeed_on_the_second_exactly_once(
    sandboxes, http
):
    alpha, beta = sandboxes
    await http.client.put(f"{alpha.url}/admin/config", json={"error_rate": 1.0})
    mesh = Mesh(alpha.url, beta.url, http.client)
    request = authorization()
    result = await mesh.authorize(request)
    assert result.payment is not None
    assert result.psp == "beta"
    assert result.payment.status is PspPaymentStatus.AUTHORIZED
    key = request.idempotency_key
    assert http.keys_sent_to(alpha.url) == [key, key]  # retried once, same key
    assert http.keys_sent_to(beta.url) == [key]
    assert alpha.state.books.authorizations == {}
    assert len(beta.state.books.by_idempotency_key(key)) == 1
    assert [(r.psp, r.outcome) for r in result.records] == [
        ("alpha", AttemptOutcome.ERROR),
        ("alpha", AttemptOutcome.ERROR),
        ("beta", AttemptOutcome.SUCCEEDED),
    ]


async def test_first_psp_breaker_opens_skips_it_and_later_half_opens(sandboxes, http):
    alpha, beta = sandboxes
    await http.client.put(f"{alpha.url}/admin/config", json={"error_rate": 1.0})
    mesh = Mesh(alpha.url, beta.url, http.client, threshold=2, ttl=0.3)

    first = await mesh.authorize(authorization())
    assert first.psp == "beta"
    assert mesh.gauge("alpha") == CircuitState.OPEN

    skipped = authorization()
    second = await mesh.authorize(skipped)
    assert second.psp == "beta"
    assert second.records[0].outcome is AttemptOutcome.SKIPPED
    assert skipped.idempotency_key not in http.keys_sent_to(alpha.url)

    await asyncio.sleep(0.35)
    assert mesh.gauge("alpha") == CircuitState.HALF_OPEN
    await http.client.put(f"{alpha.url}/admin/config", json={"error_rate": 0.0})
    third = await mesh.authorize(authorization())
    assert third.psp == "alpha"
    assert mesh.gauge("alpha") == CircuitState.CLOSED
    assert mesh.gauge("beta") == CircuitState.CLOSED


async def test_a_refused_connection_fails_over(sandbox, http, closed_port_url):
    mesh = Mesh(closed_port_url, sandbox.url, http.client)
    result = await mesh.authorize(authorization())
    assert result.psp == "beta"
    assert result.records[0].failure is not None
    assert result.records[0].failure.kind is FailureKind.RETRYABLE_SAFE


async def test_timing_out_before_sending_fails_over(sandboxes, http):
    alpha, beta = sandboxes
    await http.client.put(f"{alpha.url}/admin/config", json={"timeout_seconds": 1.0})
    # alpha's own client has one connection; a slow call holds it, so the next request
    # times out waiting for the pool: it was never sent, so beta may take it.
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=1)) as narrow:
        # The pool wait must run out (0.1 + 2 attempts x 0.3 s) before the slow call frees
        # the connection at 1 s.
        mesh = Mesh(alpha.url, beta.url, http.client, attempt_timeout=0.3)
        mesh.psps["alpha"].connector = SandboxConnector(narrow, alpha.url, psp_id="alpha")
        slow = asyncio.create_task(
            narrow.post(
                f"{alpha.url}/v1/authorizations",
                json={"amount_minor": 1, "currency": "GBP", "payment_method": "pm_sandbox_timeout"},
                headers={"Idempotency-Key": str(uuid.uuid4())},
                timeout=5,
            )
        )
        await asyncio.sleep(0.1)
        result = await mesh.authorize(authorization())
        assert result.psp == "beta"
        assert [r.failure.kind for r in result.records if r.failure] == [
            FailureKind.RETRYABLE_SAFE,
            FailureKind.RETRYABLE_SAFE,
        ]
        assert (await slow).status_code == 201


async def test_an_ambiguous_timeout_never_fails_over_and_is_resolved_by_inquiry(sandboxes, http):
    alpha, beta = sandboxes
    await http.client.put(f"{alpha.url}/admin/config", json={"timeout_seconds": 1.0})
    mesh = Mesh(alpha.url, beta.url, http.client)
    request = authorization("pm_sandbox_timeout")
    result = await mesh.authorize(request)
    assert result.outcome_unknown
    assert result.psp == "alpha"
    assert [r.outcome for r in result.records] == [AttemptOutcome.UNKNOWN]
    assert http.keys_sent_to(beta.url) == []
    assert beta.state.books.authorizations == {}
    found = await resolve_authorization(
        mesh.psps["alpha"], request.idempotency_key, Deadline.after(2), result.records
    )
    assert found is not None
    assert found.status is PspPaymentStatus.AUTHORIZED  # the PSP had acted


async def test_a_503_once_is_retried_on_the_same_psp_with_the_same_key(sandboxes, http):
    alpha, beta = sandboxes
    mesh = Mesh(alpha.url, beta.url, http.client)
    request = authorization("pm_sandbox_retry_once")
    result = await mesh.authorize(request)
    assert result.psp == "alpha"
    assert http.keys_sent_to(alpha.url) == [request.idempotency_key] * 2
    assert http.keys_sent_to(beta.url) == []
    assert len(alpha.state.books.authorizations) == 1


async def test_a_decline_never_fails_over(sandboxes, http):
    alpha, beta = sandboxes
    mesh = Mesh(alpha.url, beta.url, http.client)
    result = await mesh.authorize(authorization("pm_sandbox_decline"))
    assert result.failure is not None
    assert result.failure.kind is FailureKind.DECLINED
    assert http.keys_sent_to(beta.url) == []


async def test_the_bulkhead_bounds_concurrent_calls_to_a_slow_psp(sandbox_factory, http):
    alpha = await sandbox_factory(latency_ms=100)
    beta = await sandbox_factory()
    mesh = Mesh(alpha.url, beta.url, http.client, limit=2)
    results = await asyncio.gather(*(mesh.authorize(authorization()) for _ in range(6)))
    assert {(r.psp, r.payment is not None) for r in results} == {("alpha", True)}
    assert mesh.bulkheads["alpha"].peak == 2
    assert len(alpha.state.books.authorizations) == 6
