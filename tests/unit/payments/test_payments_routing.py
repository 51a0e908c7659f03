"""Routing rules: first match by currency, amount and method; defaults; hints; NO_ROUTE."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.chassis.errors import InvalidArgument
from services.payments.domain.methods import PaymentMethodType as M
from services.payments.domain.money import Money
from services.payments.domain.routing import RoutingConfig, RoutingHints, RoutingRule, route

EUR_LARGE = RoutingRule(
    rule_id="eur-cards-large",
    currency_code="EUR",
    min_amount_minor=100_000,
    psps=("adyen", "stripe"),
    payment_method_types=frozenset({M.CARD}),
)
EUR_SMALL = RoutingRule(
    rule_id="eur-small",
    currency_code="EUR",
    max_amount_minor=99_999,
    psps=("stripe", "sandbox"),
)
WALLETS = RoutingRule(
    rule_id="wallets", psps=("sandbox",), payment_method_types=frozenset({M.WALLET})
)
CONFIG = RoutingConfig(rules=(EUR_LARGE, EUR_SMALL, WALLETS), default_psps=("sandbox", "stripe"))


def eur(minor):
    return Money(minor, "EUR")


@pytest.mark.parametrize(
    ("amount", "method", "expected_psps", "expected_rule"),
    [
        (eur(100_000), M.CARD, ("adyen", "stripe"), "eur-cards-large"),
        (eur(5_000_000), M.CARD, ("adyen", "stripe"), "eur-cards-large"),
        (eur(99_999), M.CARD, ("stripe", "sandbox"), "eur-small"),
        (eur(100_000), M.BANK_DEBIT, ("sandbox", "stripe"), None),
        (eur(1), M.WALLET, ("stripe", "sandbox"), "eur-small"),
        (Money(1, "USD"), M.WALLET, ("sandbox",), "wallets"),
        (Money(1, "USD"), M.CARD, ("sandbox", "stripe"), None),
    ],
)
def test_first_matching_rule_gives_the_psps(amount, method, expected_psps, expected_rule):
    chosen = route(CONFIG, amount, method)
    assert chosen.psps == expected_psps
    assert chosen.rule_id == expected_rule


def test_amount_bounds_are_inclusive_and_zero_max_is_unbounded():
    rule = RoutingRule(
        rule_id="r", currency_code="USD", min_amount_minor=10, max_amount_minor=20, psps=("a1",)
    )
    assert [rule.matches(Money(m, "USD"), M.CARD) for m in (9, 10, 20, 21)] == [
        False,
        True,
        True,
        False,
    ]
    unbounded = RoutingRule(rule_id="u", currency_code="USD", min_amount_minor=10, psps=("a1",))
    assert unbounded.matches(Money(2**63 - 1, "USD"), M.CARD)


def test_preferred_psps_move_to_the_front_only_when_in_the_route():
    hints = RoutingHints(preferred_psps=("stripe", "unknown"))
    assert route(CONFIG, Money(1, "USD"), M.CARD, hints).psps == ("stripe", "sandbox")


def test_excluded_psps_are_dropped_even_when_preferred():
    hints = RoutingHints(preferred_psps=("stripe",), excluded_psps=("stripe",))
    assert route(CONFIG, Money(1, "USD"), M.CARD, hints).psps == ("sandbox",)


def test_psps_without_a_connector_are_dropped():
    assert route(CONFIG, eur(100_000), M.CARD, supported=["stripe"]).psps == ("stripe",)


def test_empty_configuration_routes_nowhere():
    assert route(RoutingConfig(), Money(1, "USD"), M.CARD).psps == ()


def test_amount_range_needs_a_currency():
    with pytest.raises(InvalidArgument):
        RoutingRule(rule_id="bad", min_amount_minor=1, psps=("a1",))


def test_amount_range_must_not_be_inverted():
    with pytest.raises(InvalidArgument):
        RoutingRule(
            rule_id="bad", currency_code="USD", min_amount_minor=5, max_amount_minor=4, psps=("a",)
        )


def test_rule_needs_distinct_psps_and_config_distinct_rule_ids():
    with pytest.raises(InvalidArgument):
        RoutingRule(rule_id="dup", psps=("a1", "a1"))
    with pytest.raises(InvalidArgument):
        RoutingConfig(rules=(WALLETS, WALLETS))


PSPS = st.sampled_from(["adyen", "stripe", "sandbox", "braintree", "mollie"])


@given(
    st.integers(min_value=1, max_value=2**63 - 1),
    st.sampled_from(list(M)),
    st.sampled_from(["EUR", "USD"]),
    st.lists(PSPS, unique=True, max_size=4),
    st.lists(PSPS, unique=True, max_size=4),
)
def test_route_is_an_ordered_subset_without_excluded_or_duplicate_psps(
    amount, method, currency, preferred, excluded
):
    hints = RoutingHints(tuple(preferred), tuple(excluded))
    chosen = route(CONFIG, Money(amount, currency), method, hints)
    candidates = route(CONFIG, Money(amount, currency), method).psps
    assert set(chosen.psps) <= set(candidates)
    assert len(set(chosen.psps)) == len(chosen.psps)
    assert not set(chosen.psps) & set(excluded)
    front = [p for p in preferred if p in candidates and p not in excluded]
    assert list(chosen.psps[: len(front)]) == front
