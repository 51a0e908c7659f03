"""The recovery worker: resumes sagas left in flight by a crash or a timeout.

Every `interval` seconds it lists in-flight orders whose lease lapsed (their driver died or
gave up) and drives each from its last persisted step. Steps repeat their deterministic
request ids, so a resumed step is answered by payments with its first result: no second
charge. Many workers may run at once; the order lease lets one drive each order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from services.checkout.domain.ports import Leases
from services.checkout.domain.saga import Saga

log = logging.getLogger(__name__)


class RecoveryWorker:
    def __init__(
        self, saga: Saga, leases: Leases, *, interval: float, batch: int, budget: float = 10.0
    ) -> None:
        self._saga = saga
        self._budget = budget  # per order and pass: a long retry wait is left to a later pass
        self._leases = leases
        self._interval = interval
        self._batch = batch
        self._task: asyncio.Task[None] | None = None

    async def recover_once(self) -> int:
        """Drive every stalled order now (each to its end or its next wait); how many."""
        stalled = await self._leases.stalled(self._batch)
        for tenant, order_id in stalled:
            try:
                order = await self._saga.drive(tenant, order_id, self._budget)
                log.info("recovered order %s: %s", order.name, order.state.value)
            except Exception:  # one order's failure must not stop the others
                log.exception("recovering order %s of %s failed", order_id, tenant)
        return len(stalled)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.recover_once()
            except Exception:  # keep going; the next round retries
                log.exception("saga recovery pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(asyncio.Event()), name="saga-recovery")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
