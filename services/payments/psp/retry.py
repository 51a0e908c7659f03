"""Retries of one PSP call: RETRYABLE_SAFE failures only, full-jitter backoff, in the deadline."""

from __future__ import annotations

import asyncio
import random

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception
from tenacity.stop import stop_base

from clients.deadline import Deadline
from clients.retry import FullJitterWait, Jitter, RetryPolicy, Sleep
from services.payments.psp.model import FailureKind, PspFailure


def is_retryable(error: BaseException) -> bool:
    """Retry only what the PSP certainly did not act on, and only if it was really sent.

    A skipped call (open circuit, full bulkhead) is not retried here: waiting on the same PSP
    helps nobody, failing over does.
    """
    return (
        isinstance(error, PspFailure)
        and error.kind is FailureKind.RETRYABLE_SAFE
        and not error.skipped
    )


class _StopAtAttemptsOrDeadline(stop_base):
    def __init__(self, policy: RetryPolicy, deadline: Deadline) -> None:
        self._policy = policy
        self._deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        if retry_state.attempt_number >= self._policy.max_attempts:
            return True
        left = self._deadline.remaining() - retry_state.upcoming_sleep
        return left < max(self._policy.min_attempt_time, 1e-3)


def psp_retrying(
    policy: RetryPolicy,
    deadline: Deadline,
    *,
    sleep: Sleep = asyncio.sleep,
    jitter: Jitter = random.uniform,
) -> AsyncRetrying:
    """A fresh tenacity controller for one logical PSP call (the same idempotency key)."""
    return AsyncRetrying(
        retry=retry_if_exception(is_retryable),
        stop=_StopAtAttemptsOrDeadline(policy, deadline),
        wait=FullJitterWait(policy, jitter),
        sleep=sleep,
        reraise=True,
    )
