import pytest

from commerce.checkout.v1 import checkout_service_pb2 as checkout
from commerce.checkout.v1 import resources_pb2 as checkout_resources
from commerce.ledger.v1 import ledger_service_pb2 as ledger
from services.chassis.auth import Principal
from services.chassis.errors import PermissionDenied
from services.chassis.tenancy import _named_of, named_tenants, tenant_of

ACME_USER = Principal("u", "acme", frozenset({"storefront"}))
SERVICE = Principal("checkout", None, frozenset({"service:checkout"}))


def test_a_user_acts_for_its_own_tenant_named_by_name_or_parent():
    assert tenant_of(ACME_USER, ledger.GetAccountRequest(name="tenants/acme/accounts/a")) == "acme"
    assert tenant_of(ACME_USER, ledger.ListAccountsRequest(parent="tenants/acme")) == "acme"
    assert tenant_of(ACME_USER, ledger.VerifyChainRequest()) == "acme"


def test_a_user_naming_another_tenant_is_denied():
    with pytest.raises(PermissionDenied) as caught:
        tenant_of(ACME_USER, ledger.ListAccountsRequest(parent="tenants/globex"))
    assert caught.value.reason == "TENANT_MISMATCH"


def test_the_resource_name_inside_an_update_request_is_checked_too():
    request = checkout.UpdateCheckoutRequest(
        checkout=checkout_resources.Checkout(name="tenants/globex/checkouts/c1")
    )
    with pytest.raises(PermissionDenied):
        tenant_of(ACME_USER, request)


def test_a_service_identity_acts_for_the_tenant_the_request_names():
    assert tenant_of(SERVICE, ledger.ListAccountsRequest(parent="tenants/globex")) == "globex"


def test_a_request_naming_two_tenants_is_denied_even_for_a_service():
    request = checkout.UpdateCheckoutRequest(
        checkout=checkout_resources.Checkout(name="tenants/globex/checkouts/c1"),
    )
    request.update_mask.paths.append("lines")
    request2 = ledger.CreateAccountRequest(parent="tenants/acme")
    request2.account.name = "tenants/globex/accounts/x"
    with pytest.raises(PermissionDenied):
        tenant_of(SERVICE, request2)
    assert tenant_of(SERVICE, request) == "globex"


def test_the_compiled_tenant_lookup_finds_what_the_field_walk_finds():
    two_tenants = ledger.CreateAccountRequest(parent="tenants/acme")
    two_tenants.account.name = "tenants/globex/accounts/x"
    requests = [
        two_tenants,
        ledger.GetAccountRequest(name="tenants/acme/accounts/a"),
        ledger.ListAccountsRequest(parent="tenants/globex"),
        ledger.VerifyChainRequest(),
        checkout.UpdateCheckoutRequest(
            checkout=checkout_resources.Checkout(name="tenants/globex/checkouts/c1")
        ),
        checkout.PlaceOrderRequest(name="tenants/acme/checkouts/c", quote_id="tenants/x/y"),
        checkout.CreateCheckoutRequest(checkout=checkout_resources.Checkout(name="not a name")),
    ]
    for request in requests:
        assert _named_of(request) == set(named_tenants(request)), request
