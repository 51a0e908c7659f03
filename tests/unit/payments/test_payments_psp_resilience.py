"""Resilience around one PSP: retries only when safe, deadlines, circuit breaker, bulkhead."""

import asyncio

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from clients.deadline import Deadline
from clients.retry import RetryPolicy
from services.payments.domain.attempts import AttemptOutcome, Operation
from services.payments.domain.money import Money
from services.payments.psp.breaker import STATE_GAUGE, CircuitState, PspCircuitBreakers
from services.payments.psp.bulkhead import Bulkhead
from services.payments.psp.guarded import CallRecord, GuardedPsp
from services.payments.psp.model import AuthorizeRequest, FailureKind, PspFailure

K = FailureKind
REQUEST = AuthorizeRequest(
    amount=Money(1_000, "USD"),
    payment_method_token="pm_sandbox_ok",
    idempotency_key="0b7d7a36-3d0e-4c55-9a39-5b0d3b1e8f10",
)
POLICY = RetryPolicy(max_attempts=4, initial_backoff=0.1, max_backoff=1.0)


class Harness:
    def __init__(self, connector, *, threshold=3, ttl=30.0, limit=8, max_wait=0.0, policy=POLICY):
        self.reader = InMemoryMetricReader()
        meter = MeterProvider(metric_readers=[self.reader]).get_meter("test")
        self.breakers = PspCircuitBreakers(threshold=threshold, ttl=ttl, meter=meter)
        self.bulkhead = Bulkhead(connector.psp_id, limit, max_wait=max_wait)
        self.sleeps: list[float] = []
        self.jitter_bounds: list[tuple[float, float]] = []
        self.connector = connector
        self.guarded = GuardedPsp(
            connector,
            self.breakers,
            self.bulkhead,
            policy=policy,
            attempt_timeout=0.2,
            sleep=self._sleep,
            jitter=self._jitter,
        )
        self.records: list[CallRecord] = []

    async def _sleep(self, seconds):
        self.sleeps.append(seconds)

    def _jitter(self, low, high):
        self.jitter_bounds.append((low, high))
        return high

    async def authorize(self, seconds=2.0, operation=Operation.AUTHORIZE):
        async def send(deadline):
            return await self.connector.authorize(REQUEST, deadline=deadline)

        return await self.guarded.call(
            operation, send, deadline=Deadline.after(seconds), records=self.records
        )

    def gauge(self):
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == STATE_GAUGE:
                        return {
                            dict(p.attributes or {})["psp"]: getattr(p, "value", None)
                            for p in metric.data.data_points
                        }
        return {}


async def test_retryable_safe_failures_are_retried_with_the_same_idempotency_key(
    scripted, approve, failure
):
    connector = scripted("alpha", [failure(K.RETRYABLE_SAFE), failure(K.RETRYABLE_SAFE), approve()])
    harness = Harness(connector)
    payment = await harness.authorize()
    assert payment.psp_reference == "alpha_ref"
    assert connector.keys == [REQUEST.idempotency_key] * 3
    assert [r.outcome for r in harness.records] == [
        AttemptOutcome.ERROR,
        AttemptOutcome.ERROR,
        AttemptOutcome.SUCCEEDED,
    ]


async def test_backoff_is_exponential_with_full_jitter(scripted, approve, failure):
    connector = scripted("alpha", [failure(K.RETRYABLE_SAFE)] * 3 + [approve()])
    harness = Harness(connector, threshold=100)
    await harness.authorize()
    assert harness.jitter_bounds == [(0.0, 0.1), (0.0, 0.2), (0.0, 0.4)]
    assert harness.sleeps == [0.1, 0.2, 0.4]


@pytest.mark.parametrize("kind", [K.AMBIGUOUS, K.DECLINED, K.PERMANENT])
async def test_other_failures_are_never_retried(scripted, approve, failure, kind):
    connector = scripted("alpha", [failure(kind), approve()])
    harness = Harness(connector)
    with pytest.raises(PspFailure) as raised:
        await harness.authorize()
    assert raised.value.kind is kind
    assert len(connector.keys) == 1


async def test_retries_stop_after_the_last_attempt(scripted, failure):
    connector = scripted("alpha", [failure(K.RETRYABLE_SAFE)])
    harness = Harness(connector, threshold=100)
    with pytest.raises(PspFailure):
        await harness.authorize()
    assert len(connector.keys) == POLICY.max_attempts


