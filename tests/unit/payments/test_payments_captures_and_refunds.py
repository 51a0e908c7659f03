"""Amount rules: capture within the authorization, refunds within the capture, one currency."""

from datetime import UTC, datetime, timedelta

import pytest

from services.chassis.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from services.payments.domain.attempts import (
    Attempt,
    AttemptOutcome,
    ErrorClass,
    FailureCode,
    Operation,
    PaymentFailure,
)
from services.payments.domain.money import Money
from services.payments.domain.refunds import RefundReason, RefundState
from services.payments.domain.states import PaymentState as S

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
REASON = RefundReason.REQUESTED_BY_CUSTOMER


def usd(minor):
    return Money(minor, "USD")


def test_partial_capture_leaves_the_rest_capturable(payment_in):
    payment = payment_in(S.AUTHORIZED)
    payment.captured(usd(3_000), final=False, now=T0)
    assert payment.state is S.PARTIALLY_CAPTURED
    assert payment.amount_captured == usd(3_000)
    assert payment.capturable == usd(7_000)


def test_several_partial_captures_reaching_the_authorized_amount_finish_capturing(payment_in):
    payment = payment_in(S.AUTHORIZED)
    for _ in range(4):
        payment.captured(usd(2_500), final=False, now=T0)
    assert payment.state is S.CAPTURED
    assert payment.amount_captured == payment.amount_authorized
    assert payment.expire_time is None


def test_final_partial_capture_releases_the_remainder(payment_in):
    payment = payment_in(S.AUTHORIZED)
    payment.captured(usd(4_000), final=True, now=T0)
    assert payment.state is S.CAPTURED
    assert payment.capturable == usd(0)
    assert payment.refundable == usd(4_000)


def test_capture_without_amount_takes_the_whole_remainder(payment_in):
    payment = payment_in(S.PARTIALLY_CAPTURED)
    assert payment.check_capture(None, T0) == usd(5_000)


def test_capture_above_the_remainder_is_refused(payment_in):
    payment = payment_in(S.PARTIALLY_CAPTURED)
    with pytest.raises(InvalidArgument) as raised:
        payment.check_capture(usd(5_001), T0)
    assert raised.value.reason == "CAPTURE_AMOUNT_EXCEEDED"
    assert payment.amount_captured == usd(5_000)


def test_capture_in_another_currency_is_refused(payment_in):
    with pytest.raises(InvalidArgument) as raised:
        payment_in(S.AUTHORIZED).check_capture(Money(100, "EUR"), T0)
    assert raised.value.reason == "CURRENCY_MISMATCH"


def test_zero_capture_is_refused(payment_in):
    with pytest.raises(InvalidArgument) as raised:
        payment_in(S.AUTHORIZED).check_capture(usd(0), T0)
    assert raised.value.reason == "VALIDATION_FAILED"


def test_capture_after_the_authorization_lapsed_is_refused(payment_in):
    payment = payment_in(S.AUTHORIZED)
    assert payment.expire_time is not None
    with pytest.raises(FailedPrecondition) as raised:
        payment.check_capture(usd(1), payment.expire_time + timedelta(seconds=1))
    assert raised.value.reason == "AUTHORIZATION_EXPIRED"


def test_authorized_amount_must_be_within_the_request(new_payment):
    payment = new_payment(1_000)
    with pytest.raises(InvalidArgument):
        payment.authorized(psp="a", psp_reference="r", amount=usd(1_001), now=T0)
    assert payment.state is S.REQUIRES_AUTHORIZATION


def test_multiple_partial_refunds_sum_exactly_to_the_captured_amount(payment_in):
    payment = payment_in(S.CAPTURED)
    for index, part in enumerate((3_333, 3_333, 3_334)):
        payment.request_refund(f"r{index}", usd(part), REASON, T0)
        payment.refund_succeeded(f"r{index}", f"re_{index}", T0)
    assert payment.state is S.REFUNDED
    assert payment.amount_refunded == payment.amount_captured == usd(10_000)
    assert payment.refundable == usd(0)


def test_partial_refund_keeps_the_payment_partially_refunded(payment_in):
    payment = payment_in(S.CAPTURED)
    payment.request_refund("r1", usd(1), REASON, T0)
    payment.refund_succeeded("r1", "re_1", T0)
    assert payment.state is S.PARTIALLY_REFUNDED
    assert payment.refundable == usd(9_999)


def test_refund_beyond_the_captured_amount_is_refused(payment_in):
    payment = payment_in(S.PARTIALLY_REFUNDED)
    with pytest.raises(InvalidArgument) as raised:
        payment.request_refund("big", usd(7_501), REASON, T0)
    assert raised.value.reason == "REFUND_AMOUNT_EXCEEDED"
    assert "big" not in payment.refunds


