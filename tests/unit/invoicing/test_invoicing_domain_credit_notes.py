"""Credit notes: by amount (allocated, split into net and tax exactly) and by lines; a partial
refund followed by a full refund of the rest credits the invoice exactly; limits refused."""

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.chassis.errors import FailedPrecondition, InvalidArgument
from services.invoicing.domain.credit_notes import (
    CreditNote,
    CreditNoteReason,
    LineCredit,
    credit_amount,
    credit_lines,
    credited_per_line,
)
from services.invoicing.domain.invoices import (
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

NOW = datetime(2026, 3, 1, tzinfo=UTC)
VAT = TaxRate("DE", "VAT", 190000)
REDUCED = TaxRate("DE", "VAT", 70000)


def state(inv: Invoice) -> InvoiceState:
    return inv.state


def invoice(*lines: InvoiceLine) -> Invoice:
    lines = lines or (
        InvoiceLine.priced("1", "Widget", 3, 1999, rates=[VAT]),
        InvoiceLine.priced("2", "Book", 1, 2500, rates=[REDUCED]),
        InvoiceLine.priced("3", "Gift wrap", 1, 299),
    )
    inv = Invoice(
        "acme", "i", InvoiceSource.MANUAL, "EUR", DraftContent(Customer("c"), lines), NOW, NOW
    )
    inv.issue(Number("INV-1", "INV", 1), NOW)
    return inv


def note(inv: Invoice, lines, n: int, refund: str = "") -> CreditNote:
    return CreditNote(
        "acme",
        inv.invoice_id,
        f"cn{n}",
        Number(f"CN-{n}", "CN", n),
        "INV-1",
        CreditNoteReason.REFUND,
        "EUR",
        lines,
        NOW,
        NOW,
        refund=refund,
    )


def test_a_partial_refund_then_a_full_refund_of_the_rest_credits_exactly_the_invoice():
    inv = invoice()
    inv.record_payment(InvoicePayment("p", inv.total, NOW), NOW)
    first = note(inv, credit_amount(inv, 3000, {}), 1, "r1")
    assert first.total == 3000
    inv.apply_credit(first.total, NOW)
    assert inv.state is InvoiceState.PAID
    rest = note(inv, credit_amount(inv, inv.creditable, credited_per_line([first])), 2, "r2")
    inv.apply_credit(rest.total, NOW)
    assert first.total + rest.total == inv.total
    assert first.subtotal + rest.subtotal == inv.net_total
    for line in inv.lines:
        credited = [
            cl for n in (first, rest) for cl in n.lines if cl.invoice_line_id == line.line_id
        ]
        assert sum(cl.net_amount for cl in credited) == line.net_amount
        assert sum(cl.tax_amount for cl in credited) == line.tax_amount
    assert inv.creditable == 0
    with pytest.raises(FailedPrecondition) as caught:
        credit_amount(inv, 1, credited_per_line([first, rest]))
    assert caught.value.reason == "CREDIT_EXCEEDS_BALANCE"
    assert caught.value.metadata == {"creditable": "0"}


@given(
    st.lists(
        st.tuples(
            st.integers(1, 20), st.integers(0, 100_000), st.sampled_from([0, 70000, 88750, 190000])
        ),
        min_size=1,
        max_size=6,
    ),
    st.lists(st.integers(1, 10_000), min_size=1, max_size=5),
)
def test_amount_credits_never_exceed_a_line_and_always_total_the_amount(lines, amounts):
    inv = invoice(
        *(
            InvoiceLine.priced(str(i), "x", q, price, rates=[TaxRate("DE", "T", r)] if r else [])
            for i, (q, price, r) in enumerate(lines, start=1)
        )
    )
    notes: list[CreditNote] = []
    for n, wanted in enumerate(amounts, start=1):
        amount = min(wanted, inv.creditable)
        if amount <= 0:
            break
        made = note(inv, credit_amount(inv, amount, credited_per_line(notes)), n)
        assert made.total == amount
        assert made.subtotal + made.tax_total == amount
        notes.append(made)
        inv.apply_credit(made.total, NOW)
    if inv.creditable > 0:
        notes.append(note(inv, credit_amount(inv, inv.creditable, credited_per_line(notes)), 99))
    so_far = credited_per_line(notes)
    for line in inv.lines:
        done = so_far.get(line.line_id)
        credited = (done.net + sum(done.taxes)) if done else 0
        assert credited == line.total


def test_unit_credits_end_exactly_at_the_line_and_refuse_more():
    inv = invoice(InvoiceLine.priced("1", "Widget", 3, 1999, rates=[VAT]))
    notes: list[CreditNote] = []
    for n in range(3):
        lines = credit_lines(inv, [LineCredit("1", quantity=1)], credited_per_line(notes))
        notes.append(note(inv, lines, n))
    assert sum(n.subtotal for n in notes) == 5997
    assert sum(n.tax_total for n in notes) == 1139
    with pytest.raises(FailedPrecondition) as caught:
        credit_lines(inv, [LineCredit("1", quantity=1)], credited_per_line(notes))
    assert caught.value.reason == "CREDIT_EXCEEDS_LINE"


def test_a_net_amount_credit_is_taxed_at_the_lines_rates_and_bounded_by_the_line():
    inv = invoice()
    (line,) = credit_lines(inv, [LineCredit("1", amount=1000)], {})
    assert (line.net_amount, line.tax_amount) == (1000, 190)
    with pytest.raises(FailedPrecondition) as caught:
        credit_lines(inv, [LineCredit("2", amount=2501)], {})
    assert caught.value.metadata == {"invoice_line_id": "2"}
    with pytest.raises(InvalidArgument) as unknown:
        credit_lines(inv, [LineCredit("7", quantity=1)], {})
    assert unknown.value.reason == "INVOICE_LINE_NOT_FOUND"


def test_an_issued_invoice_fully_credited_is_settled_and_a_voided_note_reopens_it():
    inv = invoice()
    credit = note(inv, credit_amount(inv, inv.total, {}), 1)
    inv.apply_credit(credit.total, NOW)
    assert inv.state is InvoiceState.PAID
    credit.void(NOW)
    inv.withdraw_credit(credit.total, NOW)
    assert state(inv) is InvoiceState.ISSUED
    assert inv.balance_due == inv.total
    refunded = note(inv, credit_amount(inv, 10, {}), 2, refund="tenants/acme/payments/p/refunds/r")
    with pytest.raises(FailedPrecondition) as caught:
        refunded.void(NOW)
    assert caught.value.reason == "CREDIT_NOTE_REFUNDED"
