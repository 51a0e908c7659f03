"""Database failures reach callers as the right status, never as INTERNAL."""

import psycopg
import pytest
from psycopg import errors as pg

from services.chassis.errors import ErrorKind
from services.ledger.storage.failures import as_domain_error


@pytest.mark.parametrize(
    ("error", "kind", "reason"),
    [
        (pg.SerializationFailure(), ErrorKind.ABORTED, "CONTENTION"),
        (pg.DeadlockDetected(), ErrorKind.ABORTED, "CONTENTION"),
        (pg.QueryCanceled(), ErrorKind.UNAVAILABLE, "DATABASE_TIMEOUT"),
        (
            psycopg.OperationalError("connection lost"),
            ErrorKind.UNAVAILABLE,
            "DATABASE_UNAVAILABLE",
        ),
        (pg.NumericValueOutOfRange(), ErrorKind.OUT_OF_RANGE, "BALANCE_OVERFLOW"),
    ],
)
def test_database_failures_map_to_statuses_callers_can_act_on(error, kind, reason):
    mapped = as_domain_error(error)
    assert mapped is not None
    assert (mapped.kind, mapped.reason) == (kind, reason)


def test_an_unknown_database_error_is_left_for_the_bug_path():
    assert as_domain_error(pg.UndefinedTable()) is None
