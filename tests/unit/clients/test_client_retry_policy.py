"""The retry budget and full-jitter backoff on their own, with a fake clock and seeded random."""

import random
from types import SimpleNamespace
from typing import cast

import pytest
from tenacity import RetryCallState

from clients import RetryBudget, RetryPolicy
from clients.retry import FullJitterWait


def test_budget_allows_the_minimum_then_refuses(fake_time):
    budget = RetryBudget(ratio=0.0, min_retries=3, window=10.0, clock=fake_time.clock)

    assert [budget.try_spend() for _ in range(4)] == [True, True, True, False]


def test_budget_earns_a_fraction_of_a_retry_per_call(fake_time):
    budget = RetryBudget(ratio=0.25, min_retries=0, window=10.0, clock=fake_time.clock)
    for _ in range(8):
        budget.record_call()

    assert [budget.try_spend() for _ in range(3)] == [True, True, False]


def test_budget_refills_as_old_retries_leave_the_window(fake_time):
    budget = RetryBudget(ratio=0.0, min_retries=2, window=10.0, clock=fake_time.clock)
    assert budget.try_spend()
    fake_time.now += 6
    assert budget.try_spend()
    assert not budget.try_spend()

    fake_time.now += 5  # the first retry is now older than the window

    assert budget.try_spend()
    assert not budget.try_spend()
    fake_time.now += 60
    assert budget.available() == 2


def test_full_jitter_waits_stay_between_zero_and_the_capped_exponential_bound():
    policy = RetryPolicy(initial_backoff=0.1, backoff_multiplier=2.0, max_backoff=1.0)
    wait = FullJitterWait(policy, random.Random(7).uniform)  # noqa: S311 - seeded on purpose
    bounds = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]

    for retry_number, bound in enumerate(bounds, start=1):
        state = cast("RetryCallState", SimpleNamespace(attempt_number=retry_number))
        samples = [wait(state) for _ in range(200)]
        assert all(0.0 <= s <= bound for s in samples)
        assert max(samples) > 0.8 * bound  # the whole range is used, not just its start
        assert min(samples) < 0.2 * bound


@pytest.mark.parametrize(
    "settings",
    [
        {"max_attempts": 0},
        {"initial_backoff": 0},
        {"initial_backoff": 3.0, "max_backoff": 2.0},
        {"backoff_multiplier": 0.5},
        {"attempt_timeout": 0},
        {"min_attempt_time": -1},
    ],
)
def test_retry_policy_rejects_nonsense(settings):
    with pytest.raises(ValueError, match=r"must|need"):
        RetryPolicy(**settings)


def test_disabled_policy_sends_once():
    assert RetryPolicy.disabled().max_attempts == 1
