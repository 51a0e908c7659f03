"""Redelivery backoff: exponential ceiling, capped, with full jitter below it."""

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.chassis.events.backoff import Backoff


def test_the_ceiling_doubles_per_attempt_up_to_the_maximum():
    backoff = Backoff(minimum_s=1.0, maximum_s=10.0)
    assert [backoff.ceiling(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


@given(attempt=st.integers(min_value=1, max_value=10_000), seed=st.integers())
def test_every_delay_lies_between_the_floor_and_the_ceiling(attempt, seed):
    backoff = Backoff(minimum_s=0.5, maximum_s=30.0, floor_s=0.1)
    delay = backoff.delay(attempt, random.Random(seed))  # noqa: S311 - test determinism
    assert 0.1 <= delay <= backoff.ceiling(attempt)


@pytest.mark.parametrize(
    ("minimum", "maximum", "floor"), [(2.0, 1.0, 0.0), (1.0, 2.0, 1.5), (1.0, 2.0, -1.0)]
)
def test_inconsistent_bounds_are_refused(minimum, maximum, floor):
    with pytest.raises(ValueError, match="backoff"):
        Backoff(minimum_s=minimum, maximum_s=maximum, floor_s=floor)
