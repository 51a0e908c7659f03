"""Proto ⇄ domain: the only place that knows both the wire messages and the domain types."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from commerce.checkout.v1 import events_pb2 as checkout_events
from commerce.checkout.v1 import quote_pb2
from commerce.invoicing.v1 import credit_note_pb2 as cn
from commerce.invoicing.v1 import numbering_pb2 as nb
from commerce.invoicing.v1 import resources_pb2 as res
from commerce.type.v1.address_pb2 import Address as AddressMessage
from commerce.type.v1.ids_pb2 import CustomerRef
from commerce.type.v1.money_pb2 import Money
from services.invoicing.domain import commands
from services.invoicing.domain.credit_notes import (
    CreditNote,
    CreditNoteLine,
    CreditNoteReason,
    LineCredit,
)
from services.invoicing.domain.invoices import (
    Address,
    Customer,
    DraftContent,
    Invoice,
    InvoiceLine,
    InvoicePayment,
    InvoiceState,
    TaxLine,
    TaxRate,
)
from services.invoicing.domain.numbering import NumberingConfig, SequenceReset, Series

# --- scalars --------------------------------------------------------------------------------


def timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value.astimezone(UTC))
    return stamp


def when(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def money(amount: int, currency: str) -> Money:
    return Money(currency_code=currency, amount_minor=amount)


def invoice_state(state: InvoiceState) -> res.InvoiceState.ValueType:
    return res.InvoiceState.Value(f"INVOICE_STATE_{state.value}")


def invoice_state_from(value: res.InvoiceState.ValueType) -> InvoiceState:
    return InvoiceState(res.InvoiceState.Name(value).removeprefix("INVOICE_STATE_"))


def reason(value: CreditNoteReason) -> cn.CreditNoteReason.ValueType:
    return cn.CreditNoteReason.Value(f"CREDIT_NOTE_REASON_{value.value}")


# --- parties --------------------------------------------------------------------------------


def customer(message: CustomerRef) -> Customer:
    return Customer(message.customer_id, message.email, message.display_name)


def customer_message(value: Customer) -> CustomerRef:
    return CustomerRef(
        customer_id=value.customer_id, email=value.email, display_name=value.display_name
    )


def address(message: AddressMessage) -> Address:
    return Address(
        region_code=message.region_code,
        administrative_area=message.administrative_area,
        locality=message.locality,
        postal_code=message.postal_code,
        address_lines=tuple(message.address_lines),
        recipient=message.recipient,
    )


def address_message(value: Address | None) -> AddressMessage | None:
    if value is None:
        return None
    return AddressMessage(
        region_code=value.region_code,
        administrative_area=value.administrative_area,
        locality=value.locality,
        postal_code=value.postal_code,
        address_lines=list(value.address_lines),
        recipient=value.recipient,
    )


# --- lines and tax --------------------------------------------------------------------------


def tax_line_message(tax: TaxLine, currency: str) -> res.TaxLine:
    return res.TaxLine(
        jurisdiction=tax.jurisdiction,
        tax_name=tax.tax_name,
        rate_ppm=tax.rate_ppm,
        taxable_amount=money(tax.taxable_amount, currency),
        tax_amount=money(tax.tax_amount, currency),
    )


def tax_lines(taxes: Iterable[TaxLine], currency: str) -> list[res.TaxLine]:
    return [tax_line_message(t, currency) for t in taxes]


def line_spec(message: res.InvoiceLine) -> commands.LineSpec:
    return commands.LineSpec(
        description=message.description,
        quantity=message.quantity,
        unit_price=message.unit_price.amount_minor,
        currency_code=message.unit_price.currency_code,
        sku=message.sku,
        tax_code=message.tax_code,
        discount_amount=message.discount_amount.amount_minor,
        rates=tuple(TaxRate(r.jurisdiction, r.tax_name, r.rate_ppm) for r in message.tax_rates),
    )


def invoice_line_message(line: InvoiceLine, currency: str) -> res.InvoiceLine:
    return res.InvoiceLine(
        line_id=line.line_id,
        description=line.description,
        sku=line.sku,
        quantity=line.quantity,
        unit_price=money(line.unit_price, currency),
        tax_code=line.tax_code,
        discount_amount=money(line.discount_amount, currency),
        tax_rates=[
            res.TaxRate(jurisdiction=r.jurisdiction, tax_name=r.tax_name, rate_ppm=r.rate_ppm)
            for r in line.tax_rates
        ],
        subtotal=money(line.subtotal, currency),
        net_amount=money(line.net_amount, currency),
        tax_amount=money(line.tax_amount, currency),
        total=money(line.total, currency),
        taxes=tax_lines(line.taxes, currency),
    )


def draft_content(message: res.Invoice) -> DraftContent:
    return DraftContent(
        customer=customer(message.customer),
        lines=commands.price_lines(
            [line_spec(line) for line in message.lines], message.currency_code
        ),
        billing_address=address(message.billing_address)
        if message.HasField("billing_address")
        else None,
        shipping_address=address(message.shipping_address)
        if message.HasField("shipping_address")
        else None,
        memo=message.memo,
        due_time=when(message.due_time) if message.HasField("due_time") else None,
    )


def payment_message(payment: InvoicePayment, currency: str) -> res.InvoicePayment:
    return res.InvoicePayment(
        payment=payment.payment,
        capture_reference=payment.capture_reference,
        external_reference=payment.external_reference,
        amount=money(payment.amount, currency),
        paid_time=timestamp(payment.paid_time),
    )


def invoice(value: Invoice) -> res.Invoice:
    currency = value.currency_code
    content = value.content
    return res.Invoice(
        name=value.name,
        number=value.number.number if value.number else "",
        series=value.number.series if value.number else "",
        sequence=value.number.sequence if value.number else 0,
        state=invoice_state(value.state),
        source=res.InvoiceSource.Value(f"INVOICE_SOURCE_{value.source.value}"),
        customer=customer_message(content.customer),
        billing_address=address_message(content.billing_address),
        shipping_address=address_message(content.shipping_address),
        currency_code=currency,
        lines=[invoice_line_message(line, currency) for line in value.lines],
        tax_breakdown=tax_lines(value.tax_breakdown, currency),
        subtotal=money(value.subtotal, currency),
        discount_total=money(value.discount_total, currency),
        tax_total=money(value.tax_total, currency),
        total=money(value.total, currency),
        amount_paid=money(value.amount_paid, currency),
        amount_credited=money(value.amount_credited, currency),
        balance_due=money(value.balance_due, currency),
        order=value.order,
        payments=[payment_message(p, currency) for p in value.payments],
        memo=content.memo,
        state_reason=value.state_reason,
        due_time=timestamp(content.due_time),
        issue_time=timestamp(value.issue_time),
        paid_time=timestamp(value.paid_time),
        void_time=timestamp(value.void_time),
        uncollectible_time=timestamp(value.uncollectible_time),
        create_time=timestamp(value.create_time),
        update_time=timestamp(value.update_time),
        etag=value.etag,
    )


# --- credit notes ---------------------------------------------------------------------------


def credit_spec(message: cn.CreditNote) -> commands.CreditSpec:
    has_amount = message.HasField("amount")
    return commands.CreditSpec(
        reason=CreditNoteReason(
            cn.CreditNoteReason.Name(message.reason).removeprefix("CREDIT_NOTE_REASON_")
        ),
        amount=message.amount.amount_minor if has_amount else None,
        currency_code=message.amount.currency_code if has_amount else "",
        lines=tuple(
            LineCredit(
                invoice_line_id=line.invoice_line_id,
                quantity=line.quantity,
                amount=line.amount.amount_minor,
            )
            for line in message.lines
        ),
        line_currencies=tuple(
            line.amount.currency_code for line in message.lines if line.HasField("amount")
        ),
        memo=message.memo,
        refund=message.refund,
    )


def credit_note_line_message(line: CreditNoteLine, currency: str) -> cn.CreditNoteLine:
    message = cn.CreditNoteLine(
        invoice_line_id=line.invoice_line_id,
        description=line.description,
        net_amount=money(line.net_amount, currency),
        tax_amount=money(line.tax_amount, currency),
        total=money(line.total, currency),
        taxes=tax_lines(line.taxes, currency),
    )
    if line.quantity:
        message.quantity = line.quantity
    else:
        message.amount.CopyFrom(money(line.net_amount, currency))
    return message


def credit_note(value: CreditNote) -> cn.CreditNote:
    currency = value.currency_code
    return cn.CreditNote(
        name=value.name,
        number=value.number.number,
        series=value.number.series,
        sequence=value.number.sequence,
        invoice_number=value.invoice_number,
        state=cn.CreditNoteState.Value(f"CREDIT_NOTE_STATE_{value.state.value}"),
        reason=reason(value.reason),
        memo=value.memo,
        lines=[credit_note_line_message(line, currency) for line in value.lines],
        refund=value.refund,
        currency_code=currency,
        tax_breakdown=tax_lines(value.tax_breakdown, currency),
        subtotal=money(value.subtotal, currency),
        tax_total=money(value.tax_total, currency),
        total=money(value.total, currency),
        issue_time=timestamp(value.create_time),
        void_time=timestamp(value.void_time),
        create_time=timestamp(value.create_time),
        update_time=timestamp(value.update_time),
        etag=value.etag,
    )


# --- numbering ------------------------------------------------------------------------------


def series(message: nb.NumberingSeries) -> Series:
    return Series(
        prefix=message.prefix,
        format=message.format,
        reset=SequenceReset(nb.SequenceReset.Name(message.reset).removeprefix("SEQUENCE_RESET_")),
        start_sequence=message.start_sequence or 1,
    )


def series_message(value: Series, next_sequence: int, current: str) -> nb.NumberingSeries:
    return nb.NumberingSeries(
        prefix=value.prefix,
        format=value.format,
        reset=nb.SequenceReset.Value(f"SEQUENCE_RESET_{value.reset.value}"),
        start_sequence=value.start_sequence,
        next_sequence=next_sequence,
        current_series=current,
    )


def numbering_config(
    tenant: str, config: NumberingConfig, upcoming: dict[str, tuple[int, str]]
) -> nb.NumberingConfig:
    """`upcoming`: per series kind ("invoice", "credit_note"), its next sequence and counter."""
    return nb.NumberingConfig(
        name=f"tenants/{tenant}/numberingConfig",
        invoice_series=series_message(config.invoice_series, *upcoming["invoice"]),
        credit_note_series=series_message(config.credit_note_series, *upcoming["credit_note"]),
        time_zone=config.time_zone,
        update_time=timestamp(config.update_time),
        etag=config.etag,
    )


# --- other services' events -----------------------------------------------------------------


def _checkout_line(line: quote_pb2.QuoteLine) -> InvoiceLine:
    """An order line copied verbatim: its amounts and per-rate tax are never recomputed."""
    return InvoiceLine(
        line_id=line.line_id,
        description=line.description,
        quantity=line.quantity,
        unit_price=line.unit_price.amount_minor,
        sku=line.sku,
        tax_code=line.product_tax_code,
        discount_amount=line.discount_amount.amount_minor,
        taxes=tuple(
            TaxLine(
                t.jurisdiction,
                t.tax_name,
                t.rate_ppm,
                t.taxable_amount.amount_minor,
                t.tax_amount.amount_minor,
            )
            for t in line.taxes
        ),
    )


def checkout_invoice(event: checkout_events.CheckoutCompleted) -> commands.CheckoutInvoice:
    return commands.CheckoutInvoice(
        order=event.order,
        customer=customer(event.customer),
        currency_code=event.currency_code,
        lines=tuple(_checkout_line(line) for line in event.lines),
        payment=event.payment,
        capture_reference=event.capture_reference,
        captured_amount=event.captured_amount.amount_minor,
        complete_time=when(event.complete_time)
        if event.HasField("complete_time")
        else when(event.event_time),
        billing_address=address(event.billing_address)
        if event.HasField("billing_address")
        else None,
        shipping_address=address(event.shipping_address)
        if event.HasField("shipping_address")
        else None,
    )