async def test_retries_stop_when_the_backoff_would_outlive_the_deadline(scripted, failure):
    connector = scripted("alpha", [failure(K.RETRYABLE_SAFE)])
    harness = Harness(connector, threshold=100)
    with pytest.raises(PspFailure):
        await harness.authorize(seconds=0.15)
    assert len(connector.keys) == 2  # waits 0.1, then 0.2 would pass the deadline


async def test_a_hung_authorization_is_ambiguous_at_its_deadline(scripted):
    harness = Harness(scripted("alpha", [5.0]))
    with pytest.raises(PspFailure) as raised:
        await harness.authorize(seconds=0.1)
    assert raised.value.kind is K.AMBIGUOUS
    assert harness.records[-1].outcome is AttemptOutcome.UNKNOWN


async def test_a_hung_status_inquiry_is_safe_to_retry(scripted):
    harness = Harness(scripted("alpha", [5.0]), policy=RetryPolicy.disabled())
    with pytest.raises(PspFailure) as raised:
        await harness.authorize(seconds=0.1, operation=Operation.STATUS_INQUIRY)
    assert raised.value.kind is K.RETRYABLE_SAFE


async def test_breaker_opens_after_consecutive_failures_and_skips_calls(scripted, failure):
    connector = scripted("alpha", [failure(K.RETRYABLE_SAFE)])
    harness = Harness(connector, threshold=3, policy=RetryPolicy.disabled())
    for _ in range(3):
        with pytest.raises(PspFailure):
            await harness.authorize()
    assert harness.breakers.state("alpha") is CircuitState.OPEN
    assert harness.gauge() == {"alpha": CircuitState.OPEN}
    with pytest.raises(PspFailure) as raised:
        await harness.authorize()
    assert raised.value.skipped
    assert harness.records[-1].outcome is AttemptOutcome.SKIPPED
    assert len(connector.keys) == 3


async def test_breaker_half_opens_after_its_ttl_and_a_success_closes_it(scripted, approve, failure):
    connector = scripted("alpha", [failure(K.AMBIGUOUS), approve()])
    harness = Harness(connector, threshold=1, ttl=0.05, policy=RetryPolicy.disabled())
    with pytest.raises(PspFailure):
        await harness.authorize()
    assert harness.gauge() == {"alpha": CircuitState.OPEN}
    await asyncio.sleep(0.08)
    assert harness.gauge() == {"alpha": CircuitState.HALF_OPEN}
    await harness.authorize()
    assert harness.gauge() == {"alpha": CircuitState.CLOSED}


async def test_a_failed_trial_call_reopens_the_breaker(scripted, failure):
    connector = scripted("alpha", [failure(K.RETRYABLE_SAFE)])
    harness = Harness(connector, threshold=1, ttl=0.05, policy=RetryPolicy.disabled())
    with pytest.raises(PspFailure):
        await harness.authorize()
    await asyncio.sleep(0.08)
    with pytest.raises(PspFailure) as trial:
        await harness.authorize()
    assert not trial.value.skipped
    assert harness.breakers.state("alpha") is CircuitState.OPEN


@pytest.mark.parametrize("kind", [K.DECLINED, K.PERMANENT])
async def test_declines_and_bad_requests_do_not_open_the_breaker(scripted, failure, kind):
    harness = Harness(scripted("alpha", [failure(kind)]), threshold=1)
    for _ in range(3):
        with pytest.raises(PspFailure):
            await harness.authorize()
    assert harness.breakers.state("alpha") is CircuitState.CLOSED


async def test_bulkhead_bounds_concurrent_calls(scripted):
    harness = Harness(scripted("alpha", [0.03]), limit=2, max_wait=1.0)
    await asyncio.gather(*(harness.authorize() for _ in range(6)))
    assert harness.bulkhead.peak == 2
    assert harness.bulkhead.in_flight == 0


async def test_a_full_bulkhead_skips_the_call_without_waiting(scripted):
    harness = Harness(scripted("alpha", [0.05]), limit=2, max_wait=0.0)
    results = await asyncio.gather(*(harness.authorize() for _ in range(5)), return_exceptions=True)
    skipped = [r for r in results if isinstance(r, PspFailure) and r.skipped]
    assert len(skipped) == 3
    assert harness.breakers.state("alpha") is CircuitState.CLOSED
