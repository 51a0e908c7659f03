"""The ledger's own instruments, and the scheduled hash-chain verification that feeds them.

`ledger.chain.verification.failures` (Prometheus `ledger_chain_verification_failures_total`,
read by the LedgerChainBroken alert) counts each verification that finds a tenant's chain
broken — from the VerifyChain RPC and from the `ChainAuditor`, which re-verifies every
tenant's whole chain every `chain_verify_interval_seconds` when that is set (off by default:
a full pass re-hashes every link, so the interval is a deployment's choice).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from opentelemetry import metrics
from opentelemetry.metrics import MeterProvider

from services.ledger.domain.ports import TransactionRunner
from services.ledger.domain.usecases.reads import ChainVerification, verify_chain

METER_NAME = "commerce.ledger"
log = logging.getLogger(__name__)


class ChainMetrics:
    """`ledger.chain.verification.failures`, by tenant."""

    def __init__(self, meter_provider: MeterProvider | None = None) -> None:
        meter = metrics.get_meter(METER_NAME, meter_provider=meter_provider)
        self._failures = meter.create_counter(
            "ledger.chain.verification.failures",
            unit="{failure}",
            description="Chain verifications that found a broken link, by tenant",
        )

    def verified(self, tenant: str, result: ChainVerification) -> None:
        """Record one verification's result: +1 if the chain is broken, else +0 — so the
        tenant's series exists before its first failure, and Prometheus' `increase()` sees
        that failure (a counter first scraped at 1 shows no increase)."""
        self._failures.add(0 if result.first_break is None else 1, {"tenant": tenant})
        if result.first_break is not None:
            log.error(
                "ledger hash chain of tenant %s is broken at sequence %d (%s)",
                tenant,
                result.first_break.sequence,
                result.first_break.kind.name,
            )


class ChainAuditor:
    """Every `interval` seconds, verifies every tenant's whole chain into `ChainMetrics`."""

    def __init__(
        self, runner: TransactionRunner, chain_metrics: ChainMetrics, *, interval: float
    ) -> None:
        self._runner = runner
        self._metrics = chain_metrics
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def verify_once(self) -> dict[str, bool]:
        """Verify every tenant's chain now; returns tenant -> intact."""
        intact: dict[str, bool] = {}
        for tenant in await self._runner.tenants():
            result = await self._runner.run(tenant, lambda uow: verify_chain(uow, 0, 0))
            self._metrics.verified(tenant, result)
            intact[tenant] = result.first_break is None
        return intact

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="ledger-chain-auditor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.verify_once()
            except Exception:  # keep auditing; the next round retries
                log.exception("scheduled chain verification failed")
            await asyncio.sleep(self._interval)
