"""Connector for Stripe's PaymentIntents API: form-encoded, `Idempotency-Key` on every write."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

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

SHOULD_RETRY_HEADER = "Stripe-Should-Retry"
REQUEST_ID_METADATA = "commerce_request_id"
_PAGE_LIMIT = 100
_MAX_PAGES = 1000

_STATUS = {
    "requires_capture": PspPaymentStatus.AUTHORIZED,
    "succeeded": PspPaymentStatus.CAPTURED,
    "canceled": PspPaymentStatus.VOIDED,
    "processing": PspPaymentStatus.PROCESSING,
}
_DECLINES = {
    "insufficient_funds": FailureCode.INSUFFICIENT_FUNDS,
    "expired_card": FailureCode.EXPIRED_PAYMENT_METHOD,
    "fraudulent": FailureCode.FRAUD_SUSPECTED,
    "authentication_required": FailureCode.AUTHENTICATION_REQUIRED,
    "invalid_account": FailureCode.INVALID_PAYMENT_METHOD,
}
_LINE_TYPES = {
    "charge": SettlementLineType.CAPTURE,
    "payment": SettlementLineType.CAPTURE,
    "refund": SettlementLineType.REFUND,
    "payment_refund": SettlementLineType.REFUND,
    "stripe_fee": SettlementLineType.FEE,
}


def payment_status(stripe_status: str) -> PspPaymentStatus:
    """A PaymentIntent status, normalized; unconfirmed or action-needing ones are INCOMPLETE."""
    return _STATUS.get(stripe_status, PspPaymentStatus.INCOMPLETE)


class StripeConnector:
    """Talks to `base_url` (https://api.stripe.com, or stripe-mock) with a secret API key."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        api_key: str,
        psp_id: str = "stripe",
        *,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self._client = client
        self._base = base_url.rstrip("/")
        self._auth = {"Authorization": f"Bearer {api_key}"}
        self._psp_id = psp_id
        self._tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)

    @property
    def psp_id(self) -> str:
        return self._psp_id

    async def authorize(self, request: AuthorizeRequest, *, deadline: Deadline) -> PspPayment:
        form = {
            "amount": str(request.amount.amount_minor),
            "currency": request.amount.currency.lower(),
            "payment_method": request.payment_method_token,
            "confirm": "true",
            "capture_method": "automatic" if request.capture else "manual",
            "automatic_payment_methods[enabled]": "true",
            "automatic_payment_methods[allow_redirects]": "never",
            f"metadata[{REQUEST_ID_METADATA}]": request.idempotency_key,
        }
        if request.description:
            form["description"] = request.description
        data = await self._post("/v1/payment_intents", form, request.idempotency_key, deadline)
        return self._payment(data)

    async def capture(
        self,
        psp_reference: str,
        amount: Money,
        *,
        final: bool,
        idempotency_key: str,
        deadline: Deadline,
    ) -> PspPayment:
        form = {"amount_to_capture": str(amount.amount_minor)}
        if not final:
            form["final_capture"] = "false"  # needs multicapture on the Stripe account
        route = "/v1/payment_intents/{id}/capture"
        return self._payment(
            await self._post(route, form, idempotency_key, deadline, reference=psp_reference)
        )

    async def void(
        self, psp_reference: str, *, idempotency_key: str, deadline: Deadline
    ) -> PspPayment:
        route = "/v1/payment_intents/{id}/cancel"
        return self._payment(
            await self._post(route, {}, idempotency_key, deadline, reference=psp_reference)
        )

    async def refund(
        self, psp_reference: str, amount: Money, *, idempotency_key: str, deadline: Deadline
    ) -> PspRefund:
        form = {"payment_intent": psp_reference, "amount": str(amount.amount_minor)}
        data = await self._post("/v1/refunds", form, idempotency_key, deadline)
        status = {"succeeded": PspRefundStatus.SUCCEEDED, "failed": PspRefundStatus.FAILED}
        return PspRefund(
            psp=self._psp_id,
            psp_reference=str(data["id"]),
            payment_reference=str(data.get("payment_intent") or psp_reference),
            status=status.get(str(data.get("status")), PspRefundStatus.PENDING),
            amount=Money(int(data["amount"]), str(data["currency"]).upper()),
        )

    async def retrieve(self, psp_reference: str, *, deadline: Deadline) -> PspPayment:
        return self._payment(
            await self._get("/v1/payment_intents/{id}", {}, deadline, reference=psp_reference)
        )

    async def find_authorization(
        self, idempotency_key: str, *, deadline: Deadline
    ) -> PspPayment | None:
        query = f"metadata['{REQUEST_ID_METADATA}']:'{idempotency_key}'"
        data = await self._get("/v1/payment_intents/search", {"query": query}, deadline)
        found = data.get("data") or []
        return self._payment(found[0]) if found else None

    async def settlement_report(
        self, start: date, end: date, *, deadline: Deadline
    ) -> list[SettlementLine]:
        """Balance transactions created in [start, end] (UTC days), every page."""
        params = {
            "created[gte]": str(int(datetime.combine(start, time(), UTC).timestamp())),
            "created[lt]": str(int(datetime.combine(end + timedelta(1), time(), UTC).timestamp())),
            "limit": str(_PAGE_LIMIT),
        }
        lines: list[SettlementLine] = []
        for _ in range(_MAX_PAGES):
            page = await self._get("/v1/balance_transactions", params, deadline)
            items = [item for item in page.get("data") or [] if isinstance(item, dict)]
            lines += [self._line(item) for item in items]
            if not page.get("has_more") or not items:
                break
            params["starting_after"] = str(items[-1]["id"])
        return lines

    # -- plumbing -------------------------------------------------------------------------

    def _path(self, route: str, reference: str | None) -> str:
        if reference is None:
            return route
        return route.replace("{id}", path_segment(self._psp_id, reference))

    async def _post(
        self,
        route: str,
        form: dict[str, str],
        key: str,
        deadline: Deadline,
        *,
        reference: str | None = None,
    ) -> dict[str, Any]:
        response = await send(
            self._client,
            self._psp_id,
            "POST",
            self._base + self._path(route, reference),
            route=route,
            tracer=self._tracer,
            deadline=deadline,
            idempotency_key=key,
            read_error=self._failure,
            should_retry_header=SHOULD_RETRY_HEADER,
            # Stripe wants the form content type even on an empty body (e.g. cancel).
            headers={**self._auth, "Content-Type": "application/x-www-form-urlencoded"},
            content=urlencode(form),
        )
        return json_object(response)

    async def _get(
        self,
        route: str,
        params: dict[str, str],
        deadline: Deadline,
        *,
        reference: str | None = None,
    ) -> dict[str, Any]:
        response = await send(
            self._client,
            self._psp_id,
            "GET",
            self._base + self._path(route, reference),
            route=route,
            tracer=self._tracer,
            deadline=deadline,
            read_error=self._failure,
            should_retry_header=SHOULD_RETRY_HEADER,
            headers=self._auth,
            params=params,
        )
        return json_object(response)

    def _payment(self, data: dict[str, Any]) -> PspPayment:
        currency = str(data["currency"]).upper()
        return PspPayment(
            psp=self._psp_id,
            psp_reference=str(data["id"]),
            status=payment_status(str(data.get("status"))),
            amount=Money(int(data["amount"]), currency),
            amount_captured=Money(int(data.get("amount_received") or 0), currency),
            amount_refunded=Money.zero(currency),
        )

    def _line(self, item: dict[str, Any]) -> SettlementLine:
        source = item.get("source")
        created = datetime.fromtimestamp(int(item.get("created") or 0), UTC).date()
        return SettlementLine(
            line_id=str(item["id"]),
            settlement_date=created,
            type=_LINE_TYPES.get(str(item.get("type")), SettlementLineType.OTHER),
            psp_reference=str(source.get("id") if isinstance(source, dict) else source or ""),
            payment_reference="",
            currency=str(item.get("currency", "")).upper(),
            gross_minor=int(item.get("amount") or 0),
            fee_minor=int(item.get("fee") or 0),
            net_minor=int(item.get("net") or 0),
        )

    def _failure(self, response: httpx.Response, kind: FailureKind) -> PspFailure:
        error = json_object(response).get("error")
        error = error if isinstance(error, dict) else {}
        psp_code = str(error.get("decline_code") or error.get("code") or error.get("type") or "")
        intent = error.get("payment_intent")
        reference = str(intent.get("id", "")) if isinstance(intent, dict) else ""
        return http_failure(
            response,
            kind,
            psp_id=self._psp_id,
            psp_code=psp_code,
            reference=reference,
            declines=_DECLINES,
        )
