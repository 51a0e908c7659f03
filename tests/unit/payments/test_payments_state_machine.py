"""Every transition of the contract's payment state machine is legal, and nothing else is."""

from datetime import UTC, datetime
from itertools import product

import pytest

from commerce.payments.v1 import resources_pb2
from services.chassis.errors import FailedPrecondition
from services.payments.domain.attempts import FailureCode, PaymentFailure
from services.payments.domain.money import Money
from services.payments.domain.refunds import RefundReason
from services.payments.domain.states import (
    FINAL,
    TRANSITIONS,
    PaymentState,
    can_transition,
    check_transition,
)

S = PaymentState
T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def usd(minor):
    return Money(minor, "USD")


# Copied by hand from the comment on `Payment` in payments/v1/resources.proto.
CONTRACT = {
    (S.REQUIRES_AUTHORIZATION, S.AUTHORIZED),
    (S.REQUIRES_AUTHORIZATION, S.CAPTURED),
    (S.REQUIRES_AUTHORIZATION, S.FAILED),
    (S.AUTHORIZED, S.PARTIALLY_CAPTURED),
    (S.AUTHORIZED, S.CAPTURED),
    (S.AUTHORIZED, S.VOIDED),
    (S.AUTHORIZED, S.EXPIRED),
    (S.PARTIALLY_CAPTURED, S.PARTIALLY_CAPTURED),
    (S.PARTIALLY_CAPTURED, S.CAPTURED),
    (S.CAPTURED, S.PARTIALLY_REFUNDED),
    (S.CAPTURED, S.REFUNDED),
    (S.PARTIALLY_REFUNDED, S.PARTIALLY_REFUNDED),
    (S.PARTIALLY_REFUNDED, S.REFUNDED),
}
ALL_PAIRS = list(product(PaymentState, PaymentState))


def test_states_are_the_contracts_payment_states():
    names = {
        v.name.removeprefix("PAYMENT_STATE_")
        for v in resources_pb2.PaymentState.DESCRIPTOR.values
        if v.number
    }
    assert names == {s.value for s in PaymentState}


def test_transition_table_is_exactly_the_contracts():
    table = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    assert table == CONTRACT


def test_voided_failed_expired_and_refunded_are_final():
    assert {S.VOIDED, S.FAILED, S.EXPIRED, S.REFUNDED} == FINAL


@pytest.mark.parametrize(("current", "target"), sorted(CONTRACT))
def test_legal_transition_is_allowed(current, target):
    assert can_transition(current, target)
    check_transition(current, target, "test")


@pytest.mark.parametrize(
    ("current", "target"), [p for p in ALL_PAIRS if p not in CONTRACT], ids=str
)
def test_illegal_transition_raises_invalid_payment_state(current, target):
    with pytest.raises(FailedPrecondition) as raised:
        check_transition(current, target, "test")
    assert raised.value.reason == "INVALID_PAYMENT_STATE"
    assert raised.value.metadata["state"] == current.value


# -- the same machine, driven through the aggregate's operations ---------------------------

DECLINE = PaymentFailure(FailureCode.DECLINED, "declined", retryable=False)


def _authorize(p):
    p.authorized(psp="sandbox", psp_reference="r", amount=usd(10_000), now=T0)


def _authorize_and_capture(p):
    p.authorized_and_captured(psp="sandbox", psp_reference="r", amount=usd(10_000), now=T0)


def _fail(p):
    p.authorization_failed(DECLINE, T0)


def _capture_part(p):
    p.captured(usd(1), final=False, now=T0)


def _capture_final(p):
    p.captured(usd(1), final=True, now=T0)


def _void(p):
    p.voided(T0)


def _expire(p):
    p.expired(T0)


def _refund(p):
    p.request_refund("new-refund", usd(1), RefundReason.OTHER, T0)


OPERATIONS = {
    "authorize": (_authorize, {S.REQUIRES_AUTHORIZATION: S.AUTHORIZED}),
    "authorize_and_capture": (_authorize_and_capture, {S.REQUIRES_AUTHORIZATION: S.CAPTURED}),
    "fail": (_fail, {S.REQUIRES_AUTHORIZATION: S.FAILED}),
    "capture_part": (
        _capture_part,
        {S.AUTHORIZED: S.PARTIALLY_CAPTURED, S.PARTIALLY_CAPTURED: S.PARTIALLY_CAPTURED},
    ),
    "capture_final": (_capture_final, {S.AUTHORIZED: S.CAPTURED, S.PARTIALLY_CAPTURED: S.CAPTURED}),
    "void": (_void, {S.AUTHORIZED: S.VOIDED, S.PARTIALLY_CAPTURED: S.CAPTURED}),
    "expire": (_expire, {S.AUTHORIZED: S.EXPIRED, S.PARTIALLY_CAPTURED: S.CAPTURED}),
    # A refund opens as PENDING: the payment's state moves when the PSP confirms it.
    "refund": (
        _refund,
        {S.CAPTURED: S.CAPTURED, S.PARTIALLY_REFUNDED: S.PARTIALLY_REFUNDED},
    ),
}
CASES = [(op, state) for op in OPERATIONS for state in PaymentState]


@pytest.mark.parametrize(("operation", "state"), CASES, ids=str)
def test_operation_moves_state_exactly_as_the_machine_says(operation, state, payment_in):
    payment = payment_in(state)
    apply, moves = OPERATIONS[operation]
    if state in moves:
        apply(payment)
        assert payment.state is moves[state]
    else:
        with pytest.raises(FailedPrecondition) as raised:
            apply(payment)
        assert raised.value.reason == "INVALID_PAYMENT_STATE"
        assert payment.state is state


def test_every_state_is_reachable_through_legal_operations(payment_in):
    for state in PaymentState:
        assert payment_in(state).state is state


def test_authorization_sets_psp_reference_and_expiry(payment_in):
    payment = payment_in(S.AUTHORIZED)
    assert (payment.psp, payment.psp_reference) == ("sandbox", "sbx_auth_1")
    assert payment.expire_time is not None
    assert payment.amount_authorized == usd(10_000)
