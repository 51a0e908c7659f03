"""One circuit breaker per PSP (purgatory), its state published as an OpenTelemetry gauge."""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager

from opentelemetry import metrics
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import Context, OpenedState

from services.payments.domain.attempts import FailureCode
from services.payments.psp.model import FailureKind, PspFailure

STATE_GAUGE = "payments.psp.circuit_breaker.state"


class CircuitState(enum.IntEnum):
    """The gauge's values."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


def _not_a_psp_fault(error: BaseException) -> bool:
    """Declines, bad requests and calls never sent say nothing about the PSP's health."""
    assert isinstance(error, PspFailure)
    return error.skipped or error.kind in (FailureKind.DECLINED, FailureKind.PERMANENT)


class PspCircuitBreakers:
    """Opens a PSP's circuit after `threshold` consecutive failures; after `ttl` seconds the
    next call is a trial (half-open) whose success closes it and whose failure reopens it.

    Counted as failures: RETRYABLE_SAFE and AMBIGUOUS failures that reached the PSP.
    """

    def __init__(
        self,
        *,
        threshold: int = 5,
        ttl: float = 30.0,
        meter: metrics.Meter | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._factory = AsyncCircuitBreakerFactory(
            default_threshold=threshold,
            default_ttl=ttl,
            exclude=[(PspFailure, _not_a_psp_fault), asyncio.CancelledError],
        )
        self._contexts: dict[str, Context] = {}
        self._creating = asyncio.Lock()  # two first calls must not create two breakers
        self._clock = wall_clock  # purgatory times the open state with time.time()
        meter = meter or metrics.get_meter("services.payments.psp")
        meter.create_observable_gauge(
            STATE_GAUGE,
            callbacks=[self._observe],
            description="Circuit breaker state per PSP: 0 closed, 1 open, 2 half-open",
        )

    def state(self, psp: str) -> CircuitState:
        """Open becomes half-open once its ttl has passed: the next call will be a trial."""
        context = self._contexts.get(psp)
        if context is None or context.state == "closed":
            return CircuitState.CLOSED
        if context.state == "half-opened":
            return CircuitState.HALF_OPEN
        opened_at = context.opened_at or 0.0
        if self._clock() > opened_at + context.ttl:
            return CircuitState.HALF_OPEN
        return CircuitState.OPEN

    @asynccontextmanager
    async def guard(self, psp: str) -> AsyncIterator[None]:
        """Run a call through `psp`'s breaker; an open circuit raises a skipped failure."""
        async with self._creating:
            breaker = await self._factory.get_breaker(psp)
        self._contexts[psp] = breaker.context
        try:
            async with breaker:
                yield
        except OpenedState as error:
            raise PspFailure(
                FailureKind.RETRYABLE_SAFE,
                psp,
                "circuit open",
                code=FailureCode.PSP_UNAVAILABLE,
                skipped=True,
            ) from error

    def _observe(self, _options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        return [metrics.Observation(int(self.state(psp)), {"psp": psp}) for psp in self._contexts]
