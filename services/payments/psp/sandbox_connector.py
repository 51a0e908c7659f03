"""Connector for the project's own PSP sandbox protocol (JSON, see services.payments.sandbox)."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

import httpx
from opentelemetry import trace

from clients.deadline import Deadline
from services.payments.domain.attempts import FailureCode
from services.payments.domain.money import Money
from services.payments.psp.http import TRACER_NAME, http_failure, json_object, path_segment, send
from services.payments.psp.model import (
    AuthorizeRequest,
    FailureKind,
    PspFailure,
    PspPayment,
    PspPaymentStatus,
    PspRefund,
    PspRefundStatus,
    SettlementLine,
    SettlementLineType,
)

_STATUS = {
    "authorized": PspPaymentStatus.AUTHORIZED,
    "partially_captured": PspPaymentStatus.PARTIALLY_CAPTURED,
    "captured": PspPaymentStatus.CAPTURED,
    "voided": PspPaymentStatus.VOIDED,
    "declined": PspPaymentStatus.DECLINED,
}
_DECLINE_CODES = {
    "insufficient_funds": FailureCode.INSUFFICIENT_FUNDS,
    "do_not_honor": FailureCode.DECLINED,
}
_LINE_TYPES = {"capture": SettlementLineType.CAPTURE, "refund": SettlementLineType.REFUND}


class SandboxConnector:
    """Talks to a running sandbox at `base_url` through a shared httpx client."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        psp_id: str = "sandbox",
        *,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self._client = client
        self._base = base_url.rstrip("/")
        self._psp_id = psp_id
        self._tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)

    @property
    def psp_id(self) -> str:
        return self._psp_id

    async def authorize(self, request: AuthorizeRequest, *, deadline: Deadline) -> PspPayment:
        body = {
            "amount_minor": request.amount.amount_minor,
            "currency": request.amount.currency,
            "payment_method": request.payment_method_token,
            "capture": request.capture,
            "description": request.description,
        }
        response = await self._post(
            "/v1/authorizations", body, request.idempotency_key, deadline=deadline
        )
        return self._payment(json_object(response))

    async def capture(
        self,
        psp_reference: str,
        amount: Money,
        *,
        final: bool,
        idempotency_key: str,
        deadline: Deadline,
    ) -> PspPayment:
        body = {"amount_minor": amount.amount_minor, "final": final}
        response = await self._post(
            "/v1/authorizations/{id}/captures",
            body,
            idempotency_key,
            deadline=deadline,
            reference=psp_reference,
        )
        return self._payment(json_object(response))

    async def void(
        self, psp_reference: str, *, idempotency_key: str, deadline: Deadline
    ) -> PspPayment:
        response = await self._post(
            "/v1/authorizations/{id}/void",
            {},
            idempotency_key,
            deadline=deadline,
            reference=psp_reference,
        )
        return self._payment(json_object(response))

    async def refund(
        self, psp_reference: str, amount: Money, *, idempotency_key: str, deadline: Deadline
    ) -> PspRefund:
        body = {"amount_minor": amount.amount_minor}
        response = await self._post(
            "/v1/authorizations/{id}/refunds",
            body,
            idempotency_key,
            deadline=deadline,
            reference=psp_reference,
        )
        data = json_object(response)
        return PspRefund(
            psp=self._psp_id,
            psp_reference=str(data["id"]),
            payment_reference=str(data["authorization"]),
            status=PspRefundStatus.SUCCEEDED
            if data.get("status") == "succeeded"
            else PspRefundStatus.PENDING,
            amount=Money(int(data["amount_minor"]), str(data["currency"])),
        )

    async def retrieve(self, psp_reference: str, *, deadline: Deadline) -> PspPayment:
        response = await self._get("/v1/authorizations/{id}", {}, deadline, reference=psp_reference)
        return self._payment(json_object(response))

    async def find_authorization(
        self, idempotency_key: str, *, deadline: Deadline
    ) -> PspPayment | None:
        response = await self._get(
            "/v1/authorizations", {"idempotency_key": idempotency_key}, deadline
        )
        found = json_object(response).get("data") or []
        return self._payment(found[0]) if found else None

    async def settlement_report(
        self, start: date, end: date, *, deadline: Deadline
    ) -> list[SettlementLine]:
        params = {"from": start.isoformat(), "to": end.isoformat()}
        response = await self._get("/v1/settlements", params, deadline)
        return [
            SettlementLine(
                line_id=row["line_id"],
                settlement_date=date.fromisoformat(row["settlement_date"]),
                type=_LINE_TYPES.get(row["type"], SettlementLineType.OTHER),
                psp_reference=row["reference"],
                payment_reference=row["authorization"],
                currency=row["currency"],
                gross_minor=int(row["gross_minor"]),
                fee_minor=int(row["fee_minor"]),
                net_minor=int(row["net_minor"]),
            )
            for row in csv.DictReader(io.StringIO(response.text))
        ]

    # -- plumbing -------------------------------------------------------------------------

    def _path(self, route: str, reference: str | None) -> str:
        if reference is None:
            return route
        return route.replace("{id}", path_segment(self._psp_id, reference))

    async def _post(
        self,
        route: str,
        body: dict[str, Any],
        key: str,
        *,
        deadline: Deadline,
        reference: str | None = None,
    ) -> httpx.Response:
        return await send(
            self._client,
            self._psp_id,
            "POST",
            self._base + self._path(route, reference),
            route=route,
            tracer=self._tracer,
            deadline=deadline,
            idempotency_key=key,
            read_error=self._failure,
            json=body,
        )

    async def _get(
        self,
        route: str,
        params: dict[str, str],
        deadline: Deadline,
        *,
        reference: str | None = None,
    ) -> httpx.Response:
        return await send(
            self._client,
            self._psp_id,
            "GET",
            self._base + self._path(route, reference),
            route=route,
            tracer=self._tracer,
            deadline=deadline,
            read_error=self._failure,
            params=params,
        )

    def _payment(self, data: dict[str, Any]) -> PspPayment:
        currency = str(data["currency"])
        return PspPayment(
            psp=self._psp_id,
            psp_reference=str(data["id"]),
            status=_STATUS.get(str(data.get("status")), PspPaymentStatus.PROCESSING),
            amount=Money(int(data["amount_minor"]), currency),
            amount_captured=Money(int(data.get("amount_captured_minor", 0)), currency),
            amount_refunded=Money(int(data.get("amount_refunded_minor", 0)), currency),
        )

    def _failure(self, response: httpx.Response, kind: FailureKind) -> PspFailure:
        body = json_object(response)
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        assert isinstance(error, dict)
        psp_code = str(error.get("code", ""))
        authorization = body.get("authorization")
        reference = str(authorization.get("id", "")) if isinstance(authorization, dict) else ""
        return http_failure(
            response,
            kind,
            psp_id=self._psp_id,
            psp_code=psp_code,
            reference=reference,
            declines=_DECLINE_CODES,
        )
