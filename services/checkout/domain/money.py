"""Currencies, their ISO 4217 minor-unit exponents, and exact rounding to one minor unit.

Every amount is an integer of minor units (yen for JPY, cents for USD, fils for KWD). A
computation that divides (a percentage, a tax rate) produces an exact rational
`numerator / denominator` of minor units; `round_ratio` turns it into a whole minor unit
with the quote's rounding mode. No float is ever involved (ADR 0014).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

from services.checkout.domain import errors

# ISO 4217 minor-unit exponents of the currencies the platform accepts (data, not code).
# Source: ISO 4217 amendment list (SIX), current as of 2026.
_EXPONENTS: dict[str, int] = {
    # exponent 0
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0,
    "XPF": 0,
    # exponent 3
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    # exponent 4
    "CLF": 4, "UYW": 4,
    # exponent 2 (the common case)
    "AED": 2, "AUD": 2, "BRL": 2, "CAD": 2, "CHF": 2, "CNY": 2, "CZK": 2, "DKK": 2,
    "EUR": 2, "GBP": 2, "HKD": 2, "HUF": 2, "ILS": 2, "INR": 2, "MXN": 2, "NOK": 2,
    "NZD": 2, "PLN": 2, "SAR": 2, "SEK": 2, "SGD": 2, "THB": 2, "TRY": 2, "USD": 2,
    "ZAR": 2,
}  # fmt: skip
EXPONENTS: Mapping[str, int] = MappingProxyType(_EXPONENTS)

# The largest amount any total may reach: int64, the contract's `amount_minor` type.
MAX_AMOUNT = 2**63 - 1


class RoundingMode(enum.Enum):
    """How an exact rational amount becomes a whole minor unit."""

    HALF_UP = "HALF_UP"  # half away from zero: commercial rounding
    HALF_EVEN = "HALF_EVEN"  # banker's rounding


# The platform rounds every currency HALF_UP today (ADR 0014); the table is per currency so
# a change for one currency is a data change that every quote records.
_ROUNDING: dict[str, RoundingMode] = {}
DEFAULT_ROUNDING = RoundingMode.HALF_UP


def exponent(currency: str) -> int:
    """The ISO 4217 exponent of `currency`, or UNSUPPORTED_CURRENCY."""
    found = EXPONENTS.get(currency)
    if found is None:
        raise errors.unsupported_currency(currency)
    return found


def rounding_mode(currency: str) -> RoundingMode:
    exponent(currency)
    return _ROUNDING.get(currency, DEFAULT_ROUNDING)


def round_ratio(numerator: int, denominator: int, mode: RoundingMode) -> int:
    """`numerator / denominator` rounded to an integer, exactly (no float)."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    quotient, remainder = divmod(abs(numerator), denominator)
    twice = 2 * remainder
    if twice > denominator or (
        twice == denominator and (mode is RoundingMode.HALF_UP or quotient % 2 == 1)
    ):
        quotient += 1
    return quotient if numerator >= 0 else -quotient
