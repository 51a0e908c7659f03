"""A PSP behind its resilience: deadline, retries, circuit breaker and bulkhead, every call."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from clients.deadline import Deadline
from clients.retry import Jitter, RetryPolicy, Sleep
from services.payments.domain.attempts import AttemptOutcome, ErrorClass, Operation
from services.payments.psp.breaker import PspCircuitBreakers
from services.payments.psp.bulkhead import Bulkhead
from services.payments.psp.connector import PspConnector
from services.payments.psp.model import FailureKind, PspFailure
from services.payments.psp.retry import psp_retrying

T = TypeVar("T")
Send = Callable[[Deadline], Awaitable[T]]
"""One call to the connector, given the deadline of this attempt."""

# How long past an attempt's deadline the backstop waits for the connector's own timeout
# to fire (which knows whether the request was sent) before cutting the call itself.
_BACKSTOP_GRACE = 0.05


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRecord:
    """One attempt as it happened; the service turns these into the payment's attempts."""

    psp: str
    operation: Operation
    outcome: AttemptOutcome
    error_class: ErrorClass
    start_time: datetime
    end_time: datetime
    failure: PspFailure | None = None


class GuardedPsp:
    """Every call to `connector` goes: retry loop → circuit breaker → bulkhead → deadline."""

    def __init__(
        self,
        connector: PspConnector,
        breakers: PspCircuitBreakers,
        bulkhead: Bulkhead,
        *,
        policy: RetryPolicy,
        attempt_timeout: float,
        sleep: Sleep = asyncio.sleep,
        jitter: Jitter = random.uniform,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.connector = connector
        self._breakers = breakers
        self._bulkhead = bulkhead
        self._policy = policy
        self._attempt_timeout = attempt_timeout
        self._sleep = sleep
        self._jitter = jitter
        self._clock = clock

    @property
    def psp_id(self) -> str:
        return self.connector.psp_id

    async def call(
        self, operation: Operation, send: Send[T], *, deadline: Deadline, records: list[CallRecord]
    ) -> T:
        """The connector's answer, retried only on RETRYABLE_SAFE; failures raise PspFailure."""
        retrying = psp_retrying(self._policy, deadline, sleep=self._sleep, jitter=self._jitter)
        return await retrying(self._once, operation, send, deadline, records)

    async def _once(
        self, operation: Operation, send: Send[T], deadline: Deadline, records: list[CallRecord]
    ) -> T:
        start = self._clock()
        try:
            async with self._breakers.guard(self.psp_id), self._bulkhead.slot(deadline):
                # The attempt's own clock starts once it holds a slot: waiting for the
                # bulkhead must not eat the time the PSP gets to answer.
                attempt_deadline = Deadline.after(self._attempt_timeout).earliest(deadline)
                result = await self._within(operation, send, attempt_deadline)
        except PspFailure as failure:
            records.append(self._record(operation, start, failure))
            raise
        records.append(self._record(operation, start, None))
        return result

    async def _within(self, operation: Operation, send: Send[T], deadline: Deadline) -> T:
        try:
            async with asyncio.timeout(deadline.remaining() + _BACKSTOP_GRACE):
                return await send(deadline)
        except TimeoutError as error:
            mutating = operation is not Operation.STATUS_INQUIRY
            kind = FailureKind.AMBIGUOUS if mutating else FailureKind.RETRYABLE_SAFE
            raise PspFailure(kind, self.psp_id, "deadline exceeded") from error

    def _record(
        self, operation: Operation, start: datetime, failure: PspFailure | None
    ) -> CallRecord:
        return CallRecord(
            psp=self.psp_id,
            operation=operation,
            outcome=failure.outcome if failure else AttemptOutcome.SUCCEEDED,
            error_class=failure.error_class if failure else ErrorClass.NONE,
            start_time=start,
            end_time=self._clock(),
            failure=failure,
        )
