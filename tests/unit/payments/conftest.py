"""Builders for payments in every state, so each test starts where its behaviour begins."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from clients.deadline import Deadline
from services.payments.domain.attempts import FailureCode, PaymentFailure
from services.payments.domain.methods import CaptureMethod, PaymentMethod, PaymentMethodType
from services.payments.domain.money import Money
from services.payments.domain.payment import Payment
from services.payments.domain.refunds import RefundReason
from services.payments.domain.states import PaymentState
from services.payments.psp.model import (
    AuthorizeRequest,
    FailureKind,
    PspFailure,
    PspPayment,
    PspPaymentStatus,
    PspRefund,
    SettlementLine,
)

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
EXPIRES = T0 + timedelta(days=7)


def usd(minor: int) -> Money:
    return Money(minor, "USD")


def new_payment(amount: int = 10_000) -> Payment:
    return Payment(
        payment_id="pay-1",
        amount=usd(amount),
        payment_method=PaymentMethod("pm_sandbox_ok", PaymentMethodType.CARD),
        capture_method=CaptureMethod.MANUAL,
        create_time=T0,
        update_time=T0,
    )


def _authorize(p: Payment) -> None:
    amount = p.amount
    p.authorized(
        psp="sandbox", psp_reference="sbx_auth_1", amount=amount, now=T0, expire_time=EXPIRES
    )


def _capture_half(p: Payment) -> None:
    p.captured(usd(p.amount.amount_minor // 2), final=False, now=T0)


def _capture_rest(p: Payment) -> None:
    p.captured(p.capturable, final=True, now=T0)


def _refund_quarter(p: Payment) -> None:
    p.request_refund("r1", usd(p.amount.amount_minor // 4), RefundReason.PRODUCT_RETURNED, T0)
    p.refund_succeeded("r1", "sbx_re_1", T0)


def _refund_rest(p: Payment) -> None:
    p.request_refund("r2", None, RefundReason.PRODUCT_RETURNED, T0)
    p.refund_succeeded("r2", "sbx_re_2", T0)


def _fail(p: Payment) -> None:
    p.authorization_failed(PaymentFailure(FailureCode.DECLINED, "declined", retryable=False), T0)


_CAPTURED = [_authorize, _capture_half, _capture_rest]
PATHS = {
    PaymentState.REQUIRES_AUTHORIZATION: [],
    PaymentState.FAILED: [_fail],
    PaymentState.AUTHORIZED: [_authorize],
    PaymentState.VOIDED: [_authorize, lambda p: p.voided(T0)],
    PaymentState.EXPIRED: [_authorize, lambda p: p.expired(T0)],
    PaymentState.PARTIALLY_CAPTURED: [_authorize, _capture_half],
    PaymentState.CAPTURED: _CAPTURED,
    PaymentState.PARTIALLY_REFUNDED: [*_CAPTURED, _refund_quarter],
    PaymentState.REFUNDED: [*_CAPTURED, _refund_quarter, _refund_rest],
}
"""Legal operations that bring a new payment to each state."""


def payment_in(state: PaymentState, amount: int = 10_000) -> Payment:
    """A payment brought to `state` through legal operations only."""
    payment = new_payment(amount)
    for step in PATHS[state]:
        step(payment)
    assert payment.state is state
    return payment


@pytest.fixture(name="payment_in")
def payment_in_fixture():
    """`payment_in(state, amount=10_000)`: a payment brought to `state` legally."""
    return payment_in


@pytest.fixture(name="new_payment")
def new_payment_fixture():
    """`new_payment(amount=10_000)`: a USD payment awaiting authorization."""
    return new_payment


# -- a scripted PSP connector for resilience and failover tests ----------------------------


class ScriptedConnector:
    """A PspConnector whose authorize() answers from a script: payment, failure or a hang."""

    def __init__(self, psp_id: str, script: list[object]) -> None:
        self._psp_id = psp_id
        self.script = list(script)
        self.keys: list[str] = []

    @property
    def psp_id(self) -> str:
        return self._psp_id

    async def authorize(self, request: AuthorizeRequest, *, deadline: Deadline) -> PspPayment:
        self.keys.append(request.idempotency_key)
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, float):
            await asyncio.sleep(step)
            step = self.approval(request.amount)
        if isinstance(step, PspFailure):
            raise step
        assert isinstance(step, PspPayment)
        return step

    def approval(self, amount: Money) -> PspPayment:
        return PspPayment(
            psp=self._psp_id,
            psp_reference=f"{self._psp_id}_ref",
            status=PspPaymentStatus.AUTHORIZED,
            amount=amount,
            amount_captured=Money.zero(amount.currency),
            amount_refunded=Money.zero(amount.currency),
        )

    async def find_authorization(self, key: str, *, deadline: Deadline) -> PspPayment | None:
        await asyncio.sleep(0)
        return self.approval(usd(1)) if key in self.keys else None

    async def capture(self, *_args: object, **_kwargs: object) -> PspPayment:
        raise NotImplementedError

    async def void(self, *_args: object, **_kwargs: object) -> PspPayment:
        raise NotImplementedError

    async def refund(self, *_args: object, **_kwargs: object) -> PspRefund:
        raise NotImplementedError

    async def retrieve(self, *_args: object, **_kwargs: object) -> PspPayment:
        raise NotImplementedError

    async def settlement_report(self, *_args: object, **_kwargs: object) -> list[SettlementLine]:
        raise NotImplementedError


def approve(psp: str = "alpha", amount: int = 1_000) -> PspPayment:
    return ScriptedConnector(psp, []).approval(usd(amount))


def failure(kind: FailureKind, psp: str = "alpha") -> PspFailure:
    return PspFailure(kind, psp, f"scripted {kind.value}")


@pytest.fixture
def scripted():
    """`scripted(psp_id, [step, ...])`: steps are PspPayment, PspFailure or seconds to hang."""
    return ScriptedConnector


@pytest.fixture(name="approve")
def approve_fixture():
    return approve


@pytest.fixture(name="failure")
def failure_fixture():
    return failure
