"""How the reconciliation RPCs refuse, each with the contract's stable ErrorInfo reason."""

from __future__ import annotations

from services.chassis.errors import (
    AlreadyExists,
    DomainError,
    FieldViolation,
    InvalidArgument,
    NotFound,
)

REPORT_ALREADY_EXISTS = "REPORT_ALREADY_EXISTS"
REPORT_NOT_FOUND = "REPORT_NOT_FOUND"
SETTLEMENT_REPORT_NOT_ALLOWED = "SETTLEMENT_REPORT_NOT_ALLOWED"


def report_already_exists(name: str) -> DomainError:
    return AlreadyExists(
        REPORT_ALREADY_EXISTS,
        f"reconciliation report {name} exists; choose another report_id",
        metadata={"resource": name},
    )


def report_not_found(name: str) -> DomainError:
    return NotFound(
        REPORT_NOT_FOUND, f"reconciliation report {name} not found", metadata={"resource": name}
    )


def settlement_report_not_allowed(why: str) -> DomainError:
    """A report location this service may not read (SSRF, path traversal): refused up front."""
    description = f"{why}; allowed are the configured settlement report URLs and directory"
    return InvalidArgument(
        SETTLEMENT_REPORT_NOT_ALLOWED,
        f"settlement_report: {description}",
        violations=[FieldViolation(field="settlement_report", description=description)],
    )
