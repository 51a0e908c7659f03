"""The rule-based tax provider and the timeout/fallback policy of the tax hook."""

from __future__ import annotations

import asyncio

import pytest

from services.chassis.errors import DomainError, Unavailable
from services.checkout.domain.cart import Address
from services.checkout.domain.tax import (
    DEFAULT_RULES,
    RuleBasedTaxProvider,
    TaxableLine,
    TaxCalculator,
    TaxRate,
    TaxRequest,
    TaxRule,
)

CA = Address("US", administrative_area="CA")


def request(address: Address, *codes: str) -> TaxRequest:
    lines = tuple(TaxableLine(str(i + 1), code, 1000) for i, code in enumerate(codes))
    return TaxRequest("USD", address, lines)


async def test_region_rules_add_to_country_rules_and_codes_replace_the_general_rate():
    provider = RuleBasedTaxProvider(DEFAULT_RULES)
    rates = await provider.rates(request(CA, "", "food"))
    assert [r.rate_ppm for r in rates["1"]] == [72_500, 22_500]
    assert rates["2"] == ()  # food is exempt in California


async def test_reduced_vat_for_a_product_tax_code():
    provider = RuleBasedTaxProvider(DEFAULT_RULES)
    rates = await provider.rates(request(Address("DE"), "", "food"))
    assert rates["1"] == (TaxRate("DE", "VAT", 190_000),)
    assert rates["2"] == (TaxRate("DE", "VAT", 70_000),)


async def test_an_address_without_rules_is_not_taxed():
    rates = await RuleBasedTaxProvider(DEFAULT_RULES).rates(request(Address("US", "OR"), ""))
    assert rates["1"] == ()


def test_a_rule_rate_above_100_percent_is_refused():
    with pytest.raises(ValueError, match="rate_ppm"):
        TaxRule("DE", "VAT", 1_000_001)


class Slow:
    name = "slow"

    async def rates(self, request):
        await asyncio.sleep(5)
        return {}


class Broken:
    name = "broken"

    async def rates(self, request):
        raise Unavailable("PROVIDER_DOWN", "down")


class Lying:
    name = "lying"

    async def rates(self, request):
        return {"nope": [TaxRate("X", "t", 1)]}


async def test_primary_answer_is_used_when_it_comes_in_time():
    calc = TaxCalculator(RuleBasedTaxProvider(DEFAULT_RULES, name="primary"), Broken(), 1.0)
    assessed = await calc.assess(request(CA, ""))
    assert (assessed.provider, assessed.fallback_used) == ("primary", False)


async def test_a_timed_out_provider_falls_back_and_says_why():
    calc = TaxCalculator(Slow(), RuleBasedTaxProvider(DEFAULT_RULES), timeout=0.05)
    assessed = await calc.assess(request(CA, ""))
    assert (assessed.provider, assessed.fallback_used) == ("static-rates", True)
    assert assessed.fallback_reason == "DEADLINE_EXCEEDED"
    assert len(assessed.rates["1"]) == 2


async def test_a_failing_provider_falls_back_with_its_reason():
    calc = TaxCalculator(Broken(), RuleBasedTaxProvider(DEFAULT_RULES), timeout=1)
    assessed = await calc.assess(request(CA, ""))
    assert assessed.fallback_reason == "PROVIDER_DOWN"


async def test_an_answer_about_unknown_lines_is_treated_as_a_failure():
    calc = TaxCalculator(Lying(), RuleBasedTaxProvider(DEFAULT_RULES), timeout=1)
    assessed = await calc.assess(request(CA, ""))
    assert (assessed.fallback_used, assessed.fallback_reason) == (True, "INVALIDTAXANSWERERROR")


async def test_both_failing_is_tax_unavailable():
    calc = TaxCalculator(Broken(), Slow(), timeout=0.05)
    with pytest.raises(DomainError) as caught:
        await calc.assess(request(CA, ""))
    assert caught.value.reason == "TAX_UNAVAILABLE"
    assert caught.value.kind.value == "UNAVAILABLE"
