"""The default RBAC policy speaks the contracts' language: every pattern grants something."""

import importlib
from pathlib import Path

import pytest

from services.chassis.access import access_rules
from services.chassis.auth import RbacPolicy
from services.chassis.config import DEFAULT_RBAC_POLICY

pytestmark = pytest.mark.contract

GEN = Path(__file__).resolve().parents[2] / "gen" / "python"


def _declared_permissions() -> set[str]:
    services = []
    for path in sorted((GEN / "commerce").rglob("*_service_pb2.py")):
        module = importlib.import_module(".".join(path.relative_to(GEN).with_suffix("").parts))
        services.extend(module.DESCRIPTOR.services_by_name.values())
    return {rule.permission for rule in access_rules(services).values()}


def test_every_pattern_of_the_default_policy_matches_a_declared_permission():
    policy = RbacPolicy.from_toml(DEFAULT_RBAC_POLICY)
    permissions = _declared_permissions()
    dead = [
        f"{role}: {pattern}"
        for role, patterns in policy.grants.items()
        for pattern in patterns
        if not any(RbacPolicy.from_mapping({"r": [pattern]}).allows(["r"], p) for p in permissions)
    ]
    assert dead == []


def test_the_storefront_can_place_and_follow_an_order_but_not_touch_the_ledger():
    policy = RbacPolicy.from_toml(DEFAULT_RBAC_POLICY)
    for permission in ("checkout.checkouts.create", "checkout.orders.place", "checkout.orders.get"):
        assert policy.allows(["storefront"], permission)
    assert not policy.allows(["storefront"], "ledger.entries.create")
    assert not policy.allows(["storefront"], "payments.payments.refund")
