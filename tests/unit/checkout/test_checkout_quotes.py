"""Quotes: exact integer pricing, rounding per currency (JPY 0, USD 2, KWD 3), tie-out."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.chassis.errors import DomainError
from services.checkout.domain.cart import Discount, Line
from services.checkout.domain.money import (
    EXPONENTS,
    MAX_AMOUNT,
    RoundingMode,
    exponent,
    round_ratio,
)
from services.checkout.domain.quotes import price, taxable_lines
from services.checkout.domain.tax import TaxAssessment, TaxRate

NOW = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)


def assessed(rates: dict[str, list[TaxRate]]) -> TaxAssessment:
    return TaxAssessment(rates, "test-rates")


def test_iso_4217_exponents_of_the_documented_currencies():
    assert (exponent("JPY"), exponent("USD"), exponent("KWD")) == (0, 2, 3)


def test_an_unknown_currency_is_refused_with_unsupported_currency():
    with pytest.raises(DomainError) as caught:
        exponent("XXX")
    assert caught.value.reason == "UNSUPPORTED_CURRENCY"


@pytest.mark.parametrize(
    ("numerator", "denominator", "half_up", "half_even"),
    [
        (5, 10, 1, 0),
        (15, 10, 2, 2),
        (25, 10, 3, 2),
        (-5, 10, -1, 0),
        (14, 10, 1, 1),
        (16, 10, 2, 2),
        (0, 7, 0, 0),
    ],
)
def test_round_ratio_rounds_halves_by_mode(numerator, denominator, half_up, half_even):
    assert round_ratio(numerator, denominator, RoundingMode.HALF_UP) == half_up
    assert round_ratio(numerator, denominator, RoundingMode.HALF_EVEN) == half_even


def test_jpy_tax_rounds_to_whole_yen():
    # 1 item at 1,005 yen, 10 % consumption tax = 100.5 yen -> 101 yen (HALF_UP).
    line = Line("1", "tea", 1, 1005)
    quote = price("q1", "JPY", [line], assessed({"1": [TaxRate("JP", "CT", 100_000)]}), NOW)
    assert (quote.tax_total, quote.total, quote.currency_exponent) == (101, 1106, 0)
    assert quote.rounding_mode is RoundingMode.HALF_UP


def test_usd_tax_rounds_to_cents_per_line_and_rate():
    # $19.99 at 7.25 % = 144.9275 cents -> 145; at 2.25 % = 44.9775 -> 45.
    line = Line("1", "mug", 1, 1999)
    rates = [TaxRate("US-CA", "state", 72_500), TaxRate("US-CA", "district", 22_500)]
    quote = price("q1", "USD", [line], assessed({"1": rates}), NOW)
    assert [t.tax_amount for t in quote.lines[0].taxes] == [145, 45]
    assert (quote.tax_total, quote.total, quote.currency_exponent) == (190, 2189, 2)


def test_kwd_amounts_round_to_fils():
    # 1.2345 KWD is not representable; 3 units at 0.411 KWD with 15 % off = 184.95 fils -> 185.
    line = Line("1", "dates", 3, 411, discount=Discount(percent_off_bps=1500))
    quote = price("q1", "KWD", [line], assessed({}), NOW)
    assert (quote.discount_total, quote.total, quote.currency_exponent) == (185, 1048, 3)


def test_discount_amount_off_never_exceeds_the_line():
    line = Line("1", "x", 2, 100, discount=Discount(code="BIG", amount_off=500))
    quote = price("q1", "USD", [line], assessed({}), NOW)
    assert (quote.discount_total, quote.total, quote.lines[0].discount_code) == (200, 0, "BIG")


def test_taxable_lines_are_net_of_discount():
    lines = [Line("1", "x", 2, 100, discount=Discount(amount_off=50)), Line("2", "y", 1, 7)]
    assert [t.net_amount for t in taxable_lines(lines, "USD")] == [150, 7]


def test_a_quote_without_lines_is_checkout_empty():
    with pytest.raises(DomainError) as caught:
        price("q1", "USD", [], assessed({}), NOW)
    assert caught.value.reason == "CHECKOUT_EMPTY"


def test_a_total_beyond_int64_is_out_of_range():
    lines = [Line(str(i), "x", 1_000_000, 1_000_000_000_000) for i in range(10)]
    with pytest.raises(DomainError) as caught:
        price("q1", "USD", lines, assessed({}), NOW)
    assert caught.value.reason == "AMOUNT_OUT_OF_RANGE"


def test_breakdown_sums_the_same_rate_over_lines():
    rate = TaxRate("DE", "VAT", 190_000)
    lines = [Line("1", "a", 1, 105), Line("2", "b", 1, 105)]
    quote = price("q1", "EUR", lines, assessed({"1": [rate], "2": [rate]}), NOW)
    # 19.95 cents per line -> 20 each; the breakdown is 40, not round(39.9) = 40 by luck.
    assert [(t.taxable_amount, t.tax_amount) for t in quote.tax_breakdown] == [(210, 40)]


# --- properties -------------------------------------------------------------------------

CURRENCIES = st.sampled_from(["JPY", "USD", "KWD"])
RATES = st.lists(
    st.builds(
        TaxRate,
        st.sampled_from(["DE", "US-CA", "US-NY"]),
        st.sampled_from(["VAT", "state", "local"]),
        st.integers(0, 1_000_000),
    ),
    max_size=3,
)
DISCOUNTS = st.one_of(
    st.none(),
    st.builds(Discount, amount_off=st.integers(1, 10**9)),
    st.builds(Discount, percent_off_bps=st.integers(1, 10_000)),
)


@st.composite
def carts(draw):
    count = draw(st.integers(1, 8))
    lines = [
        Line(
            str(i + 1),
            f"sku-{i}",
            draw(st.integers(1, 1_000_000)),
            draw(st.integers(0, 10**9)),
            discount=draw(DISCOUNTS),
        )
        for i in range(count)
    ]
    rates = {line.line_id: draw(RATES) for line in lines}
    return lines, rates


def exact_tax(net: int, rate_ppm: int, mode: RoundingMode) -> int:
    """An independent oracle: the tax from the exact rational via Fraction."""
    from fractions import Fraction  # noqa: PLC0415 - only the oracle needs it

    value = Fraction(net * rate_ppm, 1_000_000)
    floor = value.numerator // value.denominator
    rest = value - floor
    if rest > Fraction(1, 2) or (
        rest == Fraction(1, 2) and (mode is RoundingMode.HALF_UP or floor % 2 == 1)
    ):
        return floor + 1
    return floor


@settings(max_examples=300, deadline=None)
@given(carts(), CURRENCIES)
def test_line_sums_equal_totals_and_every_amount_is_an_exact_integer(cart, currency):
    lines, rates = cart
    quote = price("q", currency, lines, assessed(rates), NOW)
    assert quote.subtotal == sum(line.unit_price * line.quantity for line in lines)
    assert quote.discount_total == sum(line.discount_amount for line in quote.lines)
    assert quote.tax_total == sum(line.tax_amount for line in quote.lines)
    assert quote.tax_total == sum(t.tax_amount for t in quote.tax_breakdown)
    assert quote.total == sum(line.total for line in quote.lines)
    assert quote.total == quote.subtotal - quote.discount_total + quote.tax_total
    assert 0 <= quote.total <= MAX_AMOUNT
    for line in quote.lines:
        assert line.net_amount == line.subtotal - line.discount_amount >= 0
        assert line.tax_amount == sum(t.tax_amount for t in line.taxes)
        assert line.total == line.net_amount + line.tax_amount
        for tax in line.taxes:
            assert tax.tax_amount == exact_tax(line.net_amount, tax.rate_ppm, quote.rounding_mode)
            assert isinstance(tax.tax_amount, int)


@settings(max_examples=300, deadline=None)
@given(st.integers(-(10**15), 10**15), st.integers(1, 10**7))
def test_round_ratio_is_within_half_a_minor_unit_of_the_exact_value(numerator, denominator):
    for mode in RoundingMode:
        rounded = round_ratio(numerator, denominator, mode)
        assert abs(rounded * denominator - numerator) * 2 <= denominator


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(EXPONENTS)), st.integers(0, 10**12), st.integers(0, 1_000_000))
def test_every_currency_rounds_tax_to_one_minor_unit_of_its_exponent(currency, amount, rate):
    quote = price(
        "q", currency, [Line("1", "x", 1, amount)], assessed({"1": [TaxRate("X", "t", rate)]}), NOW
    )
    assert quote.currency_exponent == EXPONENTS[currency]
    assert quote.lines[0].tax_amount == exact_tax(amount, rate, RoundingMode.HALF_UP)
