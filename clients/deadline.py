"""Deadlines that bound a call, and the ambient one propagated from an incoming request."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol

Clock = Callable[[], float]
"""Seconds on a monotonic clock (time.monotonic outside tests)."""


class HasTimeRemaining(Protocol):
    """What a grpc (aio) ServicerContext offers about the incoming call's deadline."""

    def time_remaining(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class Deadline:
    """An absolute point on a monotonic clock after which a call's answer is no longer wanted."""

    at: float
    clock: Clock = field(default=time.monotonic, compare=False, repr=False)

    @classmethod
    def after(cls, seconds: float, clock: Clock = time.monotonic) -> Deadline:
        """The deadline `seconds` from now."""
        return cls(clock() + seconds, clock)

    @classmethod
    def of_incoming(
        cls, context: HasTimeRemaining, clock: Clock = time.monotonic
    ) -> Deadline | None:
        """The deadline of the request a servicer is handling (None if it has none)."""
        remaining = context.time_remaining()
        return None if remaining is None else cls.after(remaining, clock)

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.at - self.clock())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def earliest(self, other: Deadline | None) -> Deadline:
        """Whichever of the two comes first (compared by time left, so clocks may differ)."""
        if other is None or self.remaining() <= other.remaining():
            return self
        return other


_AMBIENT: ContextVar[Deadline | None] = ContextVar("commerce_mesh_deadline", default=None)


def current_deadline() -> Deadline | None:
    """The deadline that bounds every client call made in this context, if any."""
    return _AMBIENT.get()


@contextmanager
def deadline_scope(deadline: Deadline | None) -> Iterator[Deadline | None]:
    """Bound every client call inside the block by `deadline` (and by any enclosing scope).

    A server interceptor opens one per incoming request with `Deadline.of_incoming(context)`,
    so downstream calls never outlive the request that caused them.
    """
    outer = _AMBIENT.get()
    effective = deadline.earliest(outer) if deadline is not None else outer
    token = _AMBIENT.set(effective)
    try:
        yield effective
    finally:
        _AMBIENT.reset(token)
