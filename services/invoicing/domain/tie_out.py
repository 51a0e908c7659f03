"""The three-way tie-out, pure: captured payments and refunds (payments' view), revenue and tax
postings (the ledger's view), invoices and credit notes (invoicing's view), matched by id and
compared to the minor unit. Every difference names the ids on both sides."""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TypeVar


class DifferenceKind(enum.StrEnum):
    PAYMENT_NOT_INVOICED = "PAYMENT_NOT_INVOICED"
    PAYMENT_INVOICED_TWICE = "PAYMENT_INVOICED_TWICE"
    INVOICE_WITHOUT_PAYMENT = "INVOICE_WITHOUT_PAYMENT"
    PAYMENT_AMOUNT_MISMATCH = "PAYMENT_AMOUNT_MISMATCH"
    REFUND_WITHOUT_CREDIT_NOTE = "REFUND_WITHOUT_CREDIT_NOTE"
    CREDIT_NOTE_WITHOUT_REFUND = "CREDIT_NOTE_WITHOUT_REFUND"
    REFUND_AMOUNT_MISMATCH = "REFUND_AMOUNT_MISMATCH"
    LEDGER_REVENUE_MISMATCH = "LEDGER_REVENUE_MISMATCH"
    LEDGER_TAX_MISMATCH = "LEDGER_TAX_MISMATCH"


class _InCurrency(Protocol):
    @property
    def currency_code(self) -> str: ...


_T = TypeVar("_T", bound=_InCurrency)
_KIND_ORDER = {kind: position for position, kind in enumerate(DifferenceKind)}


@dataclass(frozen=True, slots=True)
class CapturedPayment:
    """A payment with the amount captured on it (payments' view)."""

    payment: str
    order: str
    currency_code: str
    amount: int
    capture_time: datetime


@dataclass(frozen=True, slots=True)
class RefundRecord:
    refund: str
    payment: str
    currency_code: str
    amount: int
    refund_time: datetime


@dataclass(frozen=True, slots=True)
class LedgerPosting:
    """Revenue and tax one journal entry posted, attributed to an invoice or credit note by
    name when the entry says so ("" when it cannot be attributed). Returns are negative."""

    entry: str
    document: str
    currency_code: str
    revenue: int
    tax: int
    post_time: datetime


@dataclass(frozen=True, slots=True)
class InvoiceRecord:
    invoice: str
    number: str
    order: str
    checkout: bool
    void: bool
    currency_code: str
    net: int
    tax: int
    total: int
    issue_time: datetime
    payments: tuple[tuple[str, int], ...] = ()  # (payment name, amount recorded)


@dataclass(frozen=True, slots=True)
class CreditNoteRecord:
    credit_note: str
    invoice: str
    invoice_number: str
    refund: str
    void: bool
    currency_code: str
    net: int
    tax: int
    total: int
    issue_time: datetime


@dataclass(frozen=True, slots=True)
class Difference:
    kind: DifferenceKind
    occur_time: datetime
    currency_code: str
    detail: str
    invoice: str = ""
    invoice_number: str = ""
    credit_note: str = ""
    payment: str = ""
    refund: str = ""
    order: str = ""
    ledger_entry: str = ""
    invoicing_amount: int | None = None
    counterpart_amount: int | None = None

    @property
    def difference_amount(self) -> int:
        return (self.counterpart_amount or 0) - (self.invoicing_amount or 0)

    @property
    def sort_key(self) -> tuple[datetime, int, str, str, str, str]:
        return (
            self.occur_time,
            _KIND_ORDER[self.kind],
            self.invoice,
            self.credit_note,
            self.payment,
            self.refund,
        )


