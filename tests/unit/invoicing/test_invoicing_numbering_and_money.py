"""Numbering formats and counters per reset period and time zone; money arithmetic invariants."""

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from services.invoicing.domain.money import allocate, split_inclusive, tax_at
from services.invoicing.domain.numbering import NumberingConfig, SequenceReset, Series


def test_the_default_series_number_like_inv_2026_000123():
    config = NumberingConfig()
    moment = datetime(2026, 5, 4, tzinfo=UTC)
    series = config.invoice_series
    assert series.format_number(123, moment, "UTC") == "INV-2026-000123"
    assert series.counter(moment, "UTC") == "INV/2026"
    assert config.credit_note_series.format_number(7, moment, "UTC") == "CN-2026-000007"


def test_year_and_month_come_from_the_configured_time_zone():
    series = Series("INV", "{prefix}-{yy}{month}-{seq:04}", SequenceReset.MONTHLY)
    new_year_in_berlin = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
    assert series.format_number(5, new_year_in_berlin, "Europe/Berlin") == "INV-2701-0005"
    assert series.counter(new_year_in_berlin, "Europe/Berlin") == "INV/2027-01"
    assert series.counter(new_year_in_berlin, "UTC") == "INV/2026-12"


def test_never_reset_series_have_one_counter_and_long_numbers_are_not_truncated():
    series = Series("A", "{prefix}{seq:03}", SequenceReset.NEVER)
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    assert series.counter(moment, "UTC") == "A"
    assert series.format_number(12345, moment, "UTC") == "A12345"
    assert (
        Series("B", "{prefix}.{seq}", SequenceReset.NEVER).format_number(9, moment, "UTC") == "B.9"
    )


def test_tax_rounds_half_up():
    assert tax_at(50, 190000) == 10  # 9.5
    assert tax_at(49, 190000) == 9  # 9.31
    assert tax_at(1000, 88750) == 89  # 88.75
    assert tax_at(-50, 190000) == -10


@given(st.integers(0, 10**12), st.lists(st.integers(0, 10**9), min_size=1, max_size=20))
def test_allocation_is_exact_and_proportional_within_one_unit(amount, weights):
    parts = allocate(amount, weights)
    assert sum(parts) == amount
    total = sum(weights)
    if total:
        for part, weight in zip(parts, weights, strict=True):
            assert abs(part * total - amount * weight) < total


@given(st.integers(0, 10**12), st.lists(st.integers(0, 1_000_000), max_size=5))
def test_an_inclusive_amount_splits_exactly_into_net_and_tax(gross, rates):
    net, taxes = split_inclusive(gross, rates)
    assert net + sum(taxes) == gross
    assert net >= 0
    assert all(t >= 0 for t in taxes)
