"""Failover through the service: retryable failures on the first PSP end in exactly one
authorization on the second; the first PSP's breaker opens, then half-opens and closes; an
ambiguous timeout never fails over. (Its own module: it trips this server's breakers.)"""

import asyncio

import pytest

from commerce.payments.v1 import resources_pb2 as res
from services.payments.psp.breaker import CircuitState
from services.payments.sandbox.config import SandboxConfig
from tests.integration.payments.conftest import FAST_PSP

pytestmark = pytest.mark.integration


def keyed(sandbox, key):
    return sandbox.state.books.by_idempotency_key(key)


async def test_retryable_failures_fail_over_once_and_the_breaker_opens_then_half_opens(payments):
    await payments.route("alpha", "beta")
    breakers = payments.registry.breakers
    payments.alpha.state.config = SandboxConfig(error_rate=1.0)  # 503: nothing done

    first = await payments.authorize(1_100)
    assert first.state == res.PAYMENT_STATE_AUTHORIZED
    assert first.psp == "beta"
    assert [(a.psp, a.outcome) for a in first.attempts] == [
        ("alpha", res.ATTEMPT_OUTCOME_ERROR),
        ("alpha", res.ATTEMPT_OUTCOME_ERROR),  # retried on the same PSP, same key
        ("beta", res.ATTEMPT_OUTCOME_SUCCEEDED),
    ]
    assert {a.error_class for a in first.attempts[:2]} == {res.ERROR_CLASS_RETRYABLE}
    key = first.attempts[0].psp_idempotency_key
    assert {a.psp_idempotency_key for a in first.attempts} == {key}
    assert keyed(payments.alpha, key) == []
    assert len(keyed(payments.beta, key)) == 1  # exactly once
    assert [(h.amount.amount_minor, h.state) for h in await payments.holds()] == [(1_100, 1)]

    second = await payments.authorize(2_200)  # the third alpha failure opens the circuit
    assert second.psp == "beta"
    assert breakers.state("alpha") is CircuitState.OPEN
    third = await payments.authorize(3_300)
    assert [(a.psp, a.outcome) for a in third.attempts] == [
        ("alpha", res.ATTEMPT_OUTCOME_SKIPPED),  # not sent: the circuit is open
        ("beta", res.ATTEMPT_OUTCOME_SUCCEEDED),
    ]

    payments.alpha.state.config = SandboxConfig()  # alpha recovers
    await asyncio.sleep(FAST_PSP.breaker_ttl_seconds + 0.1)
    assert breakers.state("alpha") is CircuitState.HALF_OPEN
    trial = await payments.authorize(4_400)
    assert trial.psp == "alpha"  # the half-open trial succeeded
    assert breakers.state("alpha") is CircuitState.CLOSED
    captured = await payments.capture(trial.name)
    assert captured.state == res.PAYMENT_STATE_CAPTURED


async def test_every_psp_failing_is_unavailable_and_nothing_is_held(payments):
    await payments.route("beta")
    payments.beta.state.config = SandboxConfig(error_rate=1.0)
    code, info = await payments.fails("AuthorizePayment", payments.authorize_request(500))
    assert (code.name, info.reason) == ("UNAVAILABLE", "PSP_UNAVAILABLE")
    assert await payments.holds() == []


async def test_a_timeout_after_sending_is_never_failed_over(payments):
    await payments.route("alpha", "beta")
    payments.alpha.state.config = SandboxConfig(latency_ms=800)  # longer than an attempt
    payment = await payments.authorize(900)
    assert payment.outcome_unknown
    assert [(a.psp, a.error_class) for a in payment.attempts] == [
        ("alpha", res.ERROR_CLASS_AMBIGUOUS)
    ]
    key = payment.attempts[0].psp_idempotency_key
    assert keyed(payments.beta, key) == []
    await asyncio.sleep(0.5)  # the slow request lands at alpha
    payments.alpha.state.config = SandboxConfig()  # quick again, for the status inquiry
    await payments.service.resolve_due(due_only=False)
    resolved = await payments.get(payment.name)
    assert (resolved.state, resolved.psp) == (res.PAYMENT_STATE_AUTHORIZED, "alpha")
    assert len(keyed(payments.alpha, key)) == 1