@dataclass(slots=True)
class Totals:
    """One currency as each system sees it."""

    currency_code: str
    captured: int = 0
    refunded: int = 0
    invoice_paid: int = 0
    invoiced: int = 0
    invoice_net: int = 0
    invoice_tax: int = 0
    credited: int = 0
    credit_note_net: int = 0
    credit_note_tax: int = 0
    ledger_revenue: int = 0
    ledger_tax: int = 0


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime
    end: datetime

    def __contains__(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


@dataclass(frozen=True, slots=True)
class TieOutInput:
    """Everything in scope. Payments and refunds cover the period plus every one an in-scope
    document names; invoices and credit notes cover the period plus every one that records an
    in-period payment or refund or that an in-period posting names; postings cover the period
    widened by a margin, so a document issued just before the end matches a posting made just
    after it."""

    period: Period
    payments: Sequence[CapturedPayment] = ()
    refunds: Sequence[RefundRecord] = ()
    invoices: Sequence[InvoiceRecord] = ()
    credit_notes: Sequence[CreditNoteRecord] = ()
    postings: Sequence[LedgerPosting] = ()
    currency_code: str = ""  # limit to one currency when set


@dataclass(slots=True)
class TieOut:
    differences: list[Difference] = field(default_factory=list)
    totals: dict[str, Totals] = field(default_factory=dict)
    payment_count: int = 0
    matched_payment_count: int = 0
    invoice_count: int = 0
    matched_invoice_count: int = 0
    refund_count: int = 0
    credit_note_count: int = 0
    matched_credit_note_count: int = 0

    @property
    def tied_out(self) -> bool:
        return not self.differences


def _in_currency(items: Iterable[_T], currency: str) -> list[_T]:
    return [i for i in items if not currency or i.currency_code == currency]


@dataclass(frozen=True, slots=True)
class _Expected:
    """What invoicing expects the ledger to hold for one document issued in the period."""

    document: str
    invoice: str
    number: str
    credit_note: str
    currency_code: str
    order: str
    net: int
    tax: int
    issue_time: datetime
    in_period: bool = True


def tie_out(given: TieOutInput) -> TieOut:
    """Match everything in `given`; the differences come ordered by time, then kind."""
    cur = given.currency_code
    matcher = _Matcher(given.period)
    payments = _in_currency(given.payments, cur)
    invoices = _in_currency(given.invoices, cur)
    notes = _in_currency(given.credit_notes, cur)
    matcher.payments(payments, invoices)
    matcher.refunds(_in_currency(given.refunds, cur), invoices, notes)
    matcher.ledger(invoices, notes, _in_currency(given.postings, cur))
    matcher.documents(invoices, notes)
    matcher.report.differences.sort(key=lambda d: d.sort_key)
    return matcher.report


class _Matcher:
    def __init__(self, period: Period) -> None:
        self.period = period
        self.report = TieOut()
        self.dirty: set[str] = set()

    def totals(self, currency: str) -> Totals:
        return self.report.totals.setdefault(currency, Totals(currency))

    def add(self, difference: Difference, *dirty: str) -> None:
        self.report.differences.append(difference)
        self.dirty.update(d for d in dirty if d)

    # --- payments ---------------------------------------------------------------------------

    def payments(
        self, payments: Sequence[CapturedPayment], invoices: Sequence[InvoiceRecord]
    ) -> None:
        recorded_on: dict[str, list[tuple[InvoiceRecord, int]]] = defaultdict(list)
        for invoice in invoices:
            if not invoice.void:
                for payment, amount in invoice.payments:
                    recorded_on[payment].append((invoice, amount))
        in_period = [p for p in payments if p.capture_time in self.period]
        self.report.payment_count = len(in_period)
        for captured in in_period:
            self.totals(captured.currency_code).captured += captured.amount
            holders = sorted(recorded_on.get(captured.payment, []), key=lambda h: h[0].issue_time)
            self.payment(captured, holders)
        known = {p.payment for p in payments}
        for invoice in invoices:
            if not invoice.void and invoice.issue_time in self.period:
                self.invoice_payments(invoice, known)

    def payment(
        self, captured: CapturedPayment, holders: Sequence[tuple[InvoiceRecord, int]]
    ) -> None:
        if not holders:
            self.add(
                Difference(
                    DifferenceKind.PAYMENT_NOT_INVOICED,
                    captured.capture_time,
                    captured.currency_code,
                    f"payment {captured.payment} was captured but is on no invoice",
                    payment=captured.payment,
                    order=captured.order,
                    counterpart_amount=captured.amount,
                )
            )
            return
        first, amount = holders[0]
        self.totals(captured.currency_code).invoice_paid += amount
        if amount != captured.amount:
            self.add(
                Difference(
                    DifferenceKind.PAYMENT_AMOUNT_MISMATCH,
                    min(captured.capture_time, first.issue_time),
                    captured.currency_code,
                    f"captured {captured.amount} but {first.number} records {amount}",
                    invoice=first.invoice,
                    invoice_number=first.number,
                    payment=captured.payment,
                    order=captured.order or first.order,
                    invoicing_amount=amount,
                    counterpart_amount=captured.amount,
                ),
                first.invoice,
            )
        for extra, extra_amount in holders[1:]:
            self.add(
                Difference(
                    DifferenceKind.PAYMENT_INVOICED_TWICE,
                    min(captured.capture_time, extra.issue_time),
                    captured.currency_code,
                    f"payment {captured.payment} is also recorded on {extra.number}",
                    invoice=extra.invoice,
                    invoice_number=extra.number,
                    payment=captured.payment,
                    order=extra.order,
                    invoicing_amount=extra_amount,
                    counterpart_amount=captured.amount,
                ),
                extra.invoice,
            )
        if amount == captured.amount and len(holders) == 1:
            self.report.matched_payment_count += 1

    def invoice_payments(self, invoice: InvoiceRecord, known: set[str]) -> None:
        if invoice.checkout and not invoice.payments:
            self.add(
                Difference(
                    DifferenceKind.INVOICE_WITHOUT_PAYMENT,
                    invoice.issue_time,
                    invoice.currency_code,
                    f"checkout invoice {invoice.number} records no payment",
                    invoice=invoice.invoice,
                    invoice_number=invoice.number,
                    order=invoice.order,
                    invoicing_amount=invoice.total,
                ),
                invoice.invoice,
            )
        for payment, amount in invoice.payments:
            if payment and payment not in known:
                self.add(
                    Difference(
                        DifferenceKind.INVOICE_WITHOUT_PAYMENT,
                        invoice.issue_time,
                        invoice.currency_code,
                        f"{invoice.number} records {payment}, which payments never captured",
                        invoice=invoice.invoice,
                        invoice_number=invoice.number,
                        payment=payment,
                        order=invoice.order,
                        invoicing_amount=amount,
                    ),
                    invoice.invoice,
                )

    # --- refunds ----------------------------------------------------------------------------

    def refunds(
        self,
        refunds: Sequence[RefundRecord],
        invoices: Sequence[InvoiceRecord],
        notes: Sequence[CreditNoteRecord],
    ) -> None:
        by_refund = {n.refund: n for n in notes if n.refund and not n.void}
        invoice_of = {p: i for i in invoices if not i.void for p, _ in i.payments}
        in_period = [r for r in refunds if r.refund_time in self.period]
        self.report.refund_count = len(in_period)
        for refund in in_period:
            self.totals(refund.currency_code).refunded += refund.amount
            note = by_refund.get(refund.refund)
            invoice = invoice_of.get(refund.payment)
            if note is None and invoice is not None:
                self.add(
                    Difference(
                        DifferenceKind.REFUND_WITHOUT_CREDIT_NOTE,
                        refund.refund_time,
                        refund.currency_code,
                        f"refund {refund.refund} of {invoice.number} has no credit note",
                        invoice=invoice.invoice,
                        invoice_number=invoice.number,
                        payment=refund.payment,
                        refund=refund.refund,
                        order=invoice.order,
                        counterpart_amount=refund.amount,
                    )
                )
            elif note is not None and note.total != refund.amount:
                self.add(
                    Difference(
                        DifferenceKind.REFUND_AMOUNT_MISMATCH,
                        min(refund.refund_time, note.issue_time),
                        refund.currency_code,
                        f"refunded {refund.amount} but the credit note credits {note.total}",
                        invoice=note.invoice,
                        invoice_number=note.invoice_number,
                        credit_note=note.credit_note,
                        payment=refund.payment,
                        refund=refund.refund,
                        invoicing_amount=note.total,
                        counterpart_amount=refund.amount,
                    ),
                    note.credit_note,
                )
        known = {r.refund for r in refunds}
        for note in notes:
            if note.void or not note.refund or note.issue_time not in self.period:
                continue
            if note.refund not in known:
                self.add(
                    Difference(
                        DifferenceKind.CREDIT_NOTE_WITHOUT_REFUND,
                        note.issue_time,
                        note.currency_code,
                        f"the credit note records {note.refund}, which payments does not know",
                        invoice=note.invoice,
                        invoice_number=note.invoice_number,
                        credit_note=note.credit_note,
                        refund=note.refund,
                        invoicing_amount=note.total,
                    ),
                    note.credit_note,
                )

    # --- ledger -----------------------------------------------------------------------------

    def ledger(
        self,
        invoices: Sequence[InvoiceRecord],
        notes: Sequence[CreditNoteRecord],
        postings: Sequence[LedgerPosting],
    ) -> None:
        """Documents issued in the period against all their postings (which may fall just
        outside it), and documents posted in the period against theirs, whenever issued."""
        by_document, posted_now, loose = self.index(postings)
        expected = [
            e for e in self.expected(invoices, notes) if e.in_period or e.document in posted_now
        ]
        for item in expected:
            if item.currency_code not in loose:
                self.document_postings(item, by_document.get(item.document, []))
        known = {e.document for e in expected}
        for document in sorted(posted_now - known):
            found = by_document[document]
            if found[0].currency_code not in loose:
                self.stray_postings(document, [p for p in found if p.post_time in self.period])
        for currency in sorted(loose):
            self.currency_postings(
                currency, [e for e in expected if e.in_period and e.currency_code == currency]
            )

    def index(
        self, postings: Sequence[LedgerPosting]
    ) -> tuple[dict[str, list[LedgerPosting]], set[str], set[str]]:
        """Postings per document; the documents posted in the period; the currencies with
        postings in the period that name no document. Adds the period's ledger totals."""
        by_document: dict[str, list[LedgerPosting]] = defaultdict(list)
        posted_now: set[str] = set()
        loose: set[str] = set()
        for posting in postings:
            in_period = posting.post_time in self.period
            if in_period:
                t = self.totals(posting.currency_code)
                t.ledger_revenue += posting.revenue
                t.ledger_tax += posting.tax
            if posting.document:
                by_document[posting.document].append(posting)
                if in_period:
                    posted_now.add(posting.document)
            elif in_period:
                loose.add(posting.currency_code)
        return by_document, posted_now, loose

    def expected(
        self, invoices: Sequence[InvoiceRecord], notes: Sequence[CreditNoteRecord]
    ) -> list[_Expected]:
        out = [
            _Expected(
                i.invoice,
                i.invoice,
                i.number,
                "",
                i.currency_code,
                i.order,
                0 if i.void else i.net,
                0 if i.void else i.tax,
                i.issue_time,
                in_period=i.issue_time in self.period,
            )
            for i in invoices
        ]
        out += [
            _Expected(
                n.credit_note,
                n.invoice,
                n.invoice_number,
                n.credit_note,
                n.currency_code,
                "",
                0 if n.void else -n.net,
                0 if n.void else -n.tax,
                n.issue_time,
                in_period=n.issue_time in self.period,
            )
            for n in notes
        ]
        return out

    def document_postings(self, item: _Expected, found: Sequence[LedgerPosting]) -> None:
        entries = ",".join(sorted(p.entry for p in found))
        first = min([item.issue_time, *(p.post_time for p in found)])
        for kind, ours, theirs in (
            (DifferenceKind.LEDGER_REVENUE_MISMATCH, item.net, sum(p.revenue for p in found)),
            (DifferenceKind.LEDGER_TAX_MISMATCH, item.tax, sum(p.tax for p in found)),
        ):
            if ours != theirs:
                self.add(
                    Difference(
                        kind,
                        first,
                        item.currency_code,
                        f"{item.number or item.document}: invoicing says {ours}, "
                        f"the ledger {theirs}",
                        invoice=item.invoice,
                        invoice_number=item.number,
                        credit_note=item.credit_note,
                        order=item.order,
                        ledger_entry=entries,
                        invoicing_amount=ours,
                        counterpart_amount=theirs if found else None,
                    ),
                    item.document,
                )

    def stray_postings(self, document: str, found: Sequence[LedgerPosting]) -> None:
        """Postings for a document invoicing did not issue in the period (or at all)."""
        invoice, _, _ = document.partition("/creditNotes/")
        for kind, theirs in (
            (DifferenceKind.LEDGER_REVENUE_MISMATCH, sum(p.revenue for p in found)),
            (DifferenceKind.LEDGER_TAX_MISMATCH, sum(p.tax for p in found)),
        ):
            if theirs:
                self.add(
                    Difference(
                        kind,
                        min(p.post_time for p in found),
                        found[0].currency_code,
                        f"the ledger posted {theirs} for {document}, not issued in the period",
                        invoice=invoice,
                        credit_note=document if "/creditNotes/" in document else "",
                        ledger_entry=",".join(sorted(p.entry for p in found)),
                        counterpart_amount=theirs,
                    )
                )

    def currency_postings(self, currency: str, expected: Sequence[_Expected]) -> None:
        """Where postings cannot be attributed, the currency's net and tax are compared whole."""
        t = self.totals(currency)
        for kind, ours, theirs in (
            (
                DifferenceKind.LEDGER_REVENUE_MISMATCH,
                sum(e.net for e in expected),
                t.ledger_revenue,
            ),
            (DifferenceKind.LEDGER_TAX_MISMATCH, sum(e.tax for e in expected), t.ledger_tax),
        ):
            if ours != theirs:
                self.add(
                    Difference(
                        kind,
                        self.period.start,
                        currency,
                        f"{currency} for the period: invoicing says {ours}, the ledger {theirs}",
                        invoicing_amount=ours,
                        counterpart_amount=theirs,
                    ),
                    *(e.document for e in expected),
                )

    # --- counts and invoicing's totals ------------------------------------------------------

    def documents(
        self, invoices: Sequence[InvoiceRecord], notes: Sequence[CreditNoteRecord]
    ) -> None:
        issued = [i for i in invoices if i.issue_time in self.period]
        self.report.invoice_count = len(issued)
        self.report.matched_invoice_count = sum(
            1 for i in issued if not i.void and i.invoice not in self.dirty
        )
        for invoice in issued:
            if not invoice.void:
                t = self.totals(invoice.currency_code)
                t.invoiced += invoice.total
                t.invoice_net += invoice.net
                t.invoice_tax += invoice.tax
        issued_notes = [n for n in notes if n.issue_time in self.period]
        self.report.credit_note_count = len(issued_notes)
        self.report.matched_credit_note_count = sum(
            1 for n in issued_notes if not n.void and n.credit_note not in self.dirty
        )
        for note in issued_notes:
            if not note.void:
                t = self.totals(note.currency_code)
                t.credited += note.total
                t.credit_note_net += note.net
                t.credit_note_tax += note.tax
