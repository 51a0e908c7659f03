"""Redelivery delay after a failed attempt: exponential with full jitter, capped."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """`uniform(0, min(maximum, minimum * 2^(attempt-1)))`, never below `floor`."""

    minimum_s: float = 1.0
    maximum_s: float = 60.0
    floor_s: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.floor_s <= self.minimum_s <= self.maximum_s:
            raise ValueError("backoff needs 0 <= floor <= minimum <= maximum")

    def ceiling(self, attempt: int) -> float:
        """The largest delay after the `attempt`-th failed delivery (1-based)."""
        exponent = max(0, min(attempt - 1, 62))
        return min(self.maximum_s, self.minimum_s * 2.0**exponent)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """A jittered delay in seconds before nacking the `attempt`-th delivery."""
        source = rng or _RANDOM
        return max(self.floor_s, source.uniform(0.0, self.ceiling(attempt)))


# Jitter, not security: a shared non-cryptographic generator is right here.
_RANDOM = random.Random()  # noqa: S311
