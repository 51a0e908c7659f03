"""Routing: which PSPs an authorization goes to, in failover order, by per-tenant rules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from services.payments.domain import errors
from services.payments.domain.methods import PaymentMethodType
from services.payments.domain.money import Money


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingRule:
    """Mirrors `RoutingRule`: empty conditions match everything; `max_amount_minor` 0 = none."""

    rule_id: str
    psps: tuple[str, ...]
    currency_code: str = ""
    min_amount_minor: int = 0
    max_amount_minor: int = 0
    payment_method_types: frozenset[PaymentMethodType] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if not self.psps or len(set(self.psps)) != len(self.psps):
            raise errors.invalid_field(f"rules[{self.rule_id}].psps", "needs 1-8 distinct PSPs")
        has_range = self.min_amount_minor or self.max_amount_minor
        if has_range and not self.currency_code:
            raise errors.invalid_field(
                f"rules[{self.rule_id}]", "an amount range needs currency_code"
            )
        if self.max_amount_minor and self.max_amount_minor < self.min_amount_minor:
            raise errors.invalid_field(
                f"rules[{self.rule_id}].max_amount_minor", "must not be below min_amount_minor"
            )

    def matches(self, amount: Money, method_type: PaymentMethodType) -> bool:
        if self.currency_code and amount.currency != self.currency_code:
            return False
        if amount.amount_minor < self.min_amount_minor:
            return False
        if self.max_amount_minor and amount.amount_minor > self.max_amount_minor:
            return False
        return not self.payment_method_types or method_type in self.payment_method_types


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    """Mirrors `RoutingConfig`: rules in order (first match wins), then the default PSPs."""

    rules: tuple[RoutingRule, ...] = ()
    default_psps: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        ids = [rule.rule_id for rule in self.rules]
        if len(set(ids)) != len(ids):
            raise errors.invalid_field("rules", "rule ids must be distinct")


@dataclass(frozen=True, slots=True)
class RoutingHints:
    """Mirrors `RoutingHints`: PSPs to try first, and PSPs never to use, for one payment."""

    preferred_psps: tuple[str, ...] = ()
    excluded_psps: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Route:
    """The PSPs to try in order, and the rule that chose them (None: the defaults)."""

    psps: tuple[str, ...]
    rule_id: str | None


def route(
    config: RoutingConfig,
    amount: Money,
    method_type: PaymentMethodType,
    hints: RoutingHints = RoutingHints(),
    supported: Sequence[str] | None = None,
) -> Route:
    """The ordered PSP list for a payment; empty `psps` means NO_ROUTE.

    Preferred PSPs move to the front only if the matched list contains them ("when they
    support the payment"); excluded ones and PSPs without a connector (`supported`) drop out.
    """
    rule = next((r for r in config.rules if r.matches(amount, method_type)), None)
    candidates = rule.psps if rule else config.default_psps
    preferred = [p for p in hints.preferred_psps if p in candidates]
    ordered = preferred + [p for p in candidates if p not in preferred]
    allowed = [
        p for p in ordered if p not in hints.excluded_psps and (supported is None or p in supported)
    ]
    return Route(tuple(allowed), rule.rule_id if rule else None)
