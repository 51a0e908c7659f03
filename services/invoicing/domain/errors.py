"""Every way an invoicing request can fail, each with its stable ErrorInfo reason."""

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


def invoice_not_found(name: str) -> DomainError:
    return NotFound("INVOICE_NOT_FOUND", f"no invoice {name}", metadata={"resource": name})


def credit_note_not_found(name: str) -> DomainError:
    return NotFound("CREDIT_NOTE_NOT_FOUND", f"no credit note {name}", metadata={"resource": name})


def invoice_not_draft(state: str) -> DomainError:
    return FailedPrecondition(
        "INVOICE_NOT_DRAFT",
        f"the invoice is {state}; only drafts change",
        metadata={"state": state},
    )


def invalid_transition(from_state: str, to_state: str, why: str = "") -> DomainError:
    detail = f": {why}" if why else ""
    return FailedPrecondition(
        "INVALID_STATE_TRANSITION",
        f"an invoice cannot go from {from_state} to {to_state}{detail}",
        metadata={"from_state": from_state, "to_state": to_state},
    )


def credit_note_transition(from_state: str, to_state: str) -> DomainError:
    return FailedPrecondition(
        "INVALID_STATE_TRANSITION",
        f"a credit note cannot go from {from_state} to {to_state}",
        metadata={"from_state": from_state, "to_state": to_state},
    )


def invoice_empty() -> DomainError:
    return FailedPrecondition("INVOICE_EMPTY", "an invoice needs at least one line to be issued")


def invoice_has_payments() -> DomainError:
    return FailedPrecondition(
        "INVOICE_HAS_PAYMENTS", "an invoice with a recorded payment cannot be voided"
    )


def payment_exceeds_balance(balance_due: int) -> DomainError:
    return FailedPrecondition(
        "PAYMENT_EXCEEDS_BALANCE",
        f"the payment exceeds the balance due of {balance_due}",
        metadata={"balance_due": str(balance_due)},
    )


def payment_already_invoiced(invoice: str) -> DomainError:
    return FailedPrecondition(
        "PAYMENT_ALREADY_INVOICED",
        f"the payment is recorded on {invoice}",
        metadata={"invoice": invoice},
    )


def credit_exceeds_balance(creditable: int) -> DomainError:
    return FailedPrecondition(
        "CREDIT_EXCEEDS_BALANCE",
        f"at most {creditable} can still be credited on this invoice",
        metadata={"creditable": str(creditable)},
    )


def credit_exceeds_line(line_id: str) -> DomainError:
    return FailedPrecondition(
        "CREDIT_EXCEEDS_LINE",
        f"invoice line {line_id} would be credited beyond its total",
        metadata={"invoice_line_id": line_id},
    )


def refund_already_credited(credit_note: str) -> DomainError:
    return FailedPrecondition(
        "REFUND_ALREADY_CREDITED",
        f"the refund is recorded by {credit_note}",
        metadata={"credit_note": credit_note},
    )


def credit_note_refunded() -> DomainError:
    return FailedPrecondition(
        "CREDIT_NOTE_REFUNDED", "a credit note that records a refund cannot be voided"
    )


def numbering_format_conflict(number: str) -> DomainError:
    return FailedPrecondition(
        "NUMBERING_FORMAT_CONFLICT",
        f"the change would issue {number} again",
        metadata={"number": number},
    )


def currency_mismatch(expected: str, got: str) -> DomainError:
    return InvalidArgument(
        "CURRENCY_MISMATCH",
        f"amounts must be in {expected}, not {got}",
        metadata={"expected": expected, "got": got},
    )


def due_before_issue() -> DomainError:
    return InvalidArgument("DUE_TIME_BEFORE_ISSUE", "due_time must not be before the issue time")


def invoice_line_not_found(line_id: str) -> DomainError:
    return InvalidArgument(
        "INVOICE_LINE_NOT_FOUND",
        f"the invoice has no line {line_id}",
        metadata={"invoice_line_id": line_id},
    )


def etag_mismatch(current: str) -> DomainError:
    return Aborted(
        "ETAG_MISMATCH", "the resource changed since it was read", metadata={"etag": current}
    )


def idempotency_key_reused(request_id: str) -> DomainError:
    return AlreadyExists(
        "IDEMPOTENCY_KEY_REUSED",
        "request_id was used for a different request",
        metadata={"request_id": request_id},
    )


def invalid_page_token() -> DomainError:
    return InvalidArgument("INVALID_PAGE_TOKEN", "the page token is malformed or not for this call")


def invalid_filter(why: str) -> DomainError:
    return InvalidArgument("INVALID_FILTER", f"invalid filter: {why}")


def unknown_time_zone(name: str) -> DomainError:
    return InvalidArgument(
        "VALIDATION_FAILED",
        f"{name!r} is not an IANA time zone",
        violations=[
            FieldViolation(
                "numbering_config.time_zone", "not an IANA time zone", "UNKNOWN_TIME_ZONE"
            )
        ],
    )


def downstream_unavailable(service: str) -> DomainError:
    return Unavailable(
        "DOWNSTREAM_UNAVAILABLE", f"{service} did not answer; retry", metadata={"service": service}
    )
