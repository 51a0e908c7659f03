"""Manual invoices through the RPCs: draft → issued (numbered, frozen) → paid / void /
uncollectible, illegal transitions refused with their reason, idempotent writes."""

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from commerce.invoicing.v1 import invoicing_service_pb2 as pb
from commerce.invoicing.v1 import resources_pb2 as res
from commerce.type.v1.ids_pb2 import CustomerRef

pytestmark = pytest.mark.integration


async def test_a_draft_has_computed_amounts_and_no_number(invoicing):
    draft = await invoicing.draft(
        invoicing.line("Widget", 3, 1999, invoicing.vat()),
        invoicing.line(
            "Manual", 1, 5000, invoicing.vat(70000), discount_amount=invoicing.money(500)
        ),
    )
    assert draft.state == res.INVOICE_STATE_DRAFT
    assert draft.number == ""
    assert [x.line_id for x in draft.lines] == ["1", "2"]
    # 5997 net at 19% = 1139.43 -> 1139; 4500 at 7% = 315
    assert draft.subtotal.amount_minor == 5997 + 5000
    assert draft.discount_total.amount_minor == 500
    assert draft.tax_total.amount_minor == 1139 + 315
    assert draft.total.amount_minor == 5997 + 4500 + 1139 + 315
    assert [(t.rate_ppm, t.tax_amount.amount_minor) for t in draft.tax_breakdown] == [
        (190000, 1139),
        (70000, 315),
    ]
    assert draft.balance_due.amount_minor == 0


