"""Failover along a route: onward only after RETRYABLE_SAFE; never after a decision or doubt."""

import pytest

from clients.deadline import Deadline
from clients.retry import RetryPolicy
from services.payments.domain.attempts import AttemptOutcome, FailureCode
from services.payments.domain.money import Money
from services.payments.psp.breaker import PspCircuitBreakers
from services.payments.psp.bulkhead import Bulkhead
from services.payments.psp.failover import authorize_with_failover, resolve_authorization
from services.payments.psp.guarded import GuardedPsp
from services.payments.psp.model import AuthorizeRequest, FailureKind

K = FailureKind
REQUEST = AuthorizeRequest(
    amount=Money(1_000, "USD"),
    payment_method_token="pm_sandbox_ok",
    idempotency_key="5c0e3d5e-8d7b-4a8e-9f61-2b5f7c9d1a22",
)


def guard(breakers, connector):
    return GuardedPsp(
        connector,
        breakers,
        Bulkhead(connector.psp_id, 4),
        policy=RetryPolicy.disabled(),
        attempt_timeout=0.2,
    )


@pytest.fixture
def mesh(scripted):
    def build(alpha_script, beta_script, threshold=5):
        breakers = PspCircuitBreakers(threshold=threshold, ttl=30)
        alpha, beta = scripted("alpha", alpha_script), scripted("beta", beta_script)
        return alpha, beta, {"alpha": guard(breakers, alpha), "beta": guard(breakers, beta)}

    return build


async def test_retryable_failure_fails_over_to_the_next_psp(mesh, approve, failure):
    _, beta, psps = mesh([failure(K.RETRYABLE_SAFE)], [approve("beta")])
    result = await authorize_with_failover(["alpha", "beta"], psps, REQUEST, Deadline.after(2))
    assert result.payment is not None
    assert result.psp == "beta"
    assert result.failure is None
    assert beta.keys == [REQUEST.idempotency_key]
    assert [(r.psp, r.outcome) for r in result.records] == [
        ("alpha", AttemptOutcome.ERROR),
        ("beta", AttemptOutcome.SUCCEEDED),
    ]


@pytest.mark.parametrize("kind", [K.AMBIGUOUS, K.DECLINED, K.PERMANENT])
async def test_no_failover_after_a_decision_or_an_unknown_outcome(mesh, approve, failure, kind):
    _, beta, psps = mesh([failure(kind)], [approve("beta")])
    result = await authorize_with_failover(["alpha", "beta"], psps, REQUEST, Deadline.after(2))
    assert result.payment is None
    assert result.failure is not None
    assert result.failure.kind is kind
    assert result.psp == "alpha"
    assert result.outcome_unknown == (kind is K.AMBIGUOUS)
    assert beta.keys == []


async def test_an_open_circuit_fails_over_without_calling_the_psp(mesh, approve, failure):
    alpha, _, psps = mesh([failure(K.RETRYABLE_SAFE)], [approve("beta")], threshold=1)
    await authorize_with_failover(["alpha"], psps, REQUEST, Deadline.after(2))
    result = await authorize_with_failover(["alpha", "beta"], psps, REQUEST, Deadline.after(2))
    assert result.psp == "beta"
    assert result.records[0].outcome is AttemptOutcome.SKIPPED
    assert len(alpha.keys) == 1


async def test_every_psp_failing_retryably_is_psp_unavailable(mesh, failure):
    _, _, psps = mesh([failure(K.RETRYABLE_SAFE)], [failure(K.RETRYABLE_SAFE, "beta")])
    result = await authorize_with_failover(["alpha", "beta"], psps, REQUEST, Deadline.after(2))
    assert result.failure is not None
    assert result.failure.code is FailureCode.PSP_UNAVAILABLE
    assert not result.outcome_unknown


async def test_an_empty_route_is_no_route(mesh, approve):
    _, _, psps = mesh([approve()], [approve("beta")])
    result = await authorize_with_failover([], psps, REQUEST, Deadline.after(2))
    assert result.failure is not None
    assert result.failure.code is FailureCode.NO_ROUTE
    assert result.records == []


async def test_an_unknown_outcome_is_resolved_by_asking_the_same_psp(mesh, failure):
    _, _, psps = mesh([failure(K.AMBIGUOUS)], [failure(K.RETRYABLE_SAFE, "beta")])
    result = await authorize_with_failover(["alpha", "beta"], psps, REQUEST, Deadline.after(2))
    assert result.outcome_unknown
    found = await resolve_authorization(
        psps[result.psp], REQUEST.idempotency_key, Deadline.after(2), result.records
    )
    assert found is not None
    assert found.psp == "alpha"
    assert result.records[-1].outcome is AttemptOutcome.SUCCEEDED
