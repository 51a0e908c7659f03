"""Failure classification: what may be retried or failed over, and what is ambiguous."""

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.payments.domain.attempts import AttemptOutcome, ErrorClass
from services.payments.psp.classify import classify_status, classify_transport_error
from services.payments.psp.model import FailureKind, PspFailure, PspPaymentStatus
from services.payments.psp.stripe_connector import payment_status

K = FailureKind
REQUEST = httpx.Request("POST", "http://127.0.0.1/v1/authorizations")


@pytest.mark.parametrize(
    ("error", "mutating", "expected"),
    [
        (httpx.ConnectError("refused", request=REQUEST), True, K.RETRYABLE_SAFE),
        (httpx.ConnectTimeout("slow connect", request=REQUEST), True, K.RETRYABLE_SAFE),
        (httpx.PoolTimeout("no connection free", request=REQUEST), True, K.RETRYABLE_SAFE),
        (httpx.ReadTimeout("sent, no answer", request=REQUEST), True, K.AMBIGUOUS),
        (httpx.WriteTimeout("half sent", request=REQUEST), True, K.AMBIGUOUS),
        (httpx.ReadError("reset", request=REQUEST), True, K.AMBIGUOUS),
        (httpx.RemoteProtocolError("closed", request=REQUEST), True, K.AMBIGUOUS),
        (httpx.ReadTimeout("sent, no answer", request=REQUEST), False, K.RETRYABLE_SAFE),
        (httpx.RemoteProtocolError("closed", request=REQUEST), False, K.RETRYABLE_SAFE),
    ],
)
def test_transport_errors_are_safe_only_if_not_sent_or_not_mutating(error, mutating, expected):
    assert classify_transport_error(error, mutating=mutating) is expected


@pytest.mark.parametrize(
    ("status", "mutating", "should_retry", "expected"),
    [
        (402, True, None, K.DECLINED),
        (402, True, True, K.DECLINED),
        (503, True, None, K.RETRYABLE_SAFE),
        (429, True, None, K.RETRYABLE_SAFE),
        (500, True, None, K.AMBIGUOUS),
        (502, True, None, K.AMBIGUOUS),
        (504, True, None, K.AMBIGUOUS),
        (500, False, None, K.RETRYABLE_SAFE),
        (500, True, True, K.RETRYABLE_SAFE),
        (503, True, False, K.AMBIGUOUS),
        (409, True, True, K.RETRYABLE_SAFE),
        (409, True, None, K.PERMANENT),
        (400, True, None, K.PERMANENT),
        (404, False, None, K.PERMANENT),
        (422, True, None, K.PERMANENT),
    ],
)
def test_http_status_classification(status, mutating, should_retry, expected):
    assert classify_status(status, mutating=mutating, should_retry=should_retry) is expected


@given(st.integers(min_value=400, max_value=599), st.booleans())
def test_a_read_is_never_ambiguous(status, should_retry):
    assert classify_status(status, mutating=False, should_retry=should_retry) is not K.AMBIGUOUS


@pytest.mark.parametrize(
    ("kind", "skipped", "error_class", "outcome"),
    [
        (K.DECLINED, False, ErrorClass.NON_RETRYABLE, AttemptOutcome.DECLINED),
        (K.PERMANENT, False, ErrorClass.NON_RETRYABLE, AttemptOutcome.ERROR),
        (K.RETRYABLE_SAFE, False, ErrorClass.RETRYABLE, AttemptOutcome.ERROR),
        (K.RETRYABLE_SAFE, True, ErrorClass.RETRYABLE, AttemptOutcome.SKIPPED),
        (K.AMBIGUOUS, False, ErrorClass.AMBIGUOUS, AttemptOutcome.UNKNOWN),
    ],
)
def test_failure_kinds_map_onto_the_contracts_attempt_fields(kind, skipped, error_class, outcome):
    failure = PspFailure(kind, "sandbox", "x", skipped=skipped)
    assert (failure.error_class, failure.outcome) == (error_class, outcome)


@pytest.mark.parametrize(
    ("stripe", "ours"),
    [
        ("requires_capture", PspPaymentStatus.AUTHORIZED),
        ("succeeded", PspPaymentStatus.CAPTURED),
        ("canceled", PspPaymentStatus.VOIDED),
        ("processing", PspPaymentStatus.PROCESSING),
        ("requires_payment_method", PspPaymentStatus.INCOMPLETE),
        ("requires_action", PspPaymentStatus.INCOMPLETE),
    ],
)
def test_stripe_payment_intent_statuses_are_normalized(stripe, ours):
    assert payment_status(stripe) is ours
