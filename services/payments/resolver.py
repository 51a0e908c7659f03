"""Background work: unknown PSP outcomes resolved by status inquiry (with backoff), ledger
movements the ledger still owes handed over, and lapsed authorizations expired."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from services.payments.service import PaymentsService

log = logging.getLogger(__name__)


class OutcomeResolver:
    """Every `interval` seconds, asks the PSPs about the unknown outcomes that are due."""

    def __init__(self, service: PaymentsService, *, interval: float) -> None:
        self._service = service
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self._service.resolve_due()
                await self._service.expire_due()
            except Exception:  # keep going; the next round retries what failed
                log.exception("background payments work failed")
            await asyncio.sleep(self._interval)
