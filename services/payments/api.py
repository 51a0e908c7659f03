"""The PaymentsService servicer: proto -> command, run the use case, domain -> proto."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import grpc

from commerce.payments.v1 import payments_service_pb2 as pb
from commerce.payments.v1 import payments_service_pb2_grpc as rpc
from services.chassis import context as request_context
from services.chassis import pages
from services.payments import messages
from services.payments.domain import errors
from services.payments.reconciliation.service import ReconciliationService
from services.payments.service import AuthorizeCommand, PaymentsService
from services.payments.storage.payments import PageFilter
from services.payments.storage.unit_of_work import TransactionRunner

Context = Any  # grpc.aio.ServicerContext; the interceptor owns status handling

RECONCILIATION_NOT_CONFIGURED = "reconciliation is not configured in this payments process"


def _tenant() -> str:
    tenant = request_context.current().tenant
    if tenant is None:  # the interceptor derives one from the resource names
        raise LookupError("no tenant for this call")
    return tenant


def _payment_id(name: str) -> str:
    # The validator has checked `tenants/{tenant}/payments/{payment}[/...]`.
    return name.split("/")[3]


class PaymentsApi(rpc.PaymentsServiceServicer):
    """Every RPC of commerce.payments.v1.PaymentsService."""

    def __init__(
        self,
        service: PaymentsService,
        runner: TransactionRunner,
        reconciliation: ReconciliationService | None = None,
    ) -> None:
        self._service = service
        self._runner = runner
        self._recon = reconciliation

    # -- payments --------------------------------------------------------------------------

    async def AuthorizePayment(
        self, request: pb.AuthorizePaymentRequest, _context: Context
    ) -> pb.AuthorizePaymentResponse:
        command = AuthorizeCommand(
            request_id=request.request_id,
            payment_id=request.payment_id,
            order=request.order,
            customer=messages.customer(request.customer) if request.HasField("customer") else None,
            amount=messages.money_in(request.amount),
            method=messages.payment_method(request.payment_method),
            capture_method=messages.capture_method(request.capture_method),
            hints=messages.hints(request.routing_hints),
            description=request.description,
            metadata=dict(request.metadata),
        )
        return await self._service.authorize(_tenant(), command, request)

    async def CapturePayment(
        self, request: pb.CapturePaymentRequest, _context: Context
    ) -> pb.CapturePaymentResponse:
        amount = messages.money_in(request.amount) if request.HasField("amount") else None
        return await self._service.capture(
            _tenant(), _payment_id(request.name), amount, request, final=request.final_capture
        )

    async def VoidPayment(
        self, request: pb.VoidPaymentRequest, _context: Context
    ) -> pb.VoidPaymentResponse:
        return await self._service.void(
            _tenant(), _payment_id(request.name), request.reason, request
        )

    async def RefundPayment(
        self, request: pb.RefundPaymentRequest, _context: Context
    ) -> pb.RefundPaymentResponse:
        amount = messages.money_in(request.amount) if request.HasField("amount") else None
        return await self._service.refund(
            _tenant(),
            _payment_id(request.name),
            request,
            refund_id=request.refund_id,
            amount=amount,
            reason=messages.refund_reason(request.reason),
            description=request.description,
        )

    async def GetPayment(
        self, request: pb.GetPaymentRequest, _context: Context
    ) -> pb.GetPaymentResponse:
        payment_id = _payment_id(request.name)
        record = await self._runner.run(_tenant(), lambda uow: uow.payments.get(payment_id))
        if record is None:
            raise errors.payment_not_found(request.name)
        return pb.GetPaymentResponse(payment=messages.payment(record))

    async def ListPayments(
        self, request: pb.ListPaymentsRequest, _context: Context
    ) -> pb.ListPaymentsResponse:
        params = {
            "m": "ListPayments",
            "parent": request.parent,
            "order": request.order,
            "state": request.state,
            "unknown": request.outcome_unknown_only,
        }
        cursor = pages.decode(request.page_token, params)
        after: tuple[datetime, str] | None = None
        if cursor is not None:
            try:
                after = (datetime.fromisoformat(str(cursor["t"])), str(cursor["id"]))
            except (KeyError, ValueError):
                raise errors.invalid_page_token() from None
        size = pages.page_size(request.page_size)
        where = PageFilter(
            order=request.order or None,
            state=messages.payment_state(request.state),
            outcome_unknown_only=request.outcome_unknown_only,
        )
        found = await self._runner.run(
            _tenant(), lambda uow: uow.payments.page(where, after, size + 1)
        )
        token = ""
        if len(found) > size:
            last = found[size - 1].payment
            token = pages.encode(params, {"t": last.create_time.isoformat(), "id": last.payment_id})
        return pb.ListPaymentsResponse(
            payments=[messages.payment(r) for r in found[:size]], next_page_token=token
        )

    # -- refunds ---------------------------------------------------------------------------

    async def GetRefund(
        self, request: pb.GetRefundRequest, _context: Context
    ) -> pb.GetRefundResponse:
        parts = request.name.split("/")
        payment_id, refund_id = parts[3], parts[5]
        record = await self._runner.run(_tenant(), lambda uow: uow.payments.get(payment_id))
        if record is None or refund_id not in record.payment.refunds:
            raise errors.refund_not_found(refund_id)
        return pb.GetRefundResponse(
            refund=messages.refund(record, record.payment.refunds[refund_id])
        )

    async def ListRefunds(
        self, request: pb.ListRefundsRequest, _context: Context
    ) -> pb.ListRefundsResponse:
        record = await self._runner.run(
            _tenant(), lambda uow: uow.payments.get(_payment_id(request.parent))
        )
        if record is None:
            raise errors.payment_not_found(request.parent)
        params = {"m": "ListRefunds", "parent": request.parent}
        cursor = pages.decode(request.page_token, params)
        skip = 0
        if cursor is not None:
            offset = cursor.get("n")
            if not isinstance(offset, int) or offset < 0:
                raise errors.invalid_page_token()
            skip = offset
        size = pages.page_size(request.page_size)
        refunds = list(record.payment.refunds.values())  # oldest first, as loaded
        page = refunds[skip : skip + size]
        token = pages.encode(params, {"n": skip + size}) if len(refunds) > skip + size else ""
        return pb.ListRefundsResponse(
            refunds=[messages.refund(record, r) for r in page], next_page_token=token
        )

    # -- routing ---------------------------------------------------------------------------

    async def GetRoutingConfig(
        self, _request: pb.GetRoutingConfigRequest, _context: Context
    ) -> pb.GetRoutingConfigResponse:
        tenant = _tenant()
        stored = await self._service.routing(tenant)
        return pb.GetRoutingConfigResponse(
            routing_config=messages.routing_config(
                tenant, stored.config, stored.descriptions, stored.version, stored.update_time
            )
        )

    async def UpdateRoutingConfig(
        self, request: pb.UpdateRoutingConfigRequest, _context: Context
    ) -> pb.UpdateRoutingConfigResponse:
        tenant = _tenant()
        given, descriptions = messages.routing_config_in(request.routing_config)
        paths = set(request.update_mask.paths) if request.HasField("update_mask") else set()
        if paths and paths != {"rules", "default_psps"}:
            stored = await self._service.routing(tenant)
            rules = given.rules if "rules" in paths else stored.config.rules
            defaults = given.default_psps if "default_psps" in paths else stored.config.default_psps
            if "rules" not in paths:
                descriptions = stored.descriptions
            given = type(given)(rules, defaults)
        version = messages.etag_version(request.routing_config.etag)
        return await self._service.update_routing(tenant, given, descriptions, version, request)

    # -- webhooks --------------------------------------------------------------------------

    async def HandlePspWebhook(
        self, request: pb.HandlePspWebhookRequest, _context: Context
    ) -> pb.HandlePspWebhookResponse:
        return await self._service.handle_webhook_request(request)

    # -- reconciliation (services/payments/reconciliation, ADR 0013) -----------------------

    async def _reconciliation(self, context: Context) -> ReconciliationService:
        if self._recon is None:  # a server wired without it (tests of other RPCs)
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, RECONCILIATION_NOT_CONFIGURED)
            raise AssertionError("unreachable: abort raises")
        return self._recon

    async def RunReconciliation(
        self, request: pb.RunReconciliationRequest, context: Context
    ) -> pb.RunReconciliationResponse:
        recon = await self._reconciliation(context)
        return await recon.run(_tenant(), request)

    async def GetReconciliationReport(
        self, request: pb.GetReconciliationReportRequest, context: Context
    ) -> pb.GetReconciliationReportResponse:
        recon = await self._reconciliation(context)
        return await recon.get(_tenant(), request.name, request.view)

    async def ListReconciliationReports(
        self, request: pb.ListReconciliationReportsRequest, context: Context
    ) -> pb.ListReconciliationReportsResponse:
        recon = await self._reconciliation(context)
        return await recon.list(_tenant(), request)
