"""Bounded concurrency per PSP: a slow PSP holds at most `limit` calls, never every worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from clients.deadline import Deadline
from services.payments.domain.attempts import FailureCode
from services.payments.psp.model import FailureKind, PspFailure


class Bulkhead:
    """At most `limit` calls in flight; a call waits up to `max_wait` seconds for a slot."""

    def __init__(self, psp: str, limit: int, *, max_wait: float = 0.0) -> None:
        if limit < 1 or max_wait < 0:
            raise ValueError("need limit >= 1 and max_wait >= 0")
        self._psp = psp
        self._slots = asyncio.Semaphore(limit)
        self._max_wait = max_wait
        self.in_flight = 0
        self.peak = 0

    @asynccontextmanager
    async def slot(self, deadline: Deadline) -> AsyncIterator[None]:
        """Hold a slot for the call; a full bulkhead raises a skipped RETRYABLE_SAFE failure."""
        if not await self._acquire(min(self._max_wait, deadline.remaining())):
            raise PspFailure(
                FailureKind.RETRYABLE_SAFE,
                self._psp,
                "bulkhead full",
                code=FailureCode.PSP_UNAVAILABLE,
                skipped=True,
            )
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            yield
        finally:
            self.in_flight -= 1
            self._slots.release()

    async def _acquire(self, wait: float) -> bool:
        if not self._slots.locked():
            return await self._slots.acquire()
        if wait <= 0:
            return False
        try:
            async with asyncio.timeout(wait):
                return await self._slots.acquire()
        except TimeoutError:
            return False
