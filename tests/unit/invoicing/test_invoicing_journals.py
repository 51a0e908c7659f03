"""The journals invoicing owes the ledger: balanced to the cent, revenue and tax per rate on
issue, the customer-funds/receivable side chosen by how the document is settled, exact
reversals, deterministic ids, and account ids the ledger accepts."""

import re
from collections import defaultdict
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from services.chassis.card_data import looks_like_card_number
from services.invoicing.domain import journals
from services.invoicing.domain.commands import derived_id, new_id
from services.invoicing.domain.credit_notes import (
    CreditNote,
    CreditNoteReason,
    credit_amount,
    credited_per_line,
)
from services.invoicing.domain.invoices import (
    Customer,
    DraftContent,
    Invoice,
    InvoiceLine,
    InvoicePayment,
    InvoiceSource,
    Number,
    TaxLine,
    TaxRate,
)

NOW = datetime(2026, 3, 1, tzinfo=UTC)
VAT = TaxRate("DE", "VAT", 190000)
REDUCED = TaxRate("DE", "VAT", 70000)
ACCOUNT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def invoice(*lines: InvoiceLine) -> Invoice:
    lines = lines or (
        InvoiceLine.priced("1", "Widget", 3, 1999, rates=[VAT]),
        InvoiceLine.priced("2", "Book", 1, 2500, rates=[REDUCED]),
        InvoiceLine.priced("3", "Gift wrap", 1, 299),
    )
    inv = Invoice(
        "acme", "i1", InvoiceSource.MANUAL, "EUR", DraftContent(Customer("c"), lines), NOW, NOW
    )
    inv.issue(Number("INV-1", "INV", 1), NOW)
    return inv


def note(inv: Invoice, amount: int, n: int = 1, refund: str = "") -> CreditNote:
    return CreditNote(
        "acme",
        inv.invoice_id,
        f"cn{n}",
        Number(f"CN-{n}", "CN", n),
        "INV-1",
        CreditNoteReason.REFUND,
        "EUR",
        credit_amount(inv, amount, {}),
        NOW,
        NOW,
        refund=refund,
    )


