"""Every way a payment operation is refused, each with the contract's stable ErrorInfo reason."""

from __future__ import annotations

from services.chassis.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
)

INVALID_PAYMENT_STATE = "INVALID_PAYMENT_STATE"
PAYMENT_OUTCOME_UNKNOWN = "PAYMENT_OUTCOME_UNKNOWN"
CAPTURE_AMOUNT_EXCEEDED = "CAPTURE_AMOUNT_EXCEEDED"
REFUND_AMOUNT_EXCEEDED = "REFUND_AMOUNT_EXCEEDED"
CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
AUTHORIZATION_EXPIRED = "AUTHORIZATION_EXPIRED"
VALIDATION_FAILED = "VALIDATION_FAILED"
REFUND_NOT_FOUND = "REFUND_NOT_FOUND"
REFUND_ALREADY_EXISTS = "REFUND_ALREADY_EXISTS"


def invalid_payment_state(state: str, operation: str) -> DomainError:
    return FailedPrecondition(
        INVALID_PAYMENT_STATE,
        f"cannot {operation} a payment in state {state}",
        metadata={"state": state, "operation": operation},
    )


def invalid_refund_state(state: str, operation: str) -> DomainError:
    return FailedPrecondition(
        INVALID_PAYMENT_STATE,
        f"cannot {operation} a refund in state {state}",
        metadata={"refund_state": state, "operation": operation},
    )


def outcome_unknown(operation: str) -> DomainError:
    return FailedPrecondition(
        PAYMENT_OUTCOME_UNKNOWN,
        f"an earlier {operation} is still being resolved with the PSP; retry later",
        metadata={"operation": operation},
    )


def capture_amount_exceeded(requested: int, capturable: int) -> DomainError:
    return InvalidArgument(
        CAPTURE_AMOUNT_EXCEEDED,
        f"capture of {requested} exceeds the {capturable} still capturable",
        metadata={"requested_minor": str(requested), "capturable_minor": str(capturable)},
    )


def refund_amount_exceeded(requested: int, refundable: int) -> DomainError:
    return InvalidArgument(
        REFUND_AMOUNT_EXCEEDED,
        f"refund of {requested} exceeds the {refundable} still refundable",
        metadata={"requested_minor": str(requested), "refundable_minor": str(refundable)},
    )


def currency_mismatch(expected: str, given: str) -> DomainError:
    return InvalidArgument(
        CURRENCY_MISMATCH,
        f"amount is in {given}, the payment is in {expected}",
        metadata={"expected": expected, "given": given},
    )


def authorization_expired() -> DomainError:
    return FailedPrecondition(AUTHORIZATION_EXPIRED, "the authorization lapsed before capture")


def invalid_field(field: str, description: str) -> DomainError:
    return InvalidArgument(
        VALIDATION_FAILED,
        f"{field}: {description}",
        violations=[FieldViolation(field=field, description=description)],
    )


def refund_not_found(refund_id: str) -> DomainError:
    return NotFound(
        REFUND_NOT_FOUND, f"no refund {refund_id} on this payment", metadata={"refund": refund_id}
    )


def refund_already_exists(refund_id: str) -> DomainError:
    return AlreadyExists(
        REFUND_ALREADY_EXISTS, f"refund {refund_id} exists", metadata={"refund": refund_id}
    )