def test_pending_refunds_count_against_what_is_refundable(payment_in):
    payment = payment_in(S.CAPTURED)
    payment.request_refund("pending", usd(6_000), REASON, T0)
    with pytest.raises(InvalidArgument) as raised:
        payment.request_refund("second", usd(4_001), REASON, T0)
    assert raised.value.reason == "REFUND_AMOUNT_EXCEEDED"


def test_failed_refund_frees_its_amount_and_keeps_the_state(payment_in):
    payment = payment_in(S.CAPTURED)
    payment.request_refund("r1", usd(6_000), REASON, T0)
    failure = PaymentFailure(FailureCode.PROCESSING_ERROR, "psp error", retryable=True)
    payment.refund_failed("r1", failure, T0)
    assert payment.refunds["r1"].state is RefundState.FAILED
    assert payment.state is S.CAPTURED
    assert payment.refundable == usd(10_000)


def test_a_refund_finishes_only_once(payment_in):
    payment = payment_in(S.CAPTURED)
    payment.request_refund("r1", usd(100), REASON, T0)
    payment.refund_succeeded("r1", "re_1", T0)
    with pytest.raises(FailedPrecondition):
        payment.refund_succeeded("r1", "re_1", T0)
    assert payment.amount_refunded == usd(100)


def test_refund_id_must_be_new_and_known(payment_in):
    payment = payment_in(S.CAPTURED)
    payment.request_refund("r1", usd(100), REASON, T0)
    with pytest.raises(AlreadyExists) as duplicate:
        payment.request_refund("r1", usd(100), REASON, T0)
    assert duplicate.value.reason == "REFUND_ALREADY_EXISTS"
    with pytest.raises(NotFound):
        payment.refund_succeeded("nope", "re", T0)


def test_refund_in_another_currency_is_refused(payment_in):
    with pytest.raises(InvalidArgument) as raised:
        payment_in(S.CAPTURED).request_refund("r", Money(1, "EUR"), REASON, T0)
    assert raised.value.reason == "CURRENCY_MISMATCH"


# -- attempts and the ambiguous outcome -----------------------------------------------------


def _attempt(number, outcome, operation=Operation.CAPTURE, refund=""):
    return Attempt(
        attempt_number=number,
        operation=operation,
        psp="sandbox",
        outcome=outcome,
        error_class=ErrorClass.AMBIGUOUS if outcome is AttemptOutcome.UNKNOWN else ErrorClass.NONE,
        amount=usd(100),
        psp_idempotency_key="8b1e6c1e-1111-4111-8111-111111111111",
        start_time=T0,
        end_time=T0,
        refund=refund,
    )


def test_attempts_are_numbered_in_order(payment_in):
    payment = payment_in(S.AUTHORIZED)
    payment.record_attempt(_attempt(1, AttemptOutcome.ERROR))
    with pytest.raises(InvalidArgument):
        payment.record_attempt(_attempt(3, AttemptOutcome.SUCCEEDED))
    payment.record_attempt(_attempt(payment.next_attempt_number(), AttemptOutcome.SUCCEEDED))
    assert [a.attempt_number for a in payment.attempts] == [1, 2]


def test_unknown_outcome_blocks_every_operation_until_resolved(payment_in):
    payment = payment_in(S.AUTHORIZED)
    payment.record_attempt(_attempt(1, AttemptOutcome.UNKNOWN))
    assert payment.outcome_unknown
    assert payment.state is S.AUTHORIZED
    for operation in (
        lambda: payment.check_capture(None, T0),
        payment.check_void,
        lambda: payment.expired(T0),
    ):
        with pytest.raises(FailedPrecondition) as raised:
            operation()
        assert raised.value.reason == "PAYMENT_OUTCOME_UNKNOWN"


def test_resolving_an_unknown_capture_applies_the_real_outcome(payment_in):
    payment = payment_in(S.AUTHORIZED)
    payment.record_attempt(_attempt(1, AttemptOutcome.UNKNOWN))
    payment.inquiry_made()
    assert payment.ambiguous_outcome is not None
    assert payment.ambiguous_outcome.resolution_attempts == 1
    outcome = payment.outcome_resolved()
    payment.captured(outcome.amount, final=False, now=T0)
    assert not payment.outcome_unknown
    assert payment.amount_captured == usd(100)


def test_unknown_refund_outcome_stays_pending_until_resolved(payment_in):
    payment = payment_in(S.CAPTURED)
    payment.request_refund("r1", usd(100), REASON, T0)
    payment.record_attempt(_attempt(1, AttemptOutcome.UNKNOWN, Operation.REFUND, refund="r1"))
    assert payment.refunds["r1"].outcome_unknown
    with pytest.raises(FailedPrecondition):
        payment.refund_succeeded("r1", "re_1", T0)
    payment.outcome_resolved()
    payment.refund_succeeded("r1", "re_1", T0)
    assert payment.refunds["r1"].state is RefundState.SUCCEEDED


def test_resolving_without_an_unknown_outcome_is_refused(payment_in):
    with pytest.raises(FailedPrecondition):
        payment_in(S.AUTHORIZED).outcome_resolved()
