"""Quotes: exact integer pricing of a cart, rounded per line and per rate (ADR 0014).

    subtotal       = unit_price * quantity                         (exact)
    discount       = amount_off, or round(subtotal * bps / 10000)
    net            = subtotal - discount                           (the taxable amount)
    tax per rate   = round(net * rate_ppm / 1000000)               (per line, per rate)
    line tax       = sum of its per-rate taxes;  line total = net + line tax
    quote amounts  = plain sums of the line amounts; breakdown = per-rate sums

Nothing is rounded twice, so lines, breakdown and totals always tie out to the minor unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.checkout.domain import errors
from services.checkout.domain.cart import Line
from services.checkout.domain.money import (
    MAX_AMOUNT,
    RoundingMode,
    exponent,
    round_ratio,
    rounding_mode,
)
from services.checkout.domain.tax import PPM, TaxableLine, TaxAssessment, TaxRate

BPS = 10_000
QUOTE_TTL = timedelta(minutes=30)


@dataclass(frozen=True)
class TaxLine:
    jurisdiction: str
    tax_name: str
    rate_ppm: int
    taxable_amount: int
    tax_amount: int


@dataclass(frozen=True)
class QuoteLine:
    line_id: str
    sku: str
    description: str
    quantity: int
    unit_price: int
    product_tax_code: str
    subtotal: int
    discount_amount: int
    discount_code: str
    net_amount: int
    tax_amount: int
    total: int
    taxes: tuple[TaxLine, ...]


@dataclass(frozen=True)
class Quote:
    quote_id: str
    currency: str
    lines: tuple[QuoteLine, ...]
    tax_breakdown: tuple[TaxLine, ...]
    subtotal: int
    discount_total: int
    tax_total: int
    total: int
    currency_exponent: int
    rounding_mode: RoundingMode
    tax_provider: str
    tax_fallback_used: bool
    tax_fallback_reason: str
    create_time: datetime
    expire_time: datetime

    def is_expired(self, now: datetime) -> bool:
        return now >= self.expire_time


def discount_of(line: Line, mode: RoundingMode) -> int:
    """The line's discount in minor units, never more than its subtotal."""
    if line.discount is None:
        return 0
    if line.discount.amount_off is not None:
        amount = line.discount.amount_off
    else:
        amount = round_ratio(line.subtotal * (line.discount.percent_off_bps or 0), BPS, mode)
    return max(0, min(amount, line.subtotal))


def taxable_lines(lines: Sequence[Line], currency: str) -> tuple[TaxableLine, ...]:
    """What the tax provider is asked about: each line's net amount after discount."""
    mode = rounding_mode(currency)
    return tuple(
        TaxableLine(line.line_id, line.product_tax_code, line.subtotal - discount_of(line, mode))
        for line in lines
    )


def _price_line(line: Line, rates: Sequence[TaxRate], mode: RoundingMode) -> QuoteLine:
    discount = discount_of(line, mode)
    net = line.subtotal - discount
    taxes = tuple(
        TaxLine(
            rate.jurisdiction,
            rate.tax_name,
            rate.rate_ppm,
            net,
            round_ratio(net * rate.rate_ppm, PPM, mode),
        )
        for rate in rates
    )
    tax = sum(t.tax_amount for t in taxes)
    return QuoteLine(
        line_id=line.line_id,
        sku=line.sku,
        description=line.description or line.sku,
        quantity=line.quantity,
        unit_price=line.unit_price,
        product_tax_code=line.product_tax_code,
        subtotal=line.subtotal,
        discount_amount=discount,
        discount_code=line.discount.code if line.discount else "",
        net_amount=net,
        tax_amount=tax,
        total=net + tax,
        taxes=taxes,
    )


def _breakdown(lines: Sequence[QuoteLine]) -> tuple[TaxLine, ...]:
    summed: dict[tuple[str, str, int], tuple[int, int]] = {}
    for line in lines:
        for tax in line.taxes:
            key = (tax.jurisdiction, tax.tax_name, tax.rate_ppm)
            taxable, amount = summed.get(key, (0, 0))
            summed[key] = (taxable + tax.taxable_amount, amount + tax.tax_amount)
    return tuple(
        TaxLine(jurisdiction, name, rate, taxable, amount)
        for (jurisdiction, name, rate), (taxable, amount) in summed.items()
    )


def price(  # noqa: PLR0917 - the quote's inputs, all required
    quote_id: str,
    currency: str,
    lines: Sequence[Line],
    tax: TaxAssessment,
    now: datetime,
    ttl: timedelta = QUOTE_TTL,
) -> Quote:
    """The quote of `lines` with the tax rates of `tax`."""
    if not lines:
        raise errors.checkout_empty()
    mode = rounding_mode(currency)
    priced = tuple(
        _price_line(line, tuple(tax.rates.get(line.line_id, ())), mode) for line in lines
    )
    subtotal = sum(line.subtotal for line in priced)
    discount_total = sum(line.discount_amount for line in priced)
    tax_total = sum(line.tax_amount for line in priced)
    total = subtotal - discount_total + tax_total
    if max(subtotal, total) > MAX_AMOUNT:
        raise errors.amount_out_of_range("the quote total")
    return Quote(
        quote_id=quote_id,
        currency=currency,
        lines=priced,
        tax_breakdown=_breakdown(priced),
        subtotal=subtotal,
        discount_total=discount_total,
        tax_total=tax_total,
        total=total,
        currency_exponent=exponent(currency),
        rounding_mode=mode,
        tax_provider=tax.provider,
        tax_fallback_used=tax.fallback_used,
        tax_fallback_reason=tax.fallback_reason,
        create_time=now,
        expire_time=now + ttl,
    )
