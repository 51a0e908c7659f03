"""A capture records what the PSP says it captured (its captured total minus what the payment
had captured before), not what was asked, whenever the PSP reports a total that fits."""

from datetime import UTC, datetime

from services.payments.domain.money import Money
from services.payments.domain.states import PaymentState as S
from services.payments.psp.model import PspPayment, PspPaymentStatus
from services.payments.service import PaymentsService

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def usd(minor):
    return Money(minor, "USD")


def psp_says(captured, currency="USD"):
    return PspPayment(
        psp="alpha",
        psp_reference="sbx_auth_1",
        status=PspPaymentStatus.CAPTURED,
        amount=Money(10_000, currency),
        amount_captured=Money(captured, currency),
        amount_refunded=Money(0, currency),
    )


def test_the_psp_figure_wins_when_it_differs_from_the_request(payment_in):
    payment = payment_in(S.AUTHORIZED)
    assert PaymentsService.captured_by_psp(payment, usd(4_000), psp_says(3_500)) == usd(3_500)


def test_a_later_partial_capture_takes_the_psp_total_minus_what_was_captured(payment_in):
    payment = payment_in(S.AUTHORIZED)
    payment.captured(usd(3_000), final=False, now=T0)
    assert PaymentsService.captured_by_psp(payment, usd(2_000), psp_says(5_000)) == usd(2_000)
    assert PaymentsService.captured_by_psp(payment, usd(2_000), psp_says(4_000)) == usd(1_000)


def test_a_psp_that_reports_no_total_or_one_that_cannot_fit_leaves_the_request(payment_in):
    payment = payment_in(S.AUTHORIZED)
    payment.captured(usd(3_000), final=False, now=T0)
    requested = usd(2_000)
    assert PaymentsService.captured_by_psp(payment, requested, psp_says(0)) == requested
    assert PaymentsService.captured_by_psp(payment, requested, psp_says(3_000)) == requested
    assert PaymentsService.captured_by_psp(payment, requested, psp_says(10_001)) == requested
    assert PaymentsService.captured_by_psp(payment, requested, psp_says(5_000, "EUR")) == requested
