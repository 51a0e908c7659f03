"""Integer minor-unit arithmetic: tax at a rate in ppm, proportional allocation, inclusive split."""

from __future__ import annotations

from collections.abc import Sequence

PPM = 1_000_000


def tax_at(net: int, rate_ppm: int) -> int:
    """round(net * rate_ppm / 1e6), half up (away from zero for negatives)."""
    sign = -1 if net < 0 else 1
    return sign * ((abs(net) * rate_ppm + PPM // 2) // PPM)


def allocate(amount: int, weights: Sequence[int]) -> list[int]:
    """Split `amount` in proportion to non-negative `weights` (largest remainder), exactly.

    With all weights zero the amount goes to the first part.
    """
    if not weights:
        return []
    total = sum(weights)
    if total == 0:
        return [amount] + [0] * (len(weights) - 1)
    parts = [amount * w // total for w in weights]
    remainders = sorted(range(len(weights)), key=lambda i: (-(amount * weights[i] % total), i))
    for i in remainders[: amount - sum(parts)]:
        parts[i] += 1
    return parts


def split_inclusive(gross: int, rates_ppm: Sequence[int]) -> tuple[int, list[int]]:
    """(net, tax per rate) summing to `gross` exactly; rounding leftovers go to the largest part."""
    net = gross * PPM // (PPM + sum(rates_ppm))
    taxes = [tax_at(net, rate) for rate in rates_ppm]
    leftover = gross - net - sum(taxes)
    if leftover:
        parts = [net, *taxes]
        largest = max(range(len(parts)), key=lambda i: parts[i])
        parts[largest] += leftover
        net, taxes = parts[0], parts[1:]
    return net, taxes
