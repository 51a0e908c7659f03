"""How a failed ledger call is reported: transient failures are LEDGER_UNAVAILABLE (kept owed,
retried with the same request id), the ledger's final refusals are LEDGER_REJECTED with the
ledger's own code and reason."""

import grpc
import pytest

from clients.errors import CommerceError
from services.chassis.errors import ErrorKind
from services.payments.domain import errors
from services.payments.ledger import ledger_error


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
    ],
)
def test_transient_ledger_failures_are_ledger_unavailable(code):
    mapped = ledger_error(CommerceError("away", code=code, reason="SOMETHING"))
    assert (mapped.kind, mapped.reason) == (ErrorKind.UNAVAILABLE, errors.LEDGER_UNAVAILABLE)


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, "CURRENCY_MISMATCH"),
        (grpc.StatusCode.FAILED_PRECONDITION, "ACCOUNT_CLOSED"),
        (grpc.StatusCode.NOT_FOUND, "HOLD_NOT_FOUND"),
        (grpc.StatusCode.ALREADY_EXISTS, "HOLD_ALREADY_EXISTS"),
        (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED"),
        (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"),
        (grpc.StatusCode.OUT_OF_RANGE, "AMOUNT_OUT_OF_RANGE"),
    ],
)
def test_permanent_ledger_refusals_are_ledger_rejected_with_the_ledger_reason(code, reason):
    mapped = ledger_error(CommerceError("no", code=code, reason=reason))
    assert (mapped.kind, mapped.reason) == (ErrorKind.FAILED_PRECONDITION, errors.LEDGER_REJECTED)
    assert mapped.metadata == {"ledger_code": code.name, "ledger_reason": reason}


def test_a_refusal_without_a_reason_still_names_one():
    mapped = ledger_error(CommerceError("no", code=grpc.StatusCode.INVALID_ARGUMENT))
    assert mapped.metadata["ledger_reason"] == "UNSPECIFIED"
