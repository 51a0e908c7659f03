"""Retry policy, full-jitter backoff and the retry budget that keeps a failing downstream calm.

What is retried (see also `idempotency.CallKind`):

- Only READ and KEYED_WRITE calls; an UNSAFE call is sent exactly once.
- UNAVAILABLE: the server could not take the call now.
- DEADLINE_EXCEEDED of one attempt, when `attempt_timeout` cut it short or the server gave
  up early, and the call's overall deadline still leaves time for another attempt.
- Never ABORTED: in our contracts it signals a concurrency conflict (a stale etag, a lost
  transaction race); sending the same request again repeats the conflict, so the caller must
  re-read and decide. Never RESOURCE_EXHAUSTED (quota or load shedding: retrying adds load),
  INTERNAL/UNKNOWN (the effect may have happened and repeating rarely helps), nor any status
  about the request itself (INVALID_ARGUMENT, FAILED_PRECONDITION, ALREADY_EXISTS,
  PERMISSION_DENIED, UNAUTHENTICATED, NOT_FOUND, ...).

A retry also needs: attempts left, the backoff plus a minimal attempt inside the deadline, and
a token from the retry budget.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, retry_never
from tenacity.stop import stop_base
from tenacity.wait import wait_exponential

from clients.deadline import Clock, Deadline
from clients.errors import DeadlineExceeded, Unavailable

Sleep = Callable[[float], Awaitable[None]]
Jitter = Callable[[float, float], float]
"""Draws uniformly from [low, high] (random.uniform outside tests)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How often and how patiently to retry a retryable call."""

    max_attempts: int = 4
    """Attempts in total, the first one included."""
    initial_backoff: float = 0.1
    """Upper bound of the first wait, in seconds; each wait is uniform in [0, bound]."""
    max_backoff: float = 2.0
    """The bound never grows beyond this."""
    backoff_multiplier: float = 2.0
    """Growth of the bound per attempt."""
    attempt_timeout: float | None = None
    """Caps one attempt (None: an attempt may use all the time left)."""
    min_attempt_time: float = 0.02
    """No retry is started with less time than this left before the deadline."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 0 < self.initial_backoff <= self.max_backoff:
            raise ValueError("need 0 < initial_backoff <= max_backoff")
        if self.backoff_multiplier < 1:
            raise ValueError("backoff_multiplier must be at least 1")
        if self.attempt_timeout is not None and self.attempt_timeout <= 0:
            raise ValueError("attempt_timeout must be positive")
        if self.min_attempt_time < 0:
            raise ValueError("min_attempt_time must not be negative")

    @classmethod
    def disabled(cls) -> RetryPolicy:
        """Send once, whatever the outcome."""
        return cls(max_attempts=1)


class RetryBudget:
    """Allows `min_retries` plus `ratio` x calls retries per sliding `window` seconds.

    Shared by every call to one downstream, so when it fails wholesale the extra load from
    retries stays a small fraction of the normal load instead of multiplying it. Counts live in
    `slots` buckets, so memory is constant whatever the traffic. Not thread-safe: use it from
    the one event loop that owns the channel.
    """

    def __init__(
        self,
        *,
        ratio: float = 0.1,
        min_retries: int = 10,
        window: float = 10.0,
        slots: int = 10,
        clock: Clock = time.monotonic,
    ) -> None:
        if ratio < 0 or min_retries < 0 or window <= 0 or slots < 1:
            raise ValueError("need ratio >= 0, min_retries >= 0, window > 0, slots >= 1")
        self._ratio = ratio
        self._min_retries = min_retries
        self._slot_seconds = window / slots
        self._clock = clock
        self._slot_ids = [-1] * slots
        self._calls = [0] * slots
        self._retries = [0] * slots

    def record_call(self) -> None:
        """Count one logical call (not its retries): it earns `ratio` of a retry."""
        self._calls[self._current()] += 1

    def try_spend(self) -> bool:
        """Take one retry if the window allows it; False means do not retry."""
        current = self._current()
        if self.available() < 1:
            return False
        self._retries[current] += 1
        return True

    def available(self) -> float:
        """Retries left in the current window."""
        self._current()
        allowance = self._min_retries + self._ratio * sum(self._calls)
        return allowance - sum(self._retries)

    def _current(self) -> int:
        """Index of the bucket for now, clearing buckets that fell out of the window."""
        slot_id = math.floor(self._clock() / self._slot_seconds)
        for index, seen in enumerate(self._slot_ids):
            if seen <= slot_id - len(self._slot_ids):
                self._slot_ids[index] = -1
                self._calls[index] = 0
                self._retries[index] = 0
        index = slot_id % len(self._slot_ids)
        if self._slot_ids[index] != slot_id:
            self._slot_ids[index] = slot_id
            self._calls[index] = 0
            self._retries[index] = 0
        return index


class FullJitterWait(wait_exponential):
    """Exponential backoff with full jitter: uniform in [0, min(max, initial x mult^n)].

    tenacity's wait_random_exponential with the random source injectable, so tests can pin it.
    """

    def __init__(self, policy: RetryPolicy, jitter: Jitter) -> None:
        super().__init__(
            multiplier=policy.initial_backoff,
            max=policy.max_backoff,
            exp_base=policy.backoff_multiplier,
        )
        self._jitter = jitter

    def __call__(self, retry_state: RetryCallState) -> float:
        return self._jitter(0.0, super().__call__(retry_state))


class _StopRetrying(stop_base):
    """Stops when attempts, the deadline or the budget run out, in that order.

    tenacity has already drawn the next wait (`upcoming_sleep`) when it asks, so the deadline
    check covers the wait plus a minimal attempt; the budget is charged only for a retry that
    will really happen.
    """

    def __init__(self, policy: RetryPolicy, deadline: Deadline, budget: RetryBudget) -> None:
        self._policy = policy
        self._deadline = deadline
        self._budget = budget

    def __call__(self, retry_state: RetryCallState) -> bool:
        if retry_state.attempt_number >= self._policy.max_attempts:
            return True
        time_left = self._deadline.remaining() - retry_state.upcoming_sleep
        if time_left < max(self._policy.min_attempt_time, 1e-3):
            return True
        return not self._budget.try_spend()


def is_retryable_failure(error: BaseException) -> bool:
    """Whether a failed attempt of an idempotent call is worth another attempt."""
    return isinstance(error, Unavailable | DeadlineExceeded)


def retrying(
    policy: RetryPolicy,
    *,
    idempotent: bool,
    deadline: Deadline,
    budget: RetryBudget,
    sleep: Sleep,
    jitter: Jitter,
) -> AsyncRetrying:
    """A fresh tenacity controller for one logical call (tenacity keeps per-run state in it)."""
    return AsyncRetrying(
        retry=retry_if_exception(is_retryable_failure) if idempotent else retry_never,
        stop=_StopRetrying(policy, deadline, budget),
        wait=FullJitterWait(policy, jitter),
        sleep=sleep,
        reraise=True,
    )
