"""Credit notes through the RPCs: their own gapless series, a partial refund then a full refund
of the rest, line credits that end exactly at the line's amounts, voiding, rendering."""

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from commerce.invoicing.v1 import credit_note_pb2 as cn
from commerce.invoicing.v1 import invoicing_service_pb2 as pb
from commerce.invoicing.v1 import resources_pb2 as res

pytestmark = pytest.mark.integration


def _credit(invoicing, invoice, **fields):
    return pb.CreateCreditNoteRequest(
        parent=invoice.name,
        credit_note=cn.CreditNote(
            reason=fields.pop("reason", cn.CREDIT_NOTE_REASON_REFUND), **fields
        ),
        request_id=invoicing.rid(),
    )


async def _paid_invoice(invoicing):
    invoice = await invoicing.issued(
        invoicing.line("Widget", 3, 1999, invoicing.vat()),
        invoicing.line("Book", 1, 2500, invoicing.vat(70000)),
    )
    paid = await invoicing.call(
        "MarkInvoicePaid",
        pb.MarkInvoicePaidRequest(
            name=invoice.name,
            payment=f"{invoicing.parent}/payments/pay-1",
            request_id=invoicing.rid(),
        ),
    )
    return paid.invoice


async def test_a_partial_refund_then_a_full_refund_of_the_rest(invoicing):
    invoice = await _paid_invoice(invoicing)
    total = invoice.total.amount_minor  # 5997 + 1139 + 2500 + 175 = 9811
    assert total == 9811
    partial = (
        await invoicing.call(
            "CreateCreditNote",
            _credit(
                invoicing,
                invoice,
                amount=invoicing.money(3000),
                refund=f"{invoicing.parent}/payments/pay-1/refunds/r1",
            ),
        )
    ).credit_note
    year = partial.issue_time.ToDatetime().year
    assert partial.number == f"CN-{year}-000001"
    assert partial.invoice_number == invoice.number
    assert partial.total.amount_minor == 3000
    assert partial.subtotal.amount_minor + partial.tax_total.amount_minor == 3000
    assert {x.invoice_line_id for x in partial.lines} == {"1", "2"}
    after_partial = (
        await invoicing.call("GetInvoice", pb.GetInvoiceRequest(name=invoice.name))
    ).invoice
    assert after_partial.amount_credited.amount_minor == 3000
    assert after_partial.state == res.INVOICE_STATE_PAID
    assert after_partial.balance_due.amount_minor == 0

    code, info = await invoicing.fails(
        "CreateCreditNote", _credit(invoicing, invoice, amount=invoicing.money(total - 2999))
    )
    assert (code, info.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CREDIT_EXCEEDS_BALANCE")
    assert info.metadata["creditable"] == str(total - 3000)

    rest = (
        await invoicing.call(
            "CreateCreditNote",
            _credit(
                invoicing,
                invoice,
                amount=invoicing.money(total - 3000),
                refund=f"{invoicing.parent}/payments/pay-1/refunds/r2",
            ),
        )
    ).credit_note
    assert rest.number == f"CN-{year}-000002"
    # Together the two notes credit exactly the invoice: net and tax per rate.
    for rate in (190000, 70000):
        credited = sum(
            t.tax_amount.amount_minor
            for note in (partial, rest)
            for t in note.tax_breakdown
            if t.rate_ppm == rate
        )
        invoiced = next(
            t.tax_amount.amount_minor for t in invoice.tax_breakdown if t.rate_ppm == rate
        )
        assert credited == invoiced
    assert partial.subtotal.amount_minor + rest.subtotal.amount_minor == 5997 + 2500
    final = (await invoicing.call("GetInvoice", pb.GetInvoiceRequest(name=invoice.name))).invoice
    assert final.amount_credited.amount_minor == total

    code, info = await invoicing.fails(
        "CreateCreditNote",
        _credit(
            invoicing,
            invoice,
            amount=invoicing.money(1),
            refund=f"{invoicing.parent}/payments/pay-1/refunds/r1",
        ),
    )
    assert (code, info.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "REFUND_ALREADY_CREDITED")
    assert info.metadata["credit_note"] == partial.name
    code, info = await invoicing.fails(
        "VoidCreditNote", pb.VoidCreditNoteRequest(name=partial.name, request_id=invoicing.rid())
    )
    assert (code, info.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CREDIT_NOTE_REFUNDED")


async def test_crediting_units_line_by_line_ends_at_the_lines_exact_amounts(invoicing):
    invoice = await invoicing.issued(invoicing.line("Widget", 3, 1999, invoicing.vat()))
    notes = []
    for _ in range(3):
        reply = await invoicing.call(
            "CreateCreditNote",
            _credit(
                invoicing,
                invoice,
                reason=cn.CREDIT_NOTE_REASON_ORDER_CHANGE,
                lines=[cn.CreditNoteLine(invoice_line_id="1", quantity=1)],
            ),
        )
        notes.append(reply.credit_note)
    assert sum(n.subtotal.amount_minor for n in notes) == 5997
    assert sum(n.tax_total.amount_minor for n in notes) == 1139
    invoice_now = (
        await invoicing.call("GetInvoice", pb.GetInvoiceRequest(name=invoice.name))
    ).invoice
    # Fully credited and nothing paid: the balance reached zero, so the invoice is settled.
    assert invoice_now.state == res.INVOICE_STATE_PAID
    code, info = await invoicing.fails(
        "CreateCreditNote",
        _credit(invoicing, invoice, lines=[cn.CreditNoteLine(invoice_line_id="1", quantity=1)]),
    )
    assert (code, info.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CREDIT_EXCEEDS_LINE")
    assert info.metadata["invoice_line_id"] == "1"
    code, info = await invoicing.fails(
        "CreateCreditNote",
        _credit(invoicing, invoice, lines=[cn.CreditNoteLine(invoice_line_id="9", quantity=1)]),
    )
    assert (code, info.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVOICE_LINE_NOT_FOUND")


async def test_voiding_a_credit_note_reopens_the_balance(invoicing):
    invoice = await invoicing.issued(invoicing.line("Service", 1, 10000))
    note = (
        await invoicing.call(
            "CreateCreditNote",
            _credit(
                invoicing,
                invoice,
                reason=cn.CREDIT_NOTE_REASON_PRICE_ADJUSTMENT,
                amount=invoicing.money(10000),
            ),
        )
    ).credit_note
    settled = (await invoicing.call("GetInvoice", pb.GetInvoiceRequest(name=invoice.name))).invoice
    assert settled.state == res.INVOICE_STATE_PAID
    voided = (
        await invoicing.call(
            "VoidCreditNote", pb.VoidCreditNoteRequest(name=note.name, request_id=invoicing.rid())
        )
    ).credit_note
    assert voided.state == cn.CREDIT_NOTE_STATE_VOID
    assert voided.number == note.number
    reopened = (await invoicing.call("GetInvoice", pb.GetInvoiceRequest(name=invoice.name))).invoice
    assert reopened.state == res.INVOICE_STATE_ISSUED
    assert reopened.balance_due.amount_minor == 10000
    code, info = await invoicing.fails(
        "VoidCreditNote", pb.VoidCreditNoteRequest(name=note.name, request_id=invoicing.rid())
    )
    assert (code, info.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INVALID_STATE_TRANSITION")
    listed = await invoicing.call(
        "ListCreditNotes", pb.ListCreditNotesRequest(parent=f"{invoicing.parent}/invoices/-")
    )
    assert [n.name for n in listed.credit_notes] == [note.name]


async def test_a_draft_cannot_be_credited(invoicing):
    draft = await invoicing.draft()
    code, info = await invoicing.fails(
        "CreateCreditNote", _credit(invoicing, draft, amount=invoicing.money(1))
    )
    assert (code, info.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INVALID_STATE_TRANSITION")
    assert info.metadata["from_state"] == "DRAFT"
    code, info = await invoicing.fails(
        "GetCreditNote", pb.GetCreditNoteRequest(name=f"{draft.name}/creditNotes/nope")
    )
    assert (code, info.reason) == (grpc.StatusCode.NOT_FOUND, "CREDIT_NOTE_NOT_FOUND")


async def test_documents_render_as_pdf_and_html_through_the_rpcs(invoicing):
    invoice = await _paid_invoice(invoicing)
    rendered = await invoicing.call("RenderInvoice", pb.RenderInvoiceRequest(name=invoice.name))
    assert rendered.body.content_type == "application/pdf"
    assert rendered.body.data.startswith(b"%PDF-")
    assert rendered.file_name == f"{invoice.number}.pdf"
    html = await invoicing.call(
        "RenderInvoice",
        pb.RenderInvoiceRequest(name=invoice.name, format=pb.RENDER_FORMAT_HTML),
    )
    assert html.body.content_type == "text/html; charset=utf-8"
    assert invoice.number in html.body.data.decode()
    note = (
        await invoicing.call(
            "CreateCreditNote", _credit(invoicing, invoice, amount=invoicing.money(500))
        )
    ).credit_note
    rendered_note = await invoicing.call(
        "RenderCreditNote", pb.RenderCreditNoteRequest(name=note.name)
    )
    assert rendered_note.file_name == f"{note.number}.pdf"
    assert rendered_note.body.data.startswith(b"%PDF-")
    code, info = await invoicing.fails(
        "RenderInvoice", pb.RenderInvoiceRequest(name=f"{invoicing.parent}/invoices/missing")
    )
    assert (code, info.reason) == (grpc.StatusCode.NOT_FOUND, "INVOICE_NOT_FOUND")


async def test_bad_requests_name_the_rule_and_the_field(invoicing):
    invoice = await invoicing.issued()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await invoicing.call(
            "CreateCreditNote",
            _credit(
                invoicing,
                invoice,
                amount=invoicing.money(100),
                lines=[cn.CreditNoteLine(invoice_line_id="1", quantity=1)],
            ),
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = invoicing.error_info(caught.value)
    assert info.reason == "VALIDATION_FAILED"
    assert info.metadata["rule"] == "create_credit_note.amount_or_lines"
    status = rpc_status.from_call(caught.value)  # type: ignore[arg-type]
    assert status is not None
    bad_requests = [d for d in status.details if d.Is(error_details_pb2.BadRequest.DESCRIPTOR)]
    assert len(bad_requests) == 1
    code, info = await invoicing.fails(
        "GetTieOutReport",
        pb.GetTieOutReportRequest(
            name=f"{invoicing.parent}/tieOutReport",
            start_time=invoice.issue_time,
            end_time=Timestamp(seconds=invoice.issue_time.seconds + 3600),
            page_token="bm90LWEtdG9rZW4",
        ),
    )
    assert (code, info.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN")
