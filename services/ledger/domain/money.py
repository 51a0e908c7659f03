"""Integer minor units and the int64 range every amount and counter must stay within."""

from __future__ import annotations

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def fits_int64(value: int) -> bool:
    """Whether `value` can be stored as a signed 64-bit integer."""
    return INT64_MIN <= value <= INT64_MAX
