"""The tax-provider hook, the default rule-based provider, and the timeout/fallback policy.

A provider answers which rates apply to each line (jurisdiction, tax name, rate in ppm); the
quote does the arithmetic and the rounding itself, so every provider's answer ties out to the
minor unit the same way (ADR 0014). The rule-based provider reads its rates from data: rules
by country, optional region (ISO 3166-2 subdivision) and optional product tax code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from services.checkout.domain import errors
from services.checkout.domain.cart import Address

PPM = 1_000_000
MAX_RATE_PPM = PPM  # 100 %: no real tax exceeds it, and it bounds every product


@dataclass(frozen=True)
class TaxableLine:
    line_id: str
    product_tax_code: str
    net_amount: int  # minor units, after discount


@dataclass(frozen=True)
class TaxRequest:
    currency: str
    address: Address
    lines: tuple[TaxableLine, ...]


@dataclass(frozen=True)
class TaxRate:
    jurisdiction: str  # "DE", "US-CA", "US-CA-LOS_ANGELES"
    tax_name: str
    rate_ppm: int


# The rates that apply to each line, by line_id; a line with no entry is not taxed.
LineRates = Mapping[str, Sequence[TaxRate]]


class TaxProvider(Protocol):
    """The hook: a tax engine (Avalara, Stripe Tax, a rate table) behind one call."""

    @property
    def name(self) -> str: ...

    async def rates(self, request: TaxRequest) -> LineRates: ...


@dataclass(frozen=True)
class TaxRule:
    """One rate: applies in `country` (and `region`, when set) to lines whose product tax
    code is `tax_code` (any code when empty). A rule with a tax code replaces the general
    rule of the same jurisdiction level and tax name, e.g. a reduced VAT rate for food; a
    rate of 0 exempts."""

    country: str
    tax_name: str
    rate_ppm: int
    region: str = ""
    tax_code: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.rate_ppm <= MAX_RATE_PPM:
            raise ValueError(f"rate_ppm must be within 0..{MAX_RATE_PPM}, got {self.rate_ppm}")

    @property
    def jurisdiction(self) -> str:
        return f"{self.country}-{self.region}" if self.region else self.country


class RuleBasedTaxProvider:
    """The default provider: a rate table, looked up per line. Never fails for a known
    address; an address with no rule is simply not taxed."""

    def __init__(self, rules: Iterable[TaxRule], name: str = "static-rates") -> None:
        self._name = name
        self._rules = tuple(rules)

    @property
    def name(self) -> str:
        return self._name

    def rates_for(self, address: Address, tax_code: str) -> tuple[TaxRate, ...]:
        region = address.administrative_area.upper()
        chosen: dict[tuple[str, str], TaxRule] = {}
        for rule in self._rules:
            if rule.country != address.region_code or rule.region not in ("", region):
                continue
            if rule.tax_code not in ("", tax_code):
                continue
            key = (rule.jurisdiction, rule.tax_name)
            current = chosen.get(key)
            if current is None or (rule.tax_code and not current.tax_code):
                chosen[key] = rule  # a product-specific rule beats the general one
        return tuple(
            TaxRate(rule.jurisdiction, rule.tax_name, rule.rate_ppm)
            for rule in sorted(chosen.values(), key=lambda r: (r.region != "", r.jurisdiction))
            if rule.rate_ppm > 0
        )

    async def rates(self, request: TaxRequest) -> LineRates:
        return {
            line.line_id: self.rates_for(request.address, line.product_tax_code)
            for line in request.lines
        }


# A small default table: enough for the demo tenants and tests; production loads its own.
DEFAULT_RULES: tuple[TaxRule, ...] = (
    TaxRule("DE", "VAT", 190_000),
    TaxRule("DE", "VAT", 70_000, tax_code="food"),
    TaxRule("FR", "VAT", 200_000),
    TaxRule("FR", "VAT", 55_000, tax_code="food"),
    TaxRule("GB", "VAT", 200_000),
    TaxRule("GB", "VAT", 0, tax_code="food"),
    TaxRule("JP", "Consumption Tax", 100_000),
    TaxRule("JP", "Consumption Tax", 80_000, tax_code="food"),
    TaxRule("KW", "VAT", 0),
    TaxRule("US", "CA State Sales Tax", 72_500, region="CA"),
    TaxRule("US", "CA District Tax", 22_500, region="CA"),
    TaxRule("US", "NY State Sales Tax", 40_000, region="NY"),
    TaxRule("US", "NY Local Sales Tax", 48_750, region="NY"),
    TaxRule("US", "CA State Sales Tax", 0, region="CA", tax_code="food"),
    TaxRule("US", "CA District Tax", 0, region="CA", tax_code="food"),
)


@dataclass(frozen=True)
class TaxAssessment:
    """The rates per line and who produced them."""

    rates: LineRates
    provider: str
    fallback_used: bool = False
    fallback_reason: str = ""


class TaxCalculator:
    """Asks the primary provider within `timeout` seconds; on a timeout or any failure, asks
    the fallback (the rate table) and says so on the quote. Both failing is TAX_UNAVAILABLE,
    which callers may retry."""

    def __init__(
        self, primary: TaxProvider, fallback: TaxProvider | None = None, timeout: float = 2.0
    ) -> None:
        self._primary = primary
        self._fallback = fallback
        self._timeout = timeout

    async def assess(self, request: TaxRequest) -> TaxAssessment:
        try:
            rates = await asyncio.wait_for(self._primary.rates(request), self._timeout)
            return TaxAssessment(_checked(rates, request), self._primary.name)
        except TimeoutError:
            reason = "DEADLINE_EXCEEDED"
        except Exception as error:  # noqa: BLE001 - any provider failure falls back
            reason = _reason(error)
        if self._fallback is None:
            raise errors.tax_unavailable(reason)
        try:
            rates = await asyncio.wait_for(self._fallback.rates(request), self._timeout)
            checked = _checked(rates, request)
        except Exception as error:
            raise errors.tax_unavailable(f"{reason}; fallback: {_reason(error)}") from error
        return TaxAssessment(
            checked, self._fallback.name, fallback_used=True, fallback_reason=reason
        )


class InvalidTaxAnswerError(ValueError):
    """A provider answered with rates the quote cannot use."""


def _checked(rates: LineRates, request: TaxRequest) -> LineRates:
    """A provider's answer, refused when it names unknown lines or impossible rates."""
    known = {line.line_id for line in request.lines}
    for line_id, line_rates in rates.items():
        if line_id not in known:
            raise InvalidTaxAnswerError(f"rates for unknown line {line_id!r}")
        for rate in line_rates:
            if not 0 <= rate.rate_ppm <= MAX_RATE_PPM:
                raise InvalidTaxAnswerError(f"rate {rate.rate_ppm} ppm out of range")
    return rates


def _reason(error: BaseException) -> str:
    reason = getattr(error, "reason", None)
    return str(reason) if reason else type(error).__name__.upper()
