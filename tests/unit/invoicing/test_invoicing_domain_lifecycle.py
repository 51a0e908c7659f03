"""The invoice aggregate without storage: amounts, the lifecycle and its refusals."""

from datetime import UTC, datetime, timedelta

import pytest

from services.chassis.errors import Aborted, FailedPrecondition, InvalidArgument
from services.invoicing.domain.commands import LineSpec, price_lines
from services.invoicing.domain.invoices import (
    TRANSITIONS,
    Customer,
    DraftContent,
    Invoice,
    InvoiceLine,
    InvoicePayment,
    InvoiceSource,
    InvoiceState,
    Number,
    TaxRate,
)

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
VAT = TaxRate("DE", "VAT", 190000)
REDUCED = TaxRate("DE", "VAT", 70000)


def state(invoice: Invoice) -> InvoiceState:
    """Read through a call, so mypy does not keep a narrowed state across transitions."""
    return invoice.state


def draft(*lines: InvoiceLine) -> Invoice:
    content = DraftContent(
        Customer("c-1"), lines or (InvoiceLine.priced("1", "Widget", 3, 1999, rates=[VAT]),)
    )
    return Invoice("acme", "inv-1", InvoiceSource.MANUAL, "EUR", content, NOW, NOW)


def issued(*lines: InvoiceLine) -> Invoice:
    invoice = draft(*lines)
    invoice.issue(Number("INV-2026-000001", "INV/2026", 1), NOW)
    return invoice


def test_tax_is_rounded_half_up_per_line_and_rate_and_summed_per_rate():
    invoice = draft(
        InvoiceLine.priced("1", "A", 1, 50, rates=[VAT]),  # 9.5 -> 10
        InvoiceLine.priced("2", "B", 1, 50, rates=[VAT]),  # 10
        InvoiceLine.priced("3", "C", 2, 1000, discount_amount=500, rates=[REDUCED, VAT]),
    )
    assert [line.tax_amount for line in invoice.lines] == [10, 10, 105 + 285]
    assert [(t.rate_ppm, t.taxable_amount, t.tax_amount) for t in invoice.tax_breakdown] == [
        (190000, 100 + 1500, 10 + 10 + 285),
        (70000, 1500, 105),
    ]
    assert invoice.total == invoice.subtotal - invoice.discount_total + invoice.tax_total
    assert invoice.total == 100 + 1500 + 20 + 390


def test_manual_lines_are_numbered_and_must_be_in_the_invoice_currency():
    lines = price_lines([LineSpec("A", 1, 10, "EUR"), LineSpec("B", 2, 10, "EUR")], "EUR")
    assert [line.line_id for line in lines] == ["1", "2"]
    with pytest.raises(InvalidArgument) as caught:
        price_lines([LineSpec("A", 1, 10, "USD")], "EUR")
    assert caught.value.reason == "CURRENCY_MISMATCH"


def test_issue_freezes_the_content_and_sets_due_on_receipt():
    invoice = issued()
    assert invoice.state is InvoiceState.ISSUED
    assert invoice.content.due_time == NOW
    assert invoice.balance_due == invoice.total
    with pytest.raises(FailedPrecondition) as caught:
        invoice.update_draft(invoice.content, NOW)
    assert caught.value.reason == "INVOICE_NOT_DRAFT"
    assert caught.value.metadata == {"state": "ISSUED"}


def test_an_empty_draft_or_a_due_time_before_issue_cannot_be_issued():
    empty = Invoice("acme", "e", InvoiceSource.MANUAL, "EUR", DraftContent(Customer("c")), NOW, NOW)
    with pytest.raises(FailedPrecondition) as caught:
        empty.issue(Number("N", "S", 1), NOW)
    assert caught.value.reason == "INVOICE_EMPTY"
    late = draft()
    late.content = DraftContent(late.content.customer, late.lines, due_time=NOW - timedelta(days=1))
    with pytest.raises(InvalidArgument) as refused:
        late.issue(Number("N", "S", 1), NOW)
    assert refused.value.reason == "DUE_TIME_BEFORE_ISSUE"


def test_payments_settle_the_invoice_and_a_repeated_payment_is_ignored():
    invoice = issued()
    first = InvoicePayment("tenants/acme/payments/p1", 1000, NOW)
    invoice.record_payment(first, NOW)
    invoice.record_payment(first, NOW)
    assert invoice.amount_paid == 1000
    assert invoice.state is InvoiceState.ISSUED
    with pytest.raises(FailedPrecondition) as caught:
        invoice.record_payment(InvoicePayment("", invoice.total, NOW, external_reference="x"), NOW)
    assert caught.value.reason == "PAYMENT_EXCEEDS_BALANCE"
    invoice.record_payment(
        InvoicePayment("", invoice.balance_due, NOW, external_reference="x"), NOW
    )
    assert state(invoice) is InvoiceState.PAID
    assert invoice.paid_time == NOW


@pytest.mark.parametrize(
    ("setup", "move", "from_state", "to_state"),
    [
        ("draft", "uncollectible", "DRAFT", "UNCOLLECTIBLE"),
        ("paid", "void", "PAID", "VOID"),
        ("void", "void", "VOID", "VOID"),
        ("void", "uncollectible", "VOID", "UNCOLLECTIBLE"),
        ("draft", "pay", "DRAFT", "PAID"),
        ("void", "pay", "VOID", "PAID"),
    ],
)
def test_illegal_transitions_are_refused_with_both_states(setup, move, from_state, to_state):
    invoice = draft() if setup == "draft" else issued()
    if setup == "paid":
        invoice.record_payment(InvoicePayment("", invoice.total, NOW, external_reference="x"), NOW)
    if setup == "void":
        invoice.void("", NOW)
    act = {
        "void": lambda: invoice.void("", NOW),
        "uncollectible": lambda: invoice.mark_uncollectible("", NOW),
        "pay": lambda: invoice.record_payment(InvoicePayment("p", 1, NOW), NOW),
    }[move]
    with pytest.raises(FailedPrecondition) as caught:
        act()
    assert caught.value.reason == "INVALID_STATE_TRANSITION"
    assert caught.value.metadata == {"from_state": from_state, "to_state": to_state}


def test_void_keeps_the_number_and_refuses_an_invoice_with_payments():
    invoice = issued()
    invoice.void("duplicate", NOW)
    assert invoice.number is not None
    assert invoice.number.number == "INV-2026-000001"
    assert invoice.balance_due == 0
    assert invoice.changes == ["issued", "voided"]
    partly_paid = issued()
    partly_paid.record_payment(InvoicePayment("p", 1, NOW), NOW)
    with pytest.raises(FailedPrecondition) as caught:
        partly_paid.void("", NOW)
    assert caught.value.reason == "INVOICE_HAS_PAYMENTS"


def test_a_voided_draft_announces_nothing():
    invoice = draft()
    invoice.void("", NOW)
    assert invoice.state is InvoiceState.VOID
    assert invoice.changes == []


def test_a_stale_etag_is_aborted_with_the_current_one():
    invoice = issued()
    with pytest.raises(Aborted) as caught:
        invoice.check_etag('W/"1"')
    assert caught.value.metadata == {"etag": invoice.etag}
    invoice.check_etag(invoice.etag)
    invoice.check_etag("")


def test_void_is_terminal():
    assert TRANSITIONS[InvoiceState.VOID] == frozenset()
