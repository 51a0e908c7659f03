"""Database errors as payments failures: transient ones retried, invariants named."""

from __future__ import annotations

import psycopg
from psycopg import errors as pg
from sqlalchemy.exc import DBAPIError

from services.chassis.errors import (
    Aborted,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    Unavailable,
)

# Lost races PostgreSQL resolves by aborting one side: safe to run the whole use case again.
TRANSIENT = (pg.SerializationFailure, pg.DeadlockDetected, pg.LockNotAvailable)

# The rules the database enforces beside the domain (storage/sql/0001_*.sql). The domain
# refuses these first; reaching one here means a bug or a race the domain did not see.
_CONSTRAINT_ERRORS: dict[str, tuple[type[DomainError], str, str]] = {
    "payments_captured_within_authorized": (
        InvalidArgument,
        "CAPTURE_AMOUNT_EXCEEDED",
        "captures would exceed the authorized amount",
    ),
    "payments_refunded_within_captured": (
        InvalidArgument,
        "REFUND_AMOUNT_EXCEEDED",
        "refunds would exceed the captured amount",
    ),
    "refunds_within_captured": (
        InvalidArgument,
        "REFUND_AMOUNT_EXCEEDED",
        "refunds would exceed the captured amount",
    ),
    "payment_transitions_legal": (
        FailedPrecondition,
        "INVALID_PAYMENT_STATE",
        "the state change is not allowed",
    ),
    "payments_immutable": (
        InvalidArgument,
        "CURRENCY_MISMATCH",
        "a payment's currency and amount are fixed",
    ),
}


def _cause(error: BaseException) -> BaseException:
    return error.orig if isinstance(error, DBAPIError) and error.orig is not None else error


def is_transient(error: BaseException) -> bool:
    return isinstance(_cause(error), TRANSIENT)


def as_domain_error(error: BaseException) -> DomainError | None:
    """The domain failure a refused statement means, or None for a bug."""
    cause = _cause(error)
    if isinstance(cause, TRANSIENT):
        return Aborted("CONTENTION", "too much concurrent work on the same payment; retry")
    if isinstance(cause, pg.QueryCanceled):
        return Unavailable("DATABASE_TIMEOUT", "the payments database did not answer in time")
    if isinstance(cause, psycopg.OperationalError):
        return Unavailable("DATABASE_UNAVAILABLE", "the payments database is unavailable")
    if isinstance(cause, pg.CheckViolation):
        constraint = getattr(cause.diag, "constraint_name", None) or ""
        known = _CONSTRAINT_ERRORS.get(constraint)
        if known is not None:
            kind, reason, message = known
            return kind(reason, message, metadata={"constraint": constraint})
    return None
