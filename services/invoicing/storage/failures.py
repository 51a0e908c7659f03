"""Database errors as invoicing's failures: transient ones retried, invariants named."""

from __future__ import annotations

import psycopg
from psycopg import errors as pg
from sqlalchemy.exc import DBAPIError

from services.chassis.errors import (
    Aborted,
    DomainError,
    FailedPrecondition,
    Internal,
    Unavailable,
)

# Lost races PostgreSQL resolves by aborting one side: safe to run the whole use case again.
# A unique violation on an order, refund or idempotency key is one too: the retry finds the
# winner's row and answers from it.
TRANSIENT = (pg.SerializationFailure, pg.DeadlockDetected, pg.LockNotAvailable)
_RETRYABLE_KEYS = {
    "invoices_one_per_order",
    "credit_notes_one_per_refund",
    "idempotency_keys_pkey",
    "numbering_configs_pkey",
}


def _cause(error: BaseException) -> BaseException:
    return error.orig if isinstance(error, DBAPIError) and error.orig is not None else error


def is_transient(error: BaseException) -> bool:
    cause = _cause(error)
    if isinstance(cause, pg.UniqueViolation):
        return getattr(cause.diag, "constraint_name", None) in _RETRYABLE_KEYS
    return isinstance(cause, TRANSIENT)


def as_domain_error(error: BaseException) -> DomainError | None:
    """The domain failure a refused statement means, or None for a bug."""
    cause = _cause(error)
    if isinstance(cause, (*TRANSIENT, pg.UniqueViolation)):
        return Aborted("CONTENTION", "too much concurrent work on the same documents; retry")
    if isinstance(cause, pg.QueryCanceled):
        return Unavailable("DATABASE_TIMEOUT", "the invoicing database did not answer in time")
    if isinstance(cause, psycopg.OperationalError):
        return Unavailable("DATABASE_UNAVAILABLE", "the invoicing database is unavailable")
    if isinstance(cause, pg.CheckViolation):
        return FailedPrecondition("INVARIANT_VIOLATED", "the change breaks an invoicing rule")
    if type(cause) is pg.IntegrityConstraintViolation:
        # A trigger guarding issued documents refused the change: a bug, never a user error.
        return Internal("DOCUMENT_FROZEN", "an issued document cannot change")
    return None
