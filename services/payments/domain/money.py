"""Money as integer minor units of one ISO 4217 currency, within the int64 range."""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.payments.domain import errors

INT64_MAX = 2**63 - 1
_CURRENCY = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True, slots=True)
class Money:
    """A non-negative amount in minor units (cents for USD, yen for JPY)."""

    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        # bool is an int in Python; True cents is a bug, not an amount.
        if not isinstance(self.amount_minor, int) or isinstance(self.amount_minor, bool):
            raise errors.invalid_field("amount.amount_minor", "must be an integer")
        if not 0 <= self.amount_minor <= INT64_MAX:
            raise errors.invalid_field("amount.amount_minor", "must be within 0..2^63-1")
        if not _CURRENCY.match(self.currency):
            raise errors.invalid_field("amount.currency_code", "must be an ISO 4217 code")

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    def same_currency(self, other: Money) -> None:
        """Raise CURRENCY_MISMATCH unless `other` is in this currency."""
        if other.currency != self.currency:
            raise errors.currency_mismatch(self.currency, other.currency)

    def __add__(self, other: Money) -> Money:
        self.same_currency(other)
        return Money(self.amount_minor + other.amount_minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self.same_currency(other)
        return Money(self.amount_minor - other.amount_minor, self.currency)

    def __str__(self) -> str:
        return f"{self.amount_minor} {self.currency} (minor units)"
