"""Database errors as the ledger's failures: transient ones retried, invariants named."""

from __future__ import annotations

import psycopg
from psycopg import errors as pg
from sqlalchemy.exc import DBAPIError

from services.chassis.errors import (
    Aborted,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    OutOfRange,
    Unavailable,
)

# Lost races PostgreSQL resolves by aborting one side: safe to run the whole use case again.
TRANSIENT = (pg.SerializationFailure, pg.DeadlockDetected, pg.LockNotAvailable)

_CONSTRAINT_ERRORS: dict[str, tuple[type[DomainError], str, str]] = {
    "accounts_debits_within_credits": (
        FailedPrecondition,
        "INSUFFICIENT_FUNDS",
        "an account's debits would exceed its credits",
    ),
    "accounts_credits_within_debits": (
        FailedPrecondition,
        "INSUFFICIENT_FUNDS",
        "an account's credits would exceed its debits",
    ),
    "postings_balanced": (InvalidArgument, "ENTRY_UNBALANCED", "postings do not sum to zero"),
}


def _cause(error: BaseException) -> BaseException:
    """The psycopg error, whether raised directly or wrapped by SQLAlchemy."""
    return error.orig if isinstance(error, DBAPIError) and error.orig is not None else error


def is_transient(error: BaseException) -> bool:
    return isinstance(_cause(error), TRANSIENT)


def as_domain_error(error: BaseException) -> DomainError | None:
    """The domain failure a refused statement means, or None for a bug."""
    cause = _cause(error)
    if isinstance(cause, TRANSIENT):  # still losing the race after every retry
        return Aborted("CONTENTION", "too much concurrent work on the same accounts; retry")
    if isinstance(cause, pg.QueryCanceled):
        # Statement timeout: the transaction rolled back, so a retry (same request_id) is safe.
        return Unavailable("DATABASE_TIMEOUT", "the ledger database did not answer in time")
    if isinstance(cause, psycopg.OperationalError):
        # The connection failed; if that was during COMMIT the request_id makes a retry replay.
        return Unavailable("DATABASE_UNAVAILABLE", "the ledger database is unavailable")
    if isinstance(cause, pg.NumericValueOutOfRange):
        return OutOfRange("BALANCE_OVERFLOW", "an amount or balance would exceed int64")
    if isinstance(cause, pg.CheckViolation):
        constraint = getattr(cause.diag, "constraint_name", None) or ""
        known = _CONSTRAINT_ERRORS.get(constraint)
        if known is not None:
            kind, reason, message = known
            return kind(reason, message, metadata={"constraint": constraint})
    return None
