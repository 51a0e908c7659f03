"""The record of PSP calls: operations, outcomes, error classes and the unresolved call."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from services.payments.domain.money import Money


class Operation(enum.StrEnum):
    """Mirrors `PaymentOperation`: what was asked of the PSP."""

    AUTHORIZE = "AUTHORIZE"
    CAPTURE = "CAPTURE"
    VOID = "VOID"
    REFUND = "REFUND"
    STATUS_INQUIRY = "STATUS_INQUIRY"


class AttemptOutcome(enum.StrEnum):
    """Mirrors `AttemptOutcome`: how one PSP call ended."""

    SUCCEEDED = "SUCCEEDED"
    DECLINED = "DECLINED"
    ERROR = "ERROR"
    UNKNOWN = "UNKNOWN"
    SKIPPED = "SKIPPED"


class ErrorClass(enum.StrEnum):
    """Mirrors `ErrorClass`: whether a failed call may be retried or failed over."""

    NONE = "NONE"
    RETRYABLE = "RETRYABLE"
    NON_RETRYABLE = "NON_RETRYABLE"
    AMBIGUOUS = "AMBIGUOUS"


class FailureCode(enum.StrEnum):
    """Mirrors `PaymentFailureCode`: the normalized reason, the same for every PSP."""

    DECLINED = "DECLINED"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    EXPIRED_PAYMENT_METHOD = "EXPIRED_PAYMENT_METHOD"
    INVALID_PAYMENT_METHOD = "INVALID_PAYMENT_METHOD"
    FRAUD_SUSPECTED = "FRAUD_SUSPECTED"
    AUTHENTICATION_REQUIRED = "AUTHENTICATION_REQUIRED"
    PROCESSING_ERROR = "PROCESSING_ERROR"
    PSP_UNAVAILABLE = "PSP_UNAVAILABLE"
    NO_ROUTE = "NO_ROUTE"
    AUTHORIZATION_EXPIRED = "AUTHORIZATION_EXPIRED"


@dataclass(frozen=True, slots=True)
class PaymentFailure:
    """Why a payment or refund failed; `reason` is operator-safe text, never card data."""

    code: FailureCode
    reason: str
    retryable: bool
    psp: str = ""
    psp_code: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """One call to one PSP, as recorded in the payment's attempt history."""

    attempt_number: int
    operation: Operation
    psp: str
    outcome: AttemptOutcome
    error_class: ErrorClass
    amount: Money
    psp_idempotency_key: str
    start_time: datetime
    end_time: datetime
    failure_code: FailureCode | None = None
    psp_code: str = ""
    psp_reference: str = ""
    refund: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AmbiguousOutcome:
    """A PSP call that may have taken effect but gave no answer; resolved by status inquiry."""

    operation: Operation
    psp: str
    amount: Money
    attempt_number: int
    start_time: datetime
    psp_reference: str = ""
    refund: str = ""
    resolution_attempts: int = 0
