"""Classify a failed HTTP exchange with a PSP: declined, safe to retry, ambiguous, permanent."""

from __future__ import annotations

import httpx

from services.payments.psp.model import FailureKind

_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
_HTTP_DECLINED = 402
_HTTP_TOO_MANY_REQUESTS = 429
_HTTP_UNAVAILABLE = 503
_HTTP_SERVER_ERROR = 500


def classify_transport_error(error: httpx.HTTPError, *, mutating: bool) -> FailureKind:
    """No HTTP answer: safe only if the request never left, or if it changes nothing.

    A connect error or pool timeout means not one byte of the request was sent. Anything
    later (write or read timeout, a dropped connection) may have reached the PSP.
    """
    if isinstance(error, _NOT_SENT):
        return FailureKind.RETRYABLE_SAFE
    if isinstance(error, httpx.TransportError):
        return FailureKind.AMBIGUOUS if mutating else FailureKind.RETRYABLE_SAFE
    return FailureKind.PERMANENT


def classify_status(
    status: int, *, mutating: bool, should_retry: bool | None = None
) -> FailureKind:
    """An HTTP answer that is not a success.

    `should_retry` is the PSP's own verdict where it gives one (Stripe-Should-Retry); it
    wins. 503 and 429 mean the PSP refused before acting; 500, 502 and 504 may hide an
    effect for a mutating call. 402 is a decline, other 4xx a wrong request.
    """
    if status == _HTTP_DECLINED:
        return FailureKind.DECLINED
    if should_retry is True:
        return FailureKind.RETRYABLE_SAFE
    if status in (_HTTP_TOO_MANY_REQUESTS, _HTTP_UNAVAILABLE) and should_retry is None:
        return FailureKind.RETRYABLE_SAFE
    if status >= _HTTP_SERVER_ERROR:
        return FailureKind.AMBIGUOUS if mutating else FailureKind.RETRYABLE_SAFE
    return FailureKind.PERMANENT
