"""Background release of pending holds whose expiry has passed (HoldExpired events)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from services.ledger.domain.ports import TransactionRunner
from services.ledger.domain.usecases.holds import expire_holds

log = logging.getLogger(__name__)


class HoldExpirySweeper:
    """Every `interval` seconds, expires due holds of every tenant, `batch` per transaction.

    Several processes may sweep at once: each locks the holds it takes (SKIP LOCKED).
    """

    def __init__(self, runner: TransactionRunner, *, interval: float, batch: int) -> None:
        self._runner = runner
        self._interval = interval
        self._batch = batch
        self._task: asyncio.Task[None] | None = None

    async def sweep_once(self) -> int:
        """Expire every due hold now; returns how many."""
        expired = 0
        for tenant in await self._runner.tenants():
            while True:
                done = await self._runner.run(tenant, lambda uow: expire_holds(uow, self._batch))
                expired += len(done)
                if len(done) < self._batch:
                    break
        return expired

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="hold-expiry-sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                expired = await self.sweep_once()
                if expired:
                    log.info("expired %d hold(s)", expired)
            except Exception:  # keep sweeping; the next round retries
                log.exception("hold expiry sweep failed")
            await asyncio.sleep(self._interval)
