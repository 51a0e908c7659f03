"""The saga's payments port over the real payments service (clients.services.PaymentsClient).

Every call carries the step's deterministic request id; the client retries UNAVAILABLE within
the call's deadline. What is left is mapped onto the saga's three outcomes: SUCCEEDED,
DECLINED (a permanent answer) and RETRY (nothing known to have happened yet, or an outcome
payments is still resolving: then the payment's current state is read, since a replayed
request id answers with the first, unresolved, response).
"""

from __future__ import annotations

import logging

from clients import errors as client_errors
from clients.deadline import Deadline
from clients.services import PaymentsClient
from commerce.payments.v1 import payments_service_pb2 as ppb
from commerce.payments.v1 import resources_pb2 as pres
from commerce.type.v1.ids_pb2 import CustomerRef
from commerce.type.v1.money_pb2 import Money
from services.checkout.domain.ports import Authorization, Outcome, PaymentResult

log = logging.getLogger(__name__)

_S = pres.PaymentState
# Errors that say "not now", never "no": the step is retried with the same request id.
_RETRYABLE = (
    client_errors.Unavailable,
    client_errors.DeadlineExceeded,
    client_errors.ResourceExhausted,
    client_errors.Aborted,
    client_errors.Cancelled,
    client_errors.Internal,
    client_errors.Unknown,
)


def _retry(reason: str, message: str) -> PaymentResult:
    return PaymentResult(Outcome.RETRY, reason=reason, message=message)


def _from_error(error: client_errors.CommerceError) -> PaymentResult:
    reason = error.reason or error.code.name
    if isinstance(error, _RETRYABLE) or reason == "PAYMENT_OUTCOME_UNKNOWN":
        return _retry(reason, error.message)
    return PaymentResult(Outcome.DECLINED, reason=reason, message=error.message)


def _decline_code(payment: pres.Payment) -> str:
    failure = payment.failure
    if failure.psp_code:
        return failure.psp_code
    name = pres.PaymentFailureCode.Name(failure.code)
    return name.removeprefix("PAYMENT_FAILURE_CODE_").lower()


