"""Database errors as the checkout's failures: transient ones retried, the rest named."""

from __future__ import annotations

import psycopg
from psycopg import errors as pg
from sqlalchemy.exc import DBAPIError

from services.chassis.errors import Aborted, DomainError, FailedPrecondition, Unavailable

# Lost races PostgreSQL resolves by aborting one side: safe to run the whole use case again.
TRANSIENT = (pg.SerializationFailure, pg.DeadlockDetected, pg.LockNotAvailable)

_CONSTRAINTS: dict[str, tuple[type[DomainError], str, str]] = {
    "orders_one_in_flight_per_checkout": (
        FailedPrecondition,
        "CHECKOUT_NOT_OPEN",
        "an order of this checkout is already in flight",
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
        return Aborted("CONTENTION", "too much concurrent work on the same checkout; retry")
    if isinstance(cause, pg.QueryCanceled):
        return Unavailable("DATABASE_TIMEOUT", "the checkout database did not answer in time")
    if isinstance(cause, psycopg.OperationalError):
        return Unavailable("DATABASE_UNAVAILABLE", "the checkout database is unavailable")
    if isinstance(cause, pg.UniqueViolation | pg.CheckViolation):
        constraint = getattr(cause.diag, "constraint_name", None) or ""
        known = _CONSTRAINTS.get(constraint)
        if known is not None:
            kind, reason, message = known
            return kind(reason, message, metadata={"constraint": constraint})
    return None
