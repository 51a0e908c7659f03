"""Property tests: no sequence of operations breaks the amount rules."""

import contextlib
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.chassis.errors import DomainError
from services.payments.domain.methods import CaptureMethod, PaymentMethod, PaymentMethodType
from services.payments.domain.money import INT64_MAX, Money
from services.payments.domain.payment import Payment
from services.payments.domain.refunds import RefundReason
from services.payments.domain.states import PaymentState as S

T0 = datetime(2026, 11, 21, tzinfo=UTC)
amounts = st.integers(min_value=1, max_value=INT64_MAX)


def authorized(amount: int) -> Payment:
    payment = Payment(
        payment_id="p",
        amount=Money(amount, "JPY"),
        payment_method=PaymentMethod("pm_sandbox_ok", PaymentMethodType.WALLET),
        capture_method=CaptureMethod.MANUAL,
        create_time=T0,
        update_time=T0,
    )
    payment.authorized(psp="a", psp_reference="r", amount=Money(amount, "JPY"), now=T0)
    return payment


@given(amounts, st.lists(st.integers(min_value=-5, max_value=INT64_MAX), max_size=12))
def test_captures_never_exceed_the_authorized_amount(authorized_minor, attempts):
    payment = authorized(authorized_minor)
    for amount in attempts:
        with contextlib.suppress(DomainError):
            payment.captured(Money(max(amount, 0), "JPY"), final=False, now=T0)
        assert payment.amount_captured.amount_minor <= authorized_minor
        captured_all = payment.amount_captured.amount_minor == authorized_minor
        assert (payment.state is S.CAPTURED) == captured_all


@given(amounts, st.lists(st.integers(min_value=1, max_value=INT64_MAX), max_size=12))
def test_refunds_never_exceed_the_captured_amount(captured_minor, attempts):
    payment = authorized(captured_minor)
    payment.captured(Money(captured_minor, "JPY"), final=True, now=T0)
    for index, amount in enumerate(attempts):
        try:
            payment.request_refund(str(index), Money(amount, "JPY"), RefundReason.OTHER, T0)
            payment.refund_succeeded(str(index), f"re{index}", T0)
        except DomainError:
            pass
        assert payment.amount_refunded.amount_minor <= captured_minor
        refunded_all = payment.amount_refunded == payment.amount_captured
        assert (payment.state is S.REFUNDED) == refunded_all


@given(amounts, st.sampled_from(["EUR", "USD", "GBP"]))
def test_the_currency_of_a_payment_never_changes(amount, other):
    payment = authorized(amount)
    with pytest.raises(DomainError) as raised:
        payment.check_capture(Money(1, other), T0)
    assert raised.value.reason == "CURRENCY_MISMATCH"
    assert payment.currency == "JPY"


@given(st.integers(min_value=INT64_MAX + 1) | st.integers(max_value=-1))
def test_amounts_outside_int64_minor_units_are_refused(amount):
    with pytest.raises(DomainError) as raised:
        Money(amount, "USD")
    assert raised.value.reason == "VALIDATION_FAILED"


@given(st.floats(allow_nan=False) | st.booleans() | st.decimals(allow_nan=False))
def test_only_integer_minor_units_are_money(amount):
    with pytest.raises(DomainError):
        Money(amount, "USD")


@pytest.mark.parametrize("code", ["usd", "US", "USDX", "", "12A"])
def test_currency_must_be_an_iso_4217_code(code):
    with pytest.raises(DomainError):
        Money(1, code)


def test_payment_amount_must_be_positive():
    with pytest.raises(DomainError):
        authorized(0)


@pytest.mark.parametrize(
    "token", ["4111111111111111", "pm_4111111111111111", "pm_abc", "tok_visa", "pm_a b c d"]
)
def test_payment_method_must_be_a_token_without_card_digits(token):
    with pytest.raises(DomainError) as raised:
        PaymentMethod(token, PaymentMethodType.CARD)
    assert token not in str(raised.value)