class PaymentsAdapter:
    """`PaymentsPort` through the generated-client wrapper."""

    def __init__(self, client: PaymentsClient, *, timeout: float = 10.0) -> None:
        self._client = client
        self._timeout = timeout

    def _deadline(self, budget: float | None) -> Deadline:
        """One deadline for everything a saga call sends: the adapter's timeout, or what is
        left of the caller's budget when that is sooner."""
        return Deadline.after(self._timeout if budget is None else min(self._timeout, budget))

    async def _payment(self, name: str, bound: Deadline) -> pres.Payment:
        reply = await self._client.call(
            self._client.stub.GetPayment, ppb.GetPaymentRequest(name=name), deadline=bound
        )
        return reply.payment

    async def authorize(
        self, request: Authorization, *, budget: float | None = None
    ) -> PaymentResult:
        bound = self._deadline(budget)
        message = ppb.AuthorizePaymentRequest(
            parent=f"tenants/{request.tenant}",
            payment_id=request.payment_id,
            order=request.order,
            customer=CustomerRef(customer_id=request.customer_id),
            amount=Money(currency_code=request.currency, amount_minor=request.amount),
            payment_method=pres.PaymentMethod(
                token=request.payment_method_token, type=pres.PAYMENT_METHOD_TYPE_CARD
            ),
            capture_method=pres.CAPTURE_METHOD_MANUAL,
            description=f"order {request.order.rsplit('/', 1)[-1]}",
            request_id=request.request_id,
        )
        try:
            reply = await self._client.call(
                self._client.stub.AuthorizePayment, message, deadline=bound
            )
            payment = reply.payment
            if payment.outcome_unknown:
                payment = await self._payment(payment.name, bound)
        except client_errors.CommerceError as error:
            return _from_error(error)
        return self._authorized(payment)

    def _authorized(self, payment: pres.Payment) -> PaymentResult:
        if payment.state in {_S.PAYMENT_STATE_AUTHORIZED, _S.PAYMENT_STATE_CAPTURED}:
            return PaymentResult(
                Outcome.SUCCEEDED, payment.name, amount=payment.amount_authorized.amount_minor
            )
        if payment.state == _S.PAYMENT_STATE_FAILED:
            return PaymentResult(
                Outcome.DECLINED,
                payment.name,
                reason="PAYMENT_DECLINED",
                message=payment.failure.reason or "the payment was declined",
                decline_code=_decline_code(payment),
            )
        return _retry("PAYMENT_OUTCOME_UNKNOWN", f"payment is {_S.Name(payment.state)}")

    async def capture(
        self,
        payment: str,
        amount: int,
        currency: str,
        request_id: str,
        *,
        budget: float | None = None,
    ) -> PaymentResult:
        bound = self._deadline(budget)
        message = ppb.CapturePaymentRequest(
            name=payment,
            amount=Money(currency_code=currency, amount_minor=amount),
            final_capture=True,
            request_id=request_id,
        )
        try:
            reply = await self._client.call(
                self._client.stub.CapturePayment, message, deadline=bound
            )
            current = reply.payment
            if current.outcome_unknown:
                current = await self._payment(payment, bound)
        except client_errors.CommerceError as error:
            return _from_error(error)
        if current.state in {
            _S.PAYMENT_STATE_CAPTURED,
            _S.PAYMENT_STATE_PARTIALLY_REFUNDED,
            _S.PAYMENT_STATE_REFUNDED,
        }:
            return PaymentResult(
                Outcome.SUCCEEDED,
                current.name,
                reference=current.psp_reference,
                amount=current.amount_captured.amount_minor,
            )
        if current.state == _S.PAYMENT_STATE_AUTHORIZED:
            return _retry("PAYMENT_OUTCOME_UNKNOWN", "the capture is being resolved")
        return PaymentResult(
            Outcome.DECLINED,
            current.name,
            reason="CAPTURE_FAILED",
            message=f"payment is {_S.Name(current.state)}",
        )

    async def void(
        self, payment: str, request_id: str, *, budget: float | None = None
    ) -> PaymentResult:
        bound = self._deadline(budget)
        message = ppb.VoidPaymentRequest(
            name=payment, reason="checkout saga compensation", request_id=request_id
        )
        try:
            reply = await self._client.call(self._client.stub.VoidPayment, message, deadline=bound)
            current = reply.payment
            if current.outcome_unknown:
                current = await self._payment(payment, bound)
        except client_errors.NotFound:
            return PaymentResult(Outcome.SUCCEEDED, payment)  # never created: nothing held
        except client_errors.CommerceError as error:
            if error.reason == "INVALID_PAYMENT_STATE":
                return await self._nothing_held(payment, error, bound)
            return _from_error(error)
        if current.state in {_S.PAYMENT_STATE_VOIDED, _S.PAYMENT_STATE_FAILED}:
            return PaymentResult(Outcome.SUCCEEDED, current.name)
        return _retry("PAYMENT_OUTCOME_UNKNOWN", f"payment is {_S.Name(current.state)}")

    async def _nothing_held(
        self, payment: str, error: client_errors.CommerceError, bound: Deadline
    ) -> PaymentResult:
        """A void refused for the payment's state is a success when nothing is held."""
        try:
            current = await self._payment(payment, bound)
        except client_errors.CommerceError as lookup:
            return _from_error(lookup)
        if current.outcome_unknown:  # payments is still resolving what the PSP did
            return _retry("PAYMENT_OUTCOME_UNKNOWN", "the payment's outcome is being resolved")
        released = {
            _S.PAYMENT_STATE_VOIDED,
            _S.PAYMENT_STATE_FAILED,
            _S.PAYMENT_STATE_EXPIRED,
            _S.PAYMENT_STATE_REQUIRES_AUTHORIZATION,  # never authorized: nothing held
        }
        if current.state in released:
            return PaymentResult(Outcome.SUCCEEDED, current.name)
        return PaymentResult(Outcome.DECLINED, payment, reason=error.reason, message=error.message)

    async def refund(
        self,
        payment: str,
        refund_id: str,
        amount: int,
        currency: str,
        request_id: str,
        *,
        budget: float | None = None,
    ) -> PaymentResult:
        bound = self._deadline(budget)
        message = ppb.RefundPaymentRequest(
            name=payment,
            refund_id=refund_id,
            amount=Money(currency_code=currency, amount_minor=amount),
            reason=pres.REFUND_REASON_ORDER_CANCELED,
            description="checkout saga compensation: the order failed after capture",
            request_id=request_id,
        )
        try:
            reply = await self._client.call(
                self._client.stub.RefundPayment, message, deadline=bound
            )
            refund = reply.refund
            if refund.state != pres.REFUND_STATE_SUCCEEDED:
                found = await self._client.call(
                    self._client.stub.GetRefund,
                    ppb.GetRefundRequest(name=refund.name),
                    deadline=bound,
                )
                refund = found.refund
        except client_errors.CommerceError as error:
            return _from_error(error)
        if refund.state == pres.REFUND_STATE_SUCCEEDED:
            return PaymentResult(Outcome.SUCCEEDED, refund.name, amount=refund.amount.amount_minor)
        if refund.state == pres.REFUND_STATE_FAILED:
            return PaymentResult(
                Outcome.DECLINED, refund.name, reason="REFUND_FAILED", message=refund.failure.reason
            )
        return _retry("REFUND_PENDING", "the refund is being processed")
