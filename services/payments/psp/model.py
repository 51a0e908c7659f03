"""What a PSP call returns or raises: typed results and the failure classification."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date

from services.payments.domain.attempts import AttemptOutcome, ErrorClass, FailureCode
from services.payments.domain.money import Money


class FailureKind(enum.StrEnum):
    """How a failed PSP call may be handled; decides retry, failover and resolution."""

    DECLINED = "DECLINED"
    """The PSP or issuer said no. Final for this payment; never retried or failed over."""
    RETRYABLE_SAFE = "RETRYABLE_SAFE"
    """The PSP certainly did not act (not sent, 503/429, key honoured): retry or fail over."""
    AMBIGUOUS = "AMBIGUOUS"
    """The PSP may have acted (timeout after sending a mutating call): resolve by inquiry."""
    PERMANENT = "PERMANENT"
    """The request itself is wrong (400, 404, key conflict): repeating cannot help."""


_ERROR_CLASS = {
    FailureKind.DECLINED: ErrorClass.NON_RETRYABLE,
    FailureKind.PERMANENT: ErrorClass.NON_RETRYABLE,
    FailureKind.RETRYABLE_SAFE: ErrorClass.RETRYABLE,
    FailureKind.AMBIGUOUS: ErrorClass.AMBIGUOUS,
}


class PspFailure(Exception):
    """A PSP call that did not succeed. Its message never holds request data."""

    def __init__(
        self,
        kind: FailureKind,
        psp: str,
        message: str,
        *,
        code: FailureCode = FailureCode.PROCESSING_ERROR,
        psp_code: str = "",
        psp_reference: str = "",
        http_status: int | None = None,
        skipped: bool = False,
    ) -> None:
        super().__init__(f"{psp}: {message}")
        self.kind = kind
        self.psp = psp
        self.code = code
        self.psp_code = psp_code
        self.psp_reference = psp_reference
        self.http_status = http_status
        self.skipped = skipped
        """True when the call was never sent: open circuit, full bulkhead, no time left."""

    @property
    def error_class(self) -> ErrorClass:
        return _ERROR_CLASS[self.kind]

    @property
    def outcome(self) -> AttemptOutcome:
        if self.skipped:
            return AttemptOutcome.SKIPPED
        if self.kind is FailureKind.DECLINED:
            return AttemptOutcome.DECLINED
        if self.kind is FailureKind.AMBIGUOUS:
            return AttemptOutcome.UNKNOWN
        return AttemptOutcome.ERROR


class PspPaymentStatus(enum.StrEnum):
    """Where the PSP says its payment (authorization) is, normalized across PSPs."""

    AUTHORIZED = "AUTHORIZED"
    PARTIALLY_CAPTURED = "PARTIALLY_CAPTURED"
    CAPTURED = "CAPTURED"
    VOIDED = "VOIDED"
    DECLINED = "DECLINED"
    PROCESSING = "PROCESSING"
    INCOMPLETE = "INCOMPLETE"
    """Not confirmed or needing customer action (e.g. Stripe `requires_payment_method`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PspPayment:
    """The PSP's view of one payment after a call."""

    psp: str
    psp_reference: str
    status: PspPaymentStatus
    amount: Money
    amount_captured: Money
    amount_refunded: Money


class PspRefundStatus(enum.StrEnum):
    SUCCEEDED = "SUCCEEDED"
    PENDING = "PENDING"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True, kw_only=True)
class PspRefund:
    """The PSP's view of one refund."""

    psp: str
    psp_reference: str
    payment_reference: str
    status: PspRefundStatus
    amount: Money


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorizeRequest:
    """An authorization to send; `idempotency_key` is the payment's request_id."""

    amount: Money
    payment_method_token: str
    idempotency_key: str
    capture: bool = False
    description: str = ""


class SettlementLineType(enum.StrEnum):
    CAPTURE = "CAPTURE"
    REFUND = "REFUND"
    FEE = "FEE"
    OTHER = "OTHER"


@dataclass(frozen=True, slots=True, kw_only=True)
class SettlementLine:
    """One line of a PSP settlement report; refunds carry a negative `gross_minor`."""

    line_id: str
    settlement_date: date
    type: SettlementLineType
    psp_reference: str
    payment_reference: str
    currency: str
    gross_minor: int
    fee_minor: int
    net_minor: int