def amounts(*groups: list[journals.Journal]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for group in groups:
        for journal in group:
            for line in journal.lines:
                out[line.account.account_id] += line.amount
    return {k: v for k, v in out.items() if v}


def test_issue_debits_receivable_and_credits_revenue_and_each_rate():
    inv = invoice()
    (journal,) = journals.invoice_issued(inv)
    assert journal.movement == "issue"
    assert journal.metadata == {"invoice": "tenants/acme/invoices/i1", "movement": "issue"}
    assert amounts([journal]) == {
        "invoicing-receivable-eur": inv.total,
        "invoicing-revenue-eur": -(5997 + 2500 + 299),
        "invoicing-tax-payable-de-vat-190000-eur": -1139,
        "invoicing-tax-payable-de-vat-70000-eur": -175,
    }
    assert sum(line.amount for line in journal.lines) == 0


def test_ids_are_deterministic_per_document_and_movement_and_fit_the_ledger():
    inv = invoice()
    (a,) = journals.invoice_issued(inv)
    (b,) = journals.invoice_issued(invoice())
    (void,) = journals.invoice_voided(inv)
    assert a.journal_id == b.journal_id
    assert a.entry_id == b.entry_id
    assert void.journal_id != a.journal_id
    assert ACCOUNT_ID.match(a.entry_id)
    assert journals.Journal.from_json(a.to_json()) == a


def test_a_void_reverses_the_issue_exactly():
    inv = invoice()
    assert amounts(journals.invoice_issued(inv), journals.invoice_voided(inv)) == {}


def test_a_payments_payment_moves_customer_funds_to_the_receivable():
    inv = invoice()
    paid = InvoicePayment("tenants/acme/payments/p1", 5000, NOW)
    (journal,) = journals.payment_applied(inv, paid)
    assert journal.movement == "apply/tenants/acme/payments/p1"
    assert amounts([journal]) == {
        "payments-customer-funds-eur": 5000,
        "invoicing-receivable-eur": -5000,
    }
    owner = {line.account.account_id: line.account.owner for line in journal.lines}
    assert owner["payments-customer-funds-eur"] == "payments"


def test_money_received_outside_payments_moves_bank_to_the_receivable():
    inv = invoice()
    first = InvoicePayment("", 5000, NOW, external_reference="SEPA-1")
    inv.record_payment(first, NOW)
    second = InvoicePayment("", 5000, NOW, external_reference="SEPA-1")  # same, recorded twice
    inv.record_payment(second, NOW)
    (a,) = journals.payment_applied(inv, first)
    (b,) = journals.payment_applied(inv, second)
    assert (a.movement, b.movement) == ("apply/external/0", "apply/external/1")
    assert a.journal_id != b.journal_id
    assert amounts([a]) == {"payments-bank-eur": 5000, "invoicing-receivable-eur": -5000}
    assert "SEPA-1" in a.description


def test_a_refund_credit_note_reverses_its_share_against_customer_funds():
    inv = invoice()
    credit = note(inv, 3000, refund="tenants/acme/payments/p1/refunds/r1")
    (journal,) = journals.credit_note_issued(credit)
    assert journal.metadata["credit_note"] == credit.name
    assert journal.metadata["invoice"] == inv.name
    moved = amounts([journal])
    assert moved["payments-customer-funds-eur"] == -3000
    assert moved["invoicing-revenue-eur"] == credit.subtotal
    assert (
        moved["invoicing-tax-payable-de-vat-190000-eur"]
        + moved["invoicing-tax-payable-de-vat-70000-eur"]
        == credit.tax_total
    )
    assert "invoicing-receivable-eur" not in moved
    assert amounts([journal], journals.credit_note_voided(credit)) == {}


def test_a_credit_note_without_refund_reduces_the_receivable():
    inv = invoice()
    credit = note(inv, inv.total)
    together = amounts(journals.invoice_issued(inv), journals.credit_note_issued(credit))
    assert together == {}  # fully credited: nothing owed, no revenue, no tax


def test_a_zero_total_document_owes_no_journal():
    free = invoice(InvoiceLine.priced("1", "Sample", 1, 0, rates=[VAT]))
    assert journals.invoice_issued(free) == []


def test_long_tax_names_keep_unique_ids_within_64_characters():
    long_a = TaxLine("Some very long jurisdiction name", "Sales and use tax", 62500, 0, 0)
    long_b = TaxLine("Some very long jurisdiction name", "Sales and use tax 2", 62500, 0, 0)
    a = journals.tax_payable(long_a, "USD")
    b = journals.tax_payable(long_b, "USD")
    assert a.account_id != b.account_id
    for account in (a, b):
        assert ACCOUNT_ID.match(account.account_id), account.account_id
        assert account.account_id.startswith("invoicing-tax-payable-")
        assert account.account_id.endswith("-62500-usd")
    short = journals.tax_payable(TaxLine("US-CA", "Sales tax", 72500, 0, 0), "USD")
    assert short.account_id == "invoicing-tax-payable-us-ca-sales-tax-72500-usd"


@given(
    quantities=st.lists(st.integers(1, 20), min_size=1, max_size=4),
    prices=st.lists(st.integers(0, 100_000), min_size=4, max_size=4),
    first=st.integers(0, 100),
)
def test_issue_then_partial_then_the_rest_credited_nets_to_zero(quantities, prices, first):
    rates = [[VAT], [REDUCED], [VAT, REDUCED], []]
    lines = tuple(
        InvoiceLine.priced(str(i), f"item {i}", q, prices[i], rates=rates[i])
        for i, q in enumerate(quantities)
    )
    inv = invoice(*lines)
    part = inv.total * first // 100
    issued = journals.invoice_issued(inv)
    groups = [issued]
    notes = []
    if part:
        notes.append(note(inv, part, 1))
    rest = inv.total - part
    if rest:
        later = CreditNote(
            "acme",
            inv.invoice_id,
            "cn2",
            Number("CN-2", "CN", 2),
            "INV-1",
            CreditNoteReason.REFUND,
            "EUR",
            credit_amount(inv, rest, credited_per_line(notes)),
            NOW,
            NOW,
        )
        notes.append(later)
    groups.extend(journals.credit_note_issued(n) for n in notes)
    for group in groups:
        for journal in group:
            assert sum(line.amount for line in journal.lines) == 0
            assert all(line.amount for line in journal.lines)
    assert amounts(*groups) == {}


def test_no_id_invoicing_assigns_looks_like_a_card_number():
    numeric = TaxLine("4111111111111111", "VAT", 190000, 0, 0)  # a jurisdiction code of digits
    account = journals.tax_payable(numeric, "EUR")
    assert ACCOUNT_ID.match(account.account_id)
    assert not looks_like_card_number(account.account_id)
    assert "41111" not in account.account_id
    assert not looks_like_card_number(account.display_name)
    other = journals.tax_payable(TaxLine("4111111111111112", "VAT", 190000, 0, 0), "EUR")
    assert other.account_id != account.account_id
    for n in range(2000):
        for ident in (new_id(), derived_id(f"tenants/acme/orders/{n}")):
            assert ACCOUNT_ID.match(ident)
            assert not looks_like_card_number(f"tenants/acme/invoices/{ident}")
    assert derived_id("tenants/acme/orders/1") == derived_id("tenants/acme/orders/1")
    (journal,) = journals.invoice_issued(invoice())
    assert not looks_like_card_number(journal.entry_id)
