"""Use cases: open nothing, load the aggregate from the unit of work, apply the rule, save,
stage the events. The API and the event consumer call the same functions."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from services.invoicing.domain import errors, journals
from services.invoicing.domain.commands import (
    Capture,
    CheckoutInvoice,
    CreditSpec,
    DraftPatch,
    PaymentSpec,
    Refund,
    derived_id,
    new_id,
    price_lines,
)
from services.invoicing.domain.credit_notes import (
    CreditNote,
    CreditNoteReason,
    credit_amount,
    credit_lines,
    credited_per_line,
)
from services.invoicing.domain.events import (
    CreditNoteIssued,
    CreditNoteVoided,
    InvoiceIssued,
    InvoiceMarkedUncollectible,
    InvoicePaid,
    InvoiceVoided,
    InvoicingEvent,
)
from services.invoicing.domain.invoices import (
    DraftContent,
    Invoice,
    InvoicePayment,
    InvoiceSource,
    InvoiceState,
    Number,
)
from services.invoicing.domain.numbering import DocumentKind, NumberingConfig, known_time_zone
from services.invoicing.domain.ports import UnitOfWork

# --- reads ----------------------------------------------------------------------------------


async def require_invoice(uow: UnitOfWork, invoice_id: str, *, lock: bool = False) -> Invoice:
    invoice = await uow.invoices.get(invoice_id, lock=lock)
    if invoice is None:
        raise errors.invoice_not_found(f"tenants/{uow.tenant}/invoices/{invoice_id}")
    return invoice


async def require_credit_note(
    uow: UnitOfWork, invoice_id: str, credit_note_id: str, *, lock: bool = False
) -> CreditNote:
    note = await uow.credit_notes.get(invoice_id, credit_note_id, lock=lock)
    if note is None:
        raise errors.credit_note_not_found(
            f"tenants/{uow.tenant}/invoices/{invoice_id}/creditNotes/{credit_note_id}"
        )
    return note


# --- numbering ------------------------------------------------------------------------------


async def draw_number(uow: UnitOfWork, kind: DocumentKind, issue_time: datetime) -> Number:
    """The next number of the tenant's series, taken in this transaction (gapless: a rollback
    gives it back, a commit uses it for good)."""
    config = await uow.numbering.get()
    series = config.series(kind)
    counter = series.counter(issue_time, config.time_zone)
    sequence = await uow.counters.take(counter, max(1, series.start_sequence))
    return Number(series.format_number(sequence, issue_time, config.time_zone), counter, sequence)


async def update_numbering(uow: UnitOfWork, config: NumberingConfig, etag: str) -> NumberingConfig:
    if not known_time_zone(config.time_zone):
        raise errors.unknown_time_zone(config.time_zone)
    current = await uow.numbering.get()
    if etag and etag != current.etag:
        raise errors.etag_mismatch(current.etag)
    now = uow.now()
    for kind in DocumentKind:
        series = config.series(kind)
        counter = series.counter(now, config.time_zone)
        upcoming = await uow.counters.peek(counter) or max(1, series.start_sequence)
        number = series.format_number(upcoming, now, config.time_zone)
        repo = uow.invoices if kind is DocumentKind.INVOICE else uow.credit_notes
        if await repo.number_taken(number):
            raise errors.numbering_format_conflict(number)
    updated = replace(config, update_time=now, version=current.version + 1)
    await uow.numbering.save(updated)
    return updated


# --- manual invoices ------------------------------------------------------------------------


async def create_invoice(uow: UnitOfWork, currency_code: str, content: DraftContent) -> Invoice:
    now = uow.now()
    invoice = Invoice(
        tenant=uow.tenant,
        invoice_id=new_id(),
        source=InvoiceSource.MANUAL,
        currency_code=currency_code,
        content=content,
        create_time=now,
        update_time=now,
    )
    await uow.invoices.add(invoice)
    return invoice


def patched(content: DraftContent, patch: DraftPatch, currency_code: str) -> DraftContent:
    customer = patch.customer or content.customer
    if patch.customer_fields:
        customer = replace(customer, **dict(patch.customer_fields))
    return DraftContent(
        customer=customer,
        lines=content.lines if patch.lines is None else price_lines(patch.lines, currency_code),
        billing_address=(
            patch.billing_address if patch.replace_billing_address else content.billing_address
        ),
        shipping_address=(
            patch.shipping_address if patch.replace_shipping_address else content.shipping_address
        ),
        memo=content.memo if patch.memo is None else patch.memo,
        due_time=patch.due_time if patch.replace_due_time else content.due_time,
    )


async def update_invoice(uow: UnitOfWork, invoice_id: str, etag: str, patch: DraftPatch) -> Invoice:
    invoice = await require_invoice(uow, invoice_id, lock=True)
    invoice.check_etag(etag)
    invoice.update_draft(patched(invoice.content, patch, invoice.currency_code), uow.now())
    await uow.invoices.save(invoice)
    return invoice


async def issue_invoice(uow: UnitOfWork, invoice_id: str, etag: str) -> Invoice:
    invoice = await require_invoice(uow, invoice_id, lock=True)
    invoice.check_etag(etag)
    now = uow.now()
    if invoice.state is not InvoiceState.DRAFT:
        raise errors.invoice_not_draft(invoice.state.value)
    invoice.issue(await draw_number(uow, DocumentKind.INVOICE, now), now)
    await uow.invoices.save(invoice)
    await uow.outbox.stage([InvoiceIssued(invoice)])
    await uow.ledger.queue(journals.invoice_issued(invoice))
    return invoice


async def mark_paid(uow: UnitOfWork, invoice_id: str, etag: str, spec: PaymentSpec) -> Invoice:
    invoice = await require_invoice(uow, invoice_id, lock=True)
    invoice.check_etag(etag)
    if spec.payment:
        holder = await uow.invoices.by_payment(spec.payment)
        if holder is not None and holder.invoice_id != invoice.invoice_id:
            raise errors.payment_already_invoiced(holder.name)
    if spec.amount is not None and spec.currency_code != invoice.currency_code:
        raise errors.currency_mismatch(invoice.currency_code, spec.currency_code)
    now = uow.now()
    payment = InvoicePayment(
        payment=spec.payment,
        amount=invoice.balance_due if spec.amount is None else spec.amount,
        paid_time=spec.paid_time or now,
        capture_reference=spec.capture_reference,
        external_reference=spec.external_reference,
    )
    await _record(uow, invoice, payment, now)
    return invoice


async def _record(
    uow: UnitOfWork, invoice: Invoice, payment: InvoicePayment, now: datetime
) -> None:
    invoice.record_payment(payment, now)
    if invoice.changes:
        await uow.invoices.save(invoice)
        await uow.ledger.queue(journals.payment_applied(invoice, payment))
    if "paid" in invoice.changes:
        await uow.outbox.stage([InvoicePaid(invoice, payment)])


async def void_invoice(uow: UnitOfWork, invoice_id: str, etag: str, reason: str) -> Invoice:
    invoice = await require_invoice(uow, invoice_id, lock=True)
    invoice.check_etag(etag)
    invoice.void(reason, uow.now())
    await uow.invoices.save(invoice)
    if "voided" in invoice.changes:
        await uow.outbox.stage([InvoiceVoided(invoice)])
        await uow.ledger.queue(journals.invoice_voided(invoice))
    return invoice


async def mark_uncollectible(uow: UnitOfWork, invoice_id: str, etag: str, reason: str) -> Invoice:
    invoice = await require_invoice(uow, invoice_id, lock=True)
    invoice.check_etag(etag)
    invoice.mark_uncollectible(reason, uow.now())
    await uow.invoices.save(invoice)
    await uow.outbox.stage([InvoiceMarkedUncollectible(invoice)])
    return invoice


# --- credit notes ---------------------------------------------------------------------------


async def create_credit_note(
    uow: UnitOfWork, invoice_id: str, spec: CreditSpec, credit_note_id: str = ""
) -> CreditNote:
    invoice = await require_invoice(uow, invoice_id, lock=True)
    if spec.refund:
        existing = await uow.credit_notes.by_refund(spec.refund)
        if existing is not None:
            raise errors.refund_already_credited(existing.name)
    if invoice.state not in {InvoiceState.ISSUED, InvoiceState.PAID, InvoiceState.UNCOLLECTIBLE}:
        raise errors.invalid_transition(
            invoice.state.value, invoice.state.value, "credit notes need an issued invoice"
        )
    for currency in (spec.currency_code, *spec.line_currencies):
        if currency and currency != invoice.currency_code:
            raise errors.currency_mismatch(invoice.currency_code, currency)
    credited = credited_per_line(await uow.credit_notes.of_invoice(invoice_id))
    lines = (
        credit_amount(invoice, spec.amount, credited)
        if spec.amount is not None
        else credit_lines(invoice, spec.lines, credited)
    )
    now = uow.now()
    assert invoice.number is not None  # issued invoices are numbered
    note = CreditNote(
        tenant=uow.tenant,
        invoice_id=invoice_id,
        credit_note_id=credit_note_id or new_id(),
        number=await draw_number(uow, DocumentKind.CREDIT_NOTE, now),
        invoice_number=invoice.number.number,
        reason=spec.reason,
        currency_code=invoice.currency_code,
        lines=lines,
        create_time=now,
        update_time=now,
        memo=spec.memo,
        refund=spec.refund,
    )
    invoice.apply_credit(note.total, now)
    await uow.credit_notes.add(note)
    await uow.invoices.save(invoice)
    events: list[InvoicingEvent] = [CreditNoteIssued(note, invoice)]
    if "paid" in invoice.changes:
        events.append(InvoicePaid(invoice, None))
    await uow.outbox.stage(events)
    await uow.ledger.queue(journals.credit_note_issued(note))
    return note


async def void_credit_note(
    uow: UnitOfWork, invoice_id: str, credit_note_id: str, etag: str
) -> CreditNote:
    invoice = await require_invoice(uow, invoice_id, lock=True)
    note = await require_credit_note(uow, invoice_id, credit_note_id, lock=True)
    note.check_etag(etag)
    now = uow.now()
    note.void(now)
    invoice.withdraw_credit(note.total, now)
    await uow.credit_notes.save(note)
    await uow.invoices.save(invoice)
    await uow.outbox.stage([CreditNoteVoided(note, invoice)])
    await uow.ledger.queue(journals.credit_note_voided(note))
    return note


# --- from other services' events ------------------------------------------------------------


async def invoice_checkout(uow: UnitOfWork, checkout: CheckoutInvoice) -> Invoice:
    """The order's invoice, ISSUED and PAID with the captured payment; at most one per order
    however often (and however concurrently) the event arrives."""
    await uow.serialize_on(checkout.order)
    existing = await uow.invoices.by_order(checkout.order)
    if existing is not None:
        return existing
    paid = bool(checkout.payment) and checkout.captured_amount > 0
    if paid:
        holder = await uow.invoices.by_payment(checkout.payment)
        if holder is not None:
            raise errors.payment_already_invoiced(holder.name)
    now = uow.now()
    invoice = Invoice(
        tenant=uow.tenant,
        invoice_id=derived_id(checkout.order),
        source=InvoiceSource.CHECKOUT,
        currency_code=checkout.currency_code,
        content=checkout.content(),
        create_time=now,
        update_time=now,
        order=checkout.order,
    )
    # Everything that does not need the number is done; the counter stays locked from here
    # to commit, so the rest is one insert (with the payment) and the events.
    invoice.issue(await draw_number(uow, DocumentKind.INVOICE, now), now)
    events: list[InvoicingEvent] = [InvoiceIssued(invoice)]
    owed = journals.invoice_issued(invoice)
    if paid:
        payment = InvoicePayment(
            payment=checkout.payment,
            amount=min(checkout.captured_amount, invoice.balance_due),
            paid_time=checkout.complete_time,
            capture_reference=checkout.capture_reference,
        )
        invoice.record_payment(payment, now)
        owed += journals.payment_applied(invoice, payment)
        if "paid" in invoice.changes:
            events.append(InvoicePaid(invoice, payment))
    await uow.invoices.add(invoice)
    await uow.outbox.stage(events)
    await uow.ledger.queue(owed)
    return invoice


async def record_capture(uow: UnitOfWork, capture: Capture) -> Invoice | None:
    """Record a capture on its order's invoice if CheckoutCompleted did not already; a capture
    of no invoiced order is left to the tie-out (PAYMENT_NOT_INVOICED)."""
    if await uow.invoices.by_payment(capture.payment) is not None or not capture.order:
        return None
    await uow.serialize_on(capture.order)
    invoice = await uow.invoices.by_order(capture.order)
    if invoice is None:
        return None
    invoice = await require_invoice(uow, invoice.invoice_id, lock=True)
    if invoice.state not in {InvoiceState.ISSUED, InvoiceState.UNCOLLECTIBLE}:
        return invoice
    now = uow.now()
    payment = InvoicePayment(
        payment=capture.payment,
        amount=min(capture.amount, invoice.balance_due),
        paid_time=capture.capture_time,
        capture_reference=capture.capture_reference,
    )
    await _record(uow, invoice, payment, now)
    return invoice


class RefundNotYetInvoiced(RuntimeError):
    """A refund of an order whose invoice is not there yet: retried until it is."""


async def credit_refund(uow: UnitOfWork, refund: Refund) -> CreditNote | None:
    """One credit note per refund of an invoiced payment (by the refund's total)."""
    existing = await uow.credit_notes.by_refund(refund.refund)
    if existing is not None:
        return existing
    invoice = await uow.invoices.by_payment(refund.payment)
    if invoice is None:
        if refund.order:  # CheckoutCompleted may still be on its way on the other topic
            raise RefundNotYetInvoiced(refund.refund)
        return None
    spec = CreditSpec(
        reason=CreditNoteReason.REFUND,
        amount=refund.amount,
        currency_code=refund.currency_code,
        refund=refund.refund,
    )
    return await create_credit_note(uow, invoice.invoice_id, spec, derived_id(refund.refund))
