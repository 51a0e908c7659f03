"""Subjects are tenant resource names; their tenant decides the consumer's RLS tenant."""

import pytest

from services.chassis.events.subject import InvalidSubjectError, tenant_of_subject


def test_the_tenant_is_the_first_segment_after_tenants():
    assert tenant_of_subject("tenants/acme/payments/p1/refunds/r1") == "acme"


@pytest.mark.parametrize(
    "subject", ["", "tenants/acme", "tenants/acme/", "orders/o1", "tenants/AC/orders/o1", None]
)
def test_anything_else_is_refused(subject):
    with pytest.raises(InvalidSubjectError):
        tenant_of_subject(subject)
