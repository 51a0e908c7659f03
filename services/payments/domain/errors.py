"""Every way a payment operation is refused, each with the contract's stable ErrorInfo reason."""

from __future__ import annotations

from services.chassis.errors import (
    Aborted,
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    Unavailable,
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


# -- service-level refusals (the contract's reasons beyond the aggregate's own) -------------

PAYMENT_NOT_FOUND = "PAYMENT_NOT_FOUND"
PAYMENT_ALREADY_EXISTS = "PAYMENT_ALREADY_EXISTS"
PSP_DECLINED = "PSP_DECLINED"
PSP_UNAVAILABLE = "PSP_UNAVAILABLE"
PAYMENT_BUSY = "PAYMENT_BUSY"
LEDGER_UNAVAILABLE = "LEDGER_UNAVAILABLE"
LEDGER_REJECTED = "LEDGER_REJECTED"
ETAG_MISMATCH = "ETAG_MISMATCH"
ROUTING_CONFIG_INVALID = "ROUTING_CONFIG_INVALID"
UNKNOWN_PSP = "UNKNOWN_PSP"
WEBHOOK_PAYLOAD_INVALID = "WEBHOOK_PAYLOAD_INVALID"
INVALID_PAGE_TOKEN = "INVALID_PAGE_TOKEN"  # noqa: S105 - an error reason, not a secret


def payment_not_found(name: str) -> DomainError:
    return NotFound(PAYMENT_NOT_FOUND, f"payment {name} not found", metadata={"resource": name})


def payment_already_exists(name: str) -> DomainError:
    return AlreadyExists(
        PAYMENT_ALREADY_EXISTS, f"payment {name} exists", metadata={"resource": name}
    )


def psp_declined(psp: str, failure_code: str, operation: str) -> DomainError:
    return FailedPrecondition(
        PSP_DECLINED,
        f"{psp} declined the {operation.lower()}",
        metadata={"psp": psp, "failure_code": failure_code, "operation": operation},
    )


def psp_unavailable(operation: str) -> DomainError:
    return Unavailable(
        PSP_UNAVAILABLE,
        f"no eligible PSP could be reached for the {operation.lower()}; retry with the same"
        " request_id",
        metadata={"operation": operation},
    )


def payment_busy() -> DomainError:
    return Aborted(
        PAYMENT_BUSY, "another operation on this payment is in progress; retry", metadata={}
    )


def ledger_unavailable() -> DomainError:
    return Unavailable(
        LEDGER_UNAVAILABLE,
        "the ledger could not record the operation; retry with the same request_id",
    )


def ledger_rejected(ledger_code: str, ledger_reason: str) -> DomainError:
    """The ledger refused a movement for good (a retry gets the same answer): the movement stays
    owed on the payment and an operator must look (ADR 0021)."""
    return FailedPrecondition(
        LEDGER_REJECTED,
        "the ledger refused the payment's money movement; retrying will not help",
        metadata={"ledger_code": ledger_code, "ledger_reason": ledger_reason},
    )


def etag_mismatch() -> DomainError:
    return Aborted(ETAG_MISMATCH, "the routing config changed since it was read")


def routing_config_invalid(psp: str) -> DomainError:
    return InvalidArgument(ROUTING_CONFIG_INVALID, f"no PSP connector {psp}", metadata={"psp": psp})


def unknown_psp(psp: str) -> DomainError:
    return NotFound(UNKNOWN_PSP, f"no PSP connector {psp}", metadata={"psp": psp})


def webhook_payload_invalid(description: str) -> DomainError:
    return InvalidArgument(WEBHOOK_PAYLOAD_INVALID, f"webhook payload: {description}")


def invalid_page_token() -> DomainError:
    return InvalidArgument(
        INVALID_PAGE_TOKEN, "the page token is malformed or was issued for other parameters"
    )
