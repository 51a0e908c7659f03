"""Checkout's own instruments: saga outcomes, and sagas stuck in flight.

`checkout.saga.outcomes` counts each order once, when the transaction that makes it terminal
commits (only the driver whose versioned save won tells). `checkout.sagas.stuck` reports the
count the `StuckSagaMonitor` last read from the database — never a made-up zero before its
first reading. The Prometheus names (`checkout_saga_outcomes_total`, `checkout_sagas_stuck`)
are what k8s/components/monitoring's dashboards and rules read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from sqlalchemy import text

from services.chassis.db.database import Database
from services.checkout.domain.orders import Order, OrderState

METER_NAME = "commerce.checkout"
log = logging.getLogger(__name__)

COMPLETED, DECLINED, COMPENSATED, FAILED = "completed", "declined", "compensated", "failed"
_UNAVAILABLE = "PSP_UNAVAILABLE"

_TENANTS = text("SELECT tenant_id FROM tenants ORDER BY tenant_id")
# Served by the partial index orders_in_flight (tenant_id, lease_until) WHERE in flight.
_STUCK = text(
    "SELECT count(*) FROM orders WHERE tenant_id = :tenant"
    " AND state IN ('PENDING', 'AUTHORIZING', 'CAPTURING', 'COMPENSATING')"
    " AND update_time < clock_timestamp() - make_interval(secs => :after)"
)


def outcome(order: Order) -> str:
    """The `outcome` attribute of a terminal order.

    completed: confirmed; declined: the authorization was refused (nothing held);
    compensated: money was held or taken and given back (voided, refunded);
    failed: payments stayed unavailable, or a compensation needs a person.
    """
    match order.state:
        case OrderState.CONFIRMED:
            return COMPLETED
        case OrderState.VOIDED | OrderState.REFUNDED:
            return COMPENSATED
        case OrderState.FAILED if order.failure is None or order.failure.reason != _UNAVAILABLE:
            return DECLINED
        case OrderState.FAILED | OrderState.ATTENTION_REQUIRED:
            return FAILED
        case _:
            raise ValueError(f"order {order.name} is not terminal ({order.state.value})")


class SagaMetrics:
    """`checkout.saga.outcomes` (counter) and `checkout.sagas.stuck` (observable gauge)."""

    def __init__(self, meter_provider: MeterProvider | None = None) -> None:
        meter = metrics.get_meter(METER_NAME, meter_provider=meter_provider)
        self._outcomes = meter.create_counter(
            "checkout.saga.outcomes",
            unit="{saga}",
            description="Sagas reaching a terminal state, by outcome "
            "(completed, declined, compensated, failed)",
        )
        self.stuck: int | None = None
        meter.create_observable_gauge(
            "checkout.sagas.stuck",
            callbacks=[self._observe_stuck],
            unit="{saga}",
            description="Sagas in flight that have not advanced for the stuck threshold",
        )

    def done(self, order: Order) -> None:
        """Count one order that just reached a terminal state (the saga's `on_done`)."""
        self._outcomes.add(1, {"outcome": outcome(order)})

    def _observe_stuck(self, _options: CallbackOptions) -> Iterable[Observation]:
        if self.stuck is not None:
            yield Observation(self.stuck)


class StuckSagaMonitor:
    """Every `interval` seconds, counts the orders of all tenants in flight and not updated
    for `after` seconds into `SagaMetrics.stuck`: one indexed count per tenant."""

    def __init__(
        self, database: Database, saga_metrics: SagaMetrics, *, after: float, interval: float
    ) -> None:
        self._database = database
        self._metrics = saga_metrics
        self._after = after
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> int:
        """Count stuck sagas now; returns (and publishes) the count."""
        async with self._database.transaction() as session:
            tenants = list((await session.execute(_TENANTS)).scalars())
        stuck = 0
        for tenant in tenants:
            async with self._database.tenant_transaction(tenant) as session:
                params = {"tenant": tenant, "after": self._after}
                stuck += int((await session.execute(_STUCK, params)).scalar_one())
        self._metrics.stuck = stuck
        return stuck

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.refresh()
            except Exception:  # a missed reading is not worth a crash
                log.warning("counting stuck sagas failed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(asyncio.Event()), name="stuck-sagas")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
