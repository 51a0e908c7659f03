"""The InvoicingService servicer: proto → command, run the use case, domain → proto."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from google.api.httpbody_pb2 import HttpBody
from google.protobuf.message import Message

from commerce.invoicing.v1 import invoicing_service_pb2 as pb
from commerce.invoicing.v1 import invoicing_service_pb2_grpc as rpc
from services.chassis import context as request_context
from services.invoicing import messages
from services.invoicing.domain import errors, pages, usecases
from services.invoicing.domain.commands import DraftPatch, PaymentSpec
from services.invoicing.domain.filters import parse_filter
from services.invoicing.domain.numbering import DocumentKind, NumberingConfig
from services.invoicing.domain.ports import TransactionRunner, UnitOfWork
from services.invoicing.rendering import Document, render_credit_note, render_invoice
from services.invoicing.tie_out import TieOutService

Context = Any  # grpc.aio.ServicerContext; the interceptor owns status handling
R = TypeVar("R", bound=Message)


def _tenant() -> str:
    tenant = request_context.current().tenant
    if tenant is None:  # the interceptor always derives one from the resource names
        raise LookupError("no tenant for this call")
    return tenant


def _invoice_id(name: str) -> str:
    return name.split("/")[3]


def _credit_note_ids(name: str) -> tuple[str, str]:
    parts = name.split("/")
    return parts[3], parts[5]


def fingerprint(method: str, request: Message) -> bytes:
    """A digest of the request without its request_id (deterministic serialization)."""
    copy = type(request)()
    copy.CopyFrom(request)
    copy.ClearField("request_id")
    return hashlib.sha256(
        method.encode() + b"\0" + copy.SerializeToString(deterministic=True)
    ).digest()


class InvoicingApi(rpc.InvoicingServiceServicer):
    """Every RPC of commerce.invoicing.v1.InvoicingService."""

    def __init__(self, runner: TransactionRunner, tie_out: TieOutService | None = None) -> None:
        self._runner = runner
        self._tie_out = tie_out

    async def _once(
        self, method: str, request: Any, reply: type[R], work: Callable[[UnitOfWork], Awaitable[R]]
    ) -> R:
        """Run `work` once per request_id: a repeat gets the first response back."""
        digest = fingerprint(method, request)

        async def run(uow: UnitOfWork) -> R:
            stored = await uow.idempotency.claim(request.request_id, method, digest)
            if stored is not None:
                if stored.method != method or stored.fingerprint != digest:
                    raise errors.idempotency_key_reused(request.request_id)
                return reply.FromString(stored.response)
            response = await work(uow)
            await uow.idempotency.complete(
                request.request_id, response.SerializeToString(deterministic=True)
            )
            return response

        return await self._runner.run(_tenant(), run)

    # --- invoices -------------------------------------------------------------------------

    async def CreateInvoice(
        self, request: pb.CreateInvoiceRequest, _context: Context
    ) -> pb.CreateInvoiceResponse:
        content = messages.draft_content(request.invoice)

        async def work(uow: UnitOfWork) -> pb.CreateInvoiceResponse:
            invoice = await usecases.create_invoice(uow, request.invoice.currency_code, content)
            return pb.CreateInvoiceResponse(invoice=messages.invoice(invoice))

        return await self._once("CreateInvoice", request, pb.CreateInvoiceResponse, work)

    async def GetInvoice(
        self, request: pb.GetInvoiceRequest, _context: Context
    ) -> pb.GetInvoiceResponse:
        invoice_id = _invoice_id(request.name)
        invoice = await self._runner.run(
            _tenant(), lambda uow: usecases.require_invoice(uow, invoice_id)
        )
        return pb.GetInvoiceResponse(invoice=messages.invoice(invoice))

    async def ListInvoices(
        self, request: pb.ListInvoicesRequest, _context: Context
    ) -> pb.ListInvoicesResponse:
        where = parse_filter(request.filter)
        params = {"m": "ListInvoices", "parent": request.parent, "filter": request.filter}
        after = pages.decode_cursor(request.page_token, params)
        size = pages.page_size(request.page_size)
        found = await self._runner.run(
            _tenant(), lambda uow: uow.invoices.page(where, after, size + 1)
        )
        token = ""
        if len(found) > size:
            last = found[size - 1]
            token = pages.encode_cursor(params, last.create_time, last.invoice_id)
        return pb.ListInvoicesResponse(
            invoices=[messages.invoice(i) for i in found[:size]], next_page_token=token
        )

    async def UpdateInvoice(
        self, request: pb.UpdateInvoiceRequest, _context: Context
    ) -> pb.UpdateInvoiceResponse:
        patch = _draft_patch(request)

        async def work(uow: UnitOfWork) -> pb.UpdateInvoiceResponse:
            invoice = await usecases.update_invoice(
                uow, _invoice_id(request.invoice.name), request.invoice.etag, patch
            )
            return pb.UpdateInvoiceResponse(invoice=messages.invoice(invoice))

        return await self._once("UpdateInvoice", request, pb.UpdateInvoiceResponse, work)

    async def IssueInvoice(
        self, request: pb.IssueInvoiceRequest, _context: Context
    ) -> pb.IssueInvoiceResponse:
        async def work(uow: UnitOfWork) -> pb.IssueInvoiceResponse:
            invoice = await usecases.issue_invoice(uow, _invoice_id(request.name), request.etag)
            return pb.IssueInvoiceResponse(invoice=messages.invoice(invoice))

        return await self._once("IssueInvoice", request, pb.IssueInvoiceResponse, work)

    async def MarkInvoicePaid(
        self, request: pb.MarkInvoicePaidRequest, _context: Context
    ) -> pb.MarkInvoicePaidResponse:
        has_amount = request.HasField("amount")
        spec = PaymentSpec(
            amount=request.amount.amount_minor if has_amount else None,
            currency_code=request.amount.currency_code if has_amount else "",
            payment=request.payment,
            capture_reference=request.capture_reference,
            external_reference=request.external_reference,
            paid_time=messages.when(request.paid_time) if request.HasField("paid_time") else None,
        )

        async def work(uow: UnitOfWork) -> pb.MarkInvoicePaidResponse:
            invoice = await usecases.mark_paid(uow, _invoice_id(request.name), request.etag, spec)
            return pb.MarkInvoicePaidResponse(invoice=messages.invoice(invoice))

        return await self._once("MarkInvoicePaid", request, pb.MarkInvoicePaidResponse, work)

    async def VoidInvoice(
        self, request: pb.VoidInvoiceRequest, _context: Context
    ) -> pb.VoidInvoiceResponse:
        async def work(uow: UnitOfWork) -> pb.VoidInvoiceResponse:
            invoice = await usecases.void_invoice(
                uow, _invoice_id(request.name), request.etag, request.reason
            )
            return pb.VoidInvoiceResponse(invoice=messages.invoice(invoice))

        return await self._once("VoidInvoice", request, pb.VoidInvoiceResponse, work)

    async def MarkInvoiceUncollectible(
        self, request: pb.MarkInvoiceUncollectibleRequest, _context: Context
    ) -> pb.MarkInvoiceUncollectibleResponse:
        async def work(uow: UnitOfWork) -> pb.MarkInvoiceUncollectibleResponse:
            invoice = await usecases.mark_uncollectible(
                uow, _invoice_id(request.name), request.etag, request.reason
            )
            return pb.MarkInvoiceUncollectibleResponse(invoice=messages.invoice(invoice))

        return await self._once(
            "MarkInvoiceUncollectible", request, pb.MarkInvoiceUncollectibleResponse, work
        )

    async def RenderInvoice(
        self, request: pb.RenderInvoiceRequest, _context: Context
    ) -> pb.RenderInvoiceResponse:
        invoice_id = _invoice_id(request.name)
        invoice = await self._runner.run(
            _tenant(), lambda uow: usecases.require_invoice(uow, invoice_id)
        )
        document = render_invoice(invoice, as_html=request.format == pb.RENDER_FORMAT_HTML)
        return pb.RenderInvoiceResponse(body=_body(document), file_name=document.file_name)

    # --- credit notes ---------------------------------------------------------------------

    async def CreateCreditNote(
        self, request: pb.CreateCreditNoteRequest, _context: Context
    ) -> pb.CreateCreditNoteResponse:
        spec = messages.credit_spec(request.credit_note)

        async def work(uow: UnitOfWork) -> pb.CreateCreditNoteResponse:
            note = await usecases.create_credit_note(uow, _invoice_id(request.parent), spec)
            return pb.CreateCreditNoteResponse(credit_note=messages.credit_note(note))

        return await self._once("CreateCreditNote", request, pb.CreateCreditNoteResponse, work)

    async def GetCreditNote(
        self, request: pb.GetCreditNoteRequest, _context: Context
    ) -> pb.GetCreditNoteResponse:
        invoice_id, note_id = _credit_note_ids(request.name)
        note = await self._runner.run(
            _tenant(), lambda uow: usecases.require_credit_note(uow, invoice_id, note_id)
        )
        return pb.GetCreditNoteResponse(credit_note=messages.credit_note(note))

    async def ListCreditNotes(
        self, request: pb.ListCreditNotesRequest, _context: Context
    ) -> pb.ListCreditNotesResponse:
        invoice_id = _invoice_id(request.parent)
        scope = None if invoice_id == "-" else invoice_id
        params = {"m": "ListCreditNotes", "parent": request.parent}
        after = pages.decode_cursor(request.page_token, params)
        size = pages.page_size(request.page_size)

        async def read(uow: UnitOfWork) -> list[Any]:
            if scope is not None:
                await usecases.require_invoice(uow, scope)
            return await uow.credit_notes.page(scope, after, size + 1)

        found = await self._runner.run(_tenant(), read)
        token = ""
        if len(found) > size:
            last = found[size - 1]
            token = pages.encode_cursor(params, last.create_time, last.credit_note_id)
        return pb.ListCreditNotesResponse(
            credit_notes=[messages.credit_note(n) for n in found[:size]], next_page_token=token
        )

    async def VoidCreditNote(
        self, request: pb.VoidCreditNoteRequest, _context: Context
    ) -> pb.VoidCreditNoteResponse:
        invoice_id, note_id = _credit_note_ids(request.name)

        async def work(uow: UnitOfWork) -> pb.VoidCreditNoteResponse:
            note = await usecases.void_credit_note(uow, invoice_id, note_id, request.etag)
            return pb.VoidCreditNoteResponse(credit_note=messages.credit_note(note))

        return await self._once("VoidCreditNote", request, pb.VoidCreditNoteResponse, work)

    async def RenderCreditNote(
        self, request: pb.RenderCreditNoteRequest, _context: Context
    ) -> pb.RenderCreditNoteResponse:
        invoice_id, note_id = _credit_note_ids(request.name)

        async def read(uow: UnitOfWork) -> Document:
            note = await usecases.require_credit_note(uow, invoice_id, note_id)
            invoice = await usecases.require_invoice(uow, invoice_id)
            return render_credit_note(
                note, invoice, as_html=request.format == pb.RENDER_FORMAT_HTML
            )

        document = await self._runner.run(_tenant(), read)
        return pb.RenderCreditNoteResponse(body=_body(document), file_name=document.file_name)

    # --- numbering ------------------------------------------------------------------------

    async def GetNumberingConfig(
        self, _request: pb.GetNumberingConfigRequest, _context: Context
    ) -> pb.GetNumberingConfigResponse:
        tenant = _tenant()
        config = await self._runner.run(tenant, _numbering_view)
        return pb.GetNumberingConfigResponse(numbering_config=config)

    async def UpdateNumberingConfig(
        self, request: pb.UpdateNumberingConfigRequest, _context: Context
    ) -> pb.UpdateNumberingConfigResponse:
        given = request.numbering_config
        paths = {path.split(".", 1)[0] for path in request.update_mask.paths}

        async def work(uow: UnitOfWork) -> pb.UpdateNumberingConfigResponse:
            current = await uow.numbering.get()
            wanted = NumberingConfig(
                invoice_series=messages.series(given.invoice_series)
                if "invoice_series" in paths
                else current.invoice_series,
                credit_note_series=messages.series(given.credit_note_series)
                if "credit_note_series" in paths
                else current.credit_note_series,
                time_zone=(given.time_zone or "UTC") if "time_zone" in paths else current.time_zone,
            )
            if wanted.invoice_series.prefix == wanted.credit_note_series.prefix:
                raise errors.numbering_format_conflict(wanted.invoice_series.prefix)
            await usecases.update_numbering(uow, wanted, given.etag)
            return pb.UpdateNumberingConfigResponse(numbering_config=await _numbering_view(uow))

        return await self._once(
            "UpdateNumberingConfig", request, pb.UpdateNumberingConfigResponse, work
        )

    # --- tie-out --------------------------------------------------------------------------

    async def GetTieOutReport(
        self, request: pb.GetTieOutReportRequest, context: Context
    ) -> pb.GetTieOutReportResponse:
        if self._tie_out is None:
            raise errors.downstream_unavailable("payments")
        # Payments and the ledger are asked with the caller's own credentials.
        metadata = tuple(
            (str(key), str(value))
            for key, value in (context.invocation_metadata() or ())
            if key == "authorization"
        )
        return await self._tie_out.report(_tenant(), request, metadata)


def _body(document: Document) -> HttpBody:
    return HttpBody(content_type=document.content_type, data=document.data)


async def _numbering_view(uow: UnitOfWork) -> Any:
    config = await uow.numbering.get()
    now = uow.now()
    upcoming: dict[str, tuple[int, str]] = {}
    for kind in DocumentKind:
        series = config.series(kind)
        counter = series.counter(now, config.time_zone)
        upcoming[kind.value] = (
            await uow.counters.peek(counter) or max(1, series.start_sequence),
            counter,
        )
    return messages.numbering_config(uow.tenant, config, upcoming)


def _draft_patch(request: pb.UpdateInvoiceRequest) -> DraftPatch:
    given = request.invoice
    paths = {path.split(".", 1)[0] for path in request.update_mask.paths}
    customer_fields = tuple(
        (field, str(getattr(given.customer, field)))
        for path in request.update_mask.paths
        if path.startswith("customer.")
        and (field := path.split(".", 1)[1]) in {"customer_id", "email", "display_name"}
    )
    whole_customer = "customer" in request.update_mask.paths
    return DraftPatch(
        customer=messages.customer(given.customer) if whole_customer else None,
        customer_fields=customer_fields,
        lines=tuple(messages.line_spec(line) for line in given.lines) if "lines" in paths else None,
        billing_address=messages.address(given.billing_address)
        if given.HasField("billing_address")
        else None,
        shipping_address=messages.address(given.shipping_address)
        if given.HasField("shipping_address")
        else None,
        memo=given.memo if "memo" in paths else None,
        due_time=messages.when(given.due_time) if given.HasField("due_time") else None,
        replace_billing_address="billing_address" in paths,
        replace_shipping_address="shipping_address" in paths,
        replace_due_time="due_time" in paths,
    )
