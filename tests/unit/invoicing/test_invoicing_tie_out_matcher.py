"""The pure tie-out matcher: a consistent world always ties out; each kind of planted fault is
reported as exactly its own difference(s), with the ids on both sides and the amount."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.invoicing.domain.tie_out import (
    CapturedPayment,
    CreditNoteRecord,
    DifferenceKind,
    InvoiceRecord,
    LedgerPosting,
    Period,
    RefundRecord,
    TieOutInput,
    tie_out,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)
PERIOD = Period(T0, T0 + timedelta(days=31))
T = "tenants/acme"

# One order: (net, tax, refunds as amounts), currency.
orders = st.lists(
    st.tuples(
        st.integers(1, 10**7),
        st.integers(0, 10**6),
        st.lists(st.integers(1, 10**6), max_size=3),
        st.sampled_from(["EUR", "USD"]),
        st.integers(0, 30 * 24 * 60 - 1),
    ),
    min_size=1,
    max_size=12,
)


def world(drawn) -> TieOutInput:
    payments, refunds, invoices, notes, postings = [], [], [], [], []
    for i, (net, tax, refund_amounts, cur, minute) in enumerate(drawn):
        when = T0 + timedelta(minutes=minute)
        total = net + tax
        inv, pay, order = f"{T}/invoices/i{i}", f"{T}/payments/p{i}", f"{T}/orders/o{i}"
        payments.append(CapturedPayment(pay, order, cur, total, when))
        invoices.append(
            InvoiceRecord(
                invoice=inv,
                number=f"INV-{i}",
                order=order,
                checkout=True,
                void=False,
                currency_code=cur,
                net=net,
                tax=tax,
                total=total,
                issue_time=when,
                payments=((pay, total),),
            )
        )
        postings.append(LedgerPosting(f"e-i{i}", inv, cur, net, tax, when))
        left = total
        for j, wanted in enumerate(refund_amounts):
            amount = min(wanted, left)
            if amount <= 0:
                break
            left -= amount
            note_tax = amount * tax // total
            refund, note = f"{pay}/refunds/r{j}", f"{inv}/creditNotes/c{j}"
            refunds.append(RefundRecord(refund, pay, cur, amount, when))
            notes.append(
                CreditNoteRecord(
                    note,
                    inv,
                    f"INV-{i}",
                    refund,
                    False,  # noqa: FBT003 - CreditNoteRecord.void, positional like its neighbours
                    cur,
                    amount - note_tax,
                    note_tax,
                    amount,
                    when,
                )
            )
            postings.append(
                LedgerPosting(f"e-c{i}-{j}", note, cur, -(amount - note_tax), -note_tax, when)
            )
    return TieOutInput(PERIOD, payments, refunds, invoices, notes, postings)


@given(orders)
def test_a_consistent_world_ties_out(drawn):
    given_ = world(drawn)
    report = tie_out(given_)
    assert report.tied_out, report.differences
    assert report.payment_count == report.matched_payment_count == len(drawn)
    assert report.invoice_count == report.matched_invoice_count == len(drawn)
    assert report.credit_note_count == report.matched_credit_note_count == len(given_.credit_notes)
    for currency, totals in report.totals.items():
        assert totals.captured == totals.invoice_paid == totals.invoiced
        assert totals.refunded == totals.credited
        assert totals.ledger_revenue == totals.invoice_net - totals.credit_note_net
        assert totals.ledger_tax == totals.invoice_tax - totals.credit_note_tax, currency


@given(orders, st.data())
def test_a_deleted_invoice_is_a_payment_not_invoiced_plus_its_stray_postings(drawn, data):
    given_ = world(drawn)
    victim = data.draw(st.sampled_from(given_.invoices))
    broken = replace(
        given_,
        invoices=[i for i in given_.invoices if i is not victim],
        credit_notes=[n for n in given_.credit_notes if n.invoice != victim.invoice],
    )
    report = tie_out(broken)
    ((payment, _),) = victim.payments
    kinds = {(d.kind, d.invoice or d.payment) for d in report.differences}
    assert (DifferenceKind.PAYMENT_NOT_INVOICED, payment) in kinds
    for d in report.differences:
        # Every difference is about the deleted invoice, its payment or its credit notes.
        assert (
            victim.invoice in {d.invoice, d.credit_note.split("/creditNotes/")[0]}
            or d.payment == payment
        )
    missing = next(d for d in report.differences if d.kind is DifferenceKind.PAYMENT_NOT_INVOICED)
    assert missing.counterpart_amount == victim.total
    assert missing.difference_amount == victim.total
    revenue = [
        d
        for d in report.differences
        if d.kind is DifferenceKind.LEDGER_REVENUE_MISMATCH
        and d.invoice == victim.invoice
        and not d.credit_note
    ]
    assert [d.counterpart_amount for d in revenue] == [victim.net]
    assert revenue[0].ledger_entry == f"e-{victim.invoice.rsplit('/', 1)[1]}"


@given(orders, st.data(), st.integers(-1000, 1000).filter(bool))
def test_a_wrong_captured_amount_is_one_mismatch_to_the_cent(drawn, data, delta):
    given_ = world(drawn)
    victim = data.draw(st.sampled_from(given_.payments))
    changed = replace(victim, amount=victim.amount + delta)
    broken = replace(given_, payments=[changed if p is victim else p for p in given_.payments])
    report = tie_out(broken)
    (difference,) = report.differences
    assert difference.kind is DifferenceKind.PAYMENT_AMOUNT_MISMATCH
    assert difference.payment == victim.payment
    assert difference.difference_amount == delta
    assert report.matched_payment_count == len(drawn) - 1


@settings(max_examples=50)
@given(orders, st.data())
def test_a_missing_credit_note_or_refund_is_named(drawn, data):
    given_ = world(drawn)
    if not given_.credit_notes:
        return
    note = data.draw(st.sampled_from(given_.credit_notes))
    without_note = replace(given_, credit_notes=[n for n in given_.credit_notes if n is not note])
    kinds = sorted((d.kind, d.refund or d.credit_note) for d in tie_out(without_note).differences)
    assert (DifferenceKind.REFUND_WITHOUT_CREDIT_NOTE, note.refund) in kinds
    assert {k for k, _ in kinds} <= {
        DifferenceKind.REFUND_WITHOUT_CREDIT_NOTE,
        DifferenceKind.LEDGER_REVENUE_MISMATCH,
        DifferenceKind.LEDGER_TAX_MISMATCH,
    }
    without_refund = replace(given_, refunds=[r for r in given_.refunds if r.refund != note.refund])
    (difference,) = tie_out(without_refund).differences
    assert difference.kind is DifferenceKind.CREDIT_NOTE_WITHOUT_REFUND
    assert (difference.credit_note, difference.refund) == (note.credit_note, note.refund)
    assert difference.difference_amount == -note.total


def test_a_payment_on_two_invoices_and_a_missing_ledger_posting():
    given_ = world([(1000, 190, [], "EUR", 10), (500, 0, [], "EUR", 20)])
    first, second = given_.invoices
    twice = replace(second, payments=(*second.payments, first.payments[0]))
    report = tie_out(replace(given_, invoices=[first, twice], postings=given_.postings[:1]))
    kinds = sorted((d.kind.value, d.invoice) for d in report.differences)
    assert kinds == sorted(
        [
            ("PAYMENT_INVOICED_TWICE", second.invoice),
            ("LEDGER_REVENUE_MISMATCH", second.invoice),
        ]
    )
    ledger = next(d for d in report.differences if d.kind is DifferenceKind.LEDGER_REVENUE_MISMATCH)
    assert (ledger.invoicing_amount, ledger.counterpart_amount) == (500, None)
    assert ledger.difference_amount == -500


def test_unattributed_postings_are_compared_per_currency_and_differences_are_ordered():
    given_ = world([(1000, 190, [], "EUR", 10), (2000, 380, [], "EUR", 20)])
    loose = [replace(p, document="") for p in given_.postings]
    assert tie_out(replace(given_, postings=loose)).tied_out
    short = [*loose[:1], replace(loose[1], revenue=1999)]
    (difference,) = tie_out(replace(given_, postings=short)).differences
    assert difference.kind is DifferenceKind.LEDGER_REVENUE_MISMATCH
    assert (difference.currency_code, difference.difference_amount) == ("EUR", -1)
    assert difference.invoice == ""


def test_items_outside_the_period_are_matched_across_the_boundary_but_not_counted():
    given_ = world([(1000, 0, [], "EUR", 10)])
    (payment,) = given_.payments
    earlier = replace(payment, capture_time=T0 - timedelta(days=1))
    report = tie_out(replace(given_, payments=[earlier]))
    assert report.tied_out
    assert report.payment_count == 0
    assert report.invoice_count == 1


def test_a_posting_just_across_the_period_end_matches_in_both_periods():
    last_minute = PERIOD.end - timedelta(minutes=1)
    given_ = world([(1000, 190, [], "EUR", 0)])
    (invoice,) = given_.invoices
    (payment,) = given_.payments
    (posting,) = given_.postings
    issued = replace(invoice, issue_time=last_minute)
    captured = replace(payment, capture_time=last_minute)
    posted = replace(posting, post_time=PERIOD.end + timedelta(minutes=2))
    this_period = tie_out(
        replace(given_, invoices=[issued], payments=[captured], postings=[posted])
    )
    assert this_period.tied_out, this_period.differences
    assert this_period.totals["EUR"].ledger_revenue == 0  # posted after the period ends
    following = Period(PERIOD.end, PERIOD.end + timedelta(days=30))
    next_period = tie_out(TieOutInput(following, [captured], [], [issued], [], [posted]))
    assert next_period.tied_out, next_period.differences
    assert next_period.invoice_count == 0
    assert next_period.totals["EUR"].ledger_revenue == 1000
    stray = tie_out(TieOutInput(following, [], [], [], [], [posted]))
    kinds = sorted(d.kind.value for d in stray.differences)
    assert kinds == ["LEDGER_REVENUE_MISMATCH", "LEDGER_TAX_MISMATCH"]