async def test_issuing_numbers_the_invoice_and_freezes_it(invoicing):
    first = await invoicing.issued()
    second = await invoicing.issued()
    assert first.state == res.INVOICE_STATE_ISSUED
    assert first.sequence == 1
    assert second.sequence == 2
    year = first.issue_time.ToDatetime().year
    assert first.number == f"INV-{year}-000001"
    assert first.series == f"INV/{year}"
    assert first.balance_due.amount_minor == first.total.amount_minor
    code, info = await invoicing.fails(
        "UpdateInvoice",
        pb.UpdateInvoiceRequest(
            invoice=res.Invoice(name=first.name, etag=first.etag, memo="changed"),
            update_mask=FieldMask(paths=["memo"]),
            request_id=invoicing.rid(),
        ),
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert info.reason == "INVOICE_NOT_DRAFT"
    assert info.metadata["state"] == "ISSUED"


async def test_a_partial_then_full_payment_makes_the_invoice_paid(invoicing):
    invoice = await invoicing.issued()
    total = invoice.total.amount_minor
    partial = await invoicing.call(
        "MarkInvoicePaid",
        pb.MarkInvoicePaidRequest(
            name=invoice.name,
            amount=invoicing.money(1000),
            external_reference="bank-1",
            request_id=invoicing.rid(),
        ),
    )
    assert partial.invoice.state == res.INVOICE_STATE_ISSUED
    assert partial.invoice.balance_due.amount_minor == total - 1000
    code, info = await invoicing.fails(
        "MarkInvoicePaid",
        pb.MarkInvoicePaidRequest(
            name=invoice.name,
            amount=invoicing.money(total),
            external_reference="bank-2",
            request_id=invoicing.rid(),
        ),
    )
    assert (code, info.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "PAYMENT_EXCEEDS_BALANCE")
    paid = await invoicing.call(
        "MarkInvoicePaid",
        pb.MarkInvoicePaidRequest(
            name=invoice.name, payment=f"{invoicing.parent}/payments/p1", request_id=invoicing.rid()
        ),
    )
    assert paid.invoice.state == res.INVOICE_STATE_PAID
    assert paid.invoice.balance_due.amount_minor == 0
    assert paid.invoice.amount_paid.amount_minor == total
    code, info = await invoicing.fails(
        "VoidInvoice", pb.VoidInvoiceRequest(name=invoice.name, request_id=invoicing.rid())
    )
    assert (code, info.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INVALID_STATE_TRANSITION")
    assert (info.metadata["from_state"], info.metadata["to_state"]) == ("PAID", "VOID")


async def test_a_payment_is_recorded_on_one_invoice_only(invoicing):
    first, second = await invoicing.issued(), await invoicing.issued()
    payment = f"{invoicing.parent}/payments/shared"
    await invoicing.call(
        "MarkInvoicePaid",
        pb.MarkInvoicePaidRequest(name=first.name, payment=payment, request_id=invoicing.rid()),
    )
    code, info = await invoicing.fails(
        "MarkInvoicePaid",
        pb.MarkInvoicePaidRequest(name=second.name, payment=payment, request_id=invoicing.rid()),
    )
    assert (code, info.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "PAYMENT_ALREADY_INVOICED")
    assert info.metadata["invoice"] == first.name


async def test_a_voided_invoice_keeps_its_number_and_the_next_one_is_not_reused(invoicing):
    first = await invoicing.issued()
    voided = await invoicing.call(
        "VoidInvoice",
        pb.VoidInvoiceRequest(name=first.name, reason="typo", request_id=invoicing.rid()),
    )
    assert voided.invoice.state == res.INVOICE_STATE_VOID
    assert voided.invoice.number == first.number
    assert voided.invoice.state_reason == "typo"
    assert voided.invoice.balance_due.amount_minor == 0
    second = await invoicing.issued()
    assert second.sequence == first.sequence + 1


async def test_uncollectible_then_paid_and_illegal_moves_are_refused(invoicing):
    invoice = await invoicing.issued()
    draft = await invoicing.draft()
    code, info = await invoicing.fails(
        "MarkInvoiceUncollectible",
        pb.MarkInvoiceUncollectibleRequest(name=draft.name, request_id=invoicing.rid()),
    )
    assert (code, info.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INVALID_STATE_TRANSITION")
    assert info.metadata["from_state"] == "DRAFT"
    written_off = await invoicing.call(
        "MarkInvoiceUncollectible",
        pb.MarkInvoiceUncollectibleRequest(
            name=invoice.name, reason="customer gone", request_id=invoicing.rid()
        ),
    )
    assert written_off.invoice.state == res.INVOICE_STATE_UNCOLLECTIBLE
    paid = await invoicing.call(
        "MarkInvoicePaid",
        pb.MarkInvoicePaidRequest(
            name=invoice.name, external_reference="collections", request_id=invoicing.rid()
        ),
    )
    assert paid.invoice.state == res.INVOICE_STATE_PAID


async def test_issuing_an_empty_draft_or_twice_is_refused(invoicing):
    draft = await invoicing.draft()
    emptied = await invoicing.call(
        "UpdateInvoice",
        pb.UpdateInvoiceRequest(
            invoice=res.Invoice(name=draft.name, etag=draft.etag),
            update_mask=FieldMask(paths=["lines"]),
            request_id=invoicing.rid(),
        ),
    )
    assert list(emptied.invoice.lines) == []
    code, info = await invoicing.fails(
        "IssueInvoice", pb.IssueInvoiceRequest(name=draft.name, request_id=invoicing.rid())
    )
    assert (code, info.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INVOICE_EMPTY")
    issued = await invoicing.issued()
    code, info = await invoicing.fails(
        "IssueInvoice", pb.IssueInvoiceRequest(name=issued.name, request_id=invoicing.rid())
    )
    assert (code, info.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INVOICE_NOT_DRAFT")


async def test_a_stale_etag_is_aborted_with_the_current_one(invoicing):
    draft = await invoicing.draft()
    updated = await invoicing.call(
        "UpdateInvoice",
        pb.UpdateInvoiceRequest(
            invoice=res.Invoice(name=draft.name, etag=draft.etag, memo="Net 30"),
            update_mask=FieldMask(paths=["memo"]),
            request_id=invoicing.rid(),
        ),
    )
    assert updated.invoice.memo == "Net 30"
    code, info = await invoicing.fails(
        "IssueInvoice",
        pb.IssueInvoiceRequest(name=draft.name, etag=draft.etag, request_id=invoicing.rid()),
    )
    assert (code, info.reason) == (grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
    assert info.metadata["etag"] == updated.invoice.etag


async def test_lines_in_another_currency_are_refused(invoicing):
    code, info = await invoicing.fails(
        "CreateInvoice",
        pb.CreateInvoiceRequest(
            parent=invoicing.parent,
            invoice=res.Invoice(
                customer=CustomerRef(customer_id="c"),
                currency_code="EUR",
                lines=[
                    res.InvoiceLine(
                        description="x", quantity=1, unit_price=invoicing.money(1, "USD")
                    )
                ],
            ),
            request_id=invoicing.rid(),
        ),
    )
    assert (code, info.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "VALIDATION_FAILED")
    assert info.metadata["rule"] == "invoice.lines_currency"
    # A partial update carries no currency_code: the server checks the lines itself.
    draft = await invoicing.draft()
    code, info = await invoicing.fails(
        "UpdateInvoice",
        pb.UpdateInvoiceRequest(
            invoice=res.Invoice(
                name=draft.name,
                etag=draft.etag,
                lines=[
                    res.InvoiceLine(
                        description="x", quantity=1, unit_price=invoicing.money(1, "USD")
                    )
                ],
            ),
            update_mask=FieldMask(paths=["lines"]),
            request_id=invoicing.rid(),
        ),
    )
    assert (code, info.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "CURRENCY_MISMATCH")
    assert (info.metadata["expected"], info.metadata["got"]) == ("EUR", "USD")


async def test_a_repeated_request_id_replays_and_a_reused_one_is_refused(invoicing):
    request = pb.CreateInvoiceRequest(
        parent=invoicing.parent,
        invoice=res.Invoice(
            customer=CustomerRef(customer_id="c"),
            currency_code="EUR",
            lines=[invoicing.line("Widget", 1, 100)],
        ),
        request_id=invoicing.rid(),
    )
    first = await invoicing.call("CreateInvoice", request)
    again = await invoicing.call("CreateInvoice", request)
    assert again.invoice == first.invoice
    request.invoice.memo = "different"
    code, info = await invoicing.fails("CreateInvoice", request)
    assert (code, info.reason) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")


async def test_another_tenants_invoice_is_not_found(invoicing, client_for):
    invoice = await invoicing.issued()
    other = client_for("tother-tenant")
    foreign = invoice.name.replace(invoicing.tenant, other.tenant)
    code, info = await other.fails("GetInvoice", pb.GetInvoiceRequest(name=foreign))
    assert (code, info.reason) == (grpc.StatusCode.NOT_FOUND, "INVOICE_NOT_FOUND")


async def test_listing_filters_and_pages_newest_first(invoicing):
    issued = [await invoicing.issued() for _ in range(3)]
    await invoicing.draft()
    page = await invoicing.call(
        "ListInvoices",
        pb.ListInvoicesRequest(
            parent=invoicing.parent, filter="state = INVOICE_STATE_ISSUED", page_size=2
        ),
    )
    assert [i.name for i in page.invoices] == [issued[2].name, issued[1].name]
    rest = await invoicing.call(
        "ListInvoices",
        pb.ListInvoicesRequest(
            parent=invoicing.parent,
            filter="state = INVOICE_STATE_ISSUED",
            page_size=2,
            page_token=page.next_page_token,
        ),
    )
    assert [i.name for i in rest.invoices] == [issued[0].name]
    assert rest.next_page_token == ""
    by_number = await invoicing.call(
        "ListInvoices",
        pb.ListInvoicesRequest(parent=invoicing.parent, filter=f'number = "{issued[1].number}"'),
    )
    assert [i.name for i in by_number.invoices] == [issued[1].name]
    code, info = await invoicing.fails(
        "ListInvoices",
        pb.ListInvoicesRequest(parent=invoicing.parent, filter="state = INVOICE_STATE_BOGUS"),
    )
    assert (code, info.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FILTER")
    code, info = await invoicing.fails(
        "ListInvoices",
        pb.ListInvoicesRequest(parent=invoicing.parent, page_token=page.next_page_token),
    )
    assert (code, info.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN")


async def test_a_customer_sub_field_update_keeps_the_other_fields(invoicing):
    draft = await invoicing.draft()
    updated = await invoicing.call(
        "UpdateInvoice",
        pb.UpdateInvoiceRequest(
            invoice=res.Invoice(
                name=draft.name,
                etag=draft.etag,
                # Only the masked sub-field is taken; the rest of the message is ignored.
                customer=CustomerRef(customer_id="not-taken", email="ada@example.com"),
            ),
            update_mask=FieldMask(paths=["customer.email"]),
            request_id=invoicing.rid(),
        ),
    )
    customer = updated.invoice.customer
    assert (customer.customer_id, customer.display_name, customer.email) == (
        "cust-1",
        "Ada Lovelace",
        "ada@example.com",
    )
