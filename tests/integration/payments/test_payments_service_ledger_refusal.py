"""The ledger refusing a movement for good (here: the tenant's PSP-clearing account exists in
another currency) is not an outage: the payment still records what the PSP did and owes the
movement, but the next operation fails with FAILED_PRECONDITION / LEDGER_REJECTED and the
ledger's own code and reason — not UNAVAILABLE / LEDGER_UNAVAILABLE, which would tell the
caller to retry a request that can never pass."""

import pytest

from commerce.ledger.v1 import ledger_service_pb2 as lpb
from commerce.ledger.v1 import resources_pb2 as lres
from commerce.payments.v1 import payments_service_pb2 as pb
from commerce.payments.v1 import resources_pb2 as res
from tests.integration.payments.conftest import new_request_id

pytestmark = pytest.mark.integration


async def test_a_permanent_ledger_refusal_is_reported_as_such(payments):
    await payments.route("alpha")
    # The account payments would open for USD, already there in EUR: every USD hold on it
    # is refused by the ledger, however often it is retried.
    await payments.ledger.stub.CreateAccount(
        lpb.CreateAccountRequest(
            parent=payments.parent,
            account_id="payments-psp-clearing-usd",
            account=lres.Account(
                code="PAYMENTS-PSP-CLEARING-USD",
                display_name="PSP clearing, in the wrong currency",
                currency_code="EUR",
                type=lres.ACCOUNT_TYPE_ASSET,
            ),
            request_id=new_request_id(),
        ),
        metadata=payments.metadata,
    )
    payment = await payments.authorize(2_500)
    assert payment.state == res.PAYMENT_STATE_AUTHORIZED  # the PSP authorized it
    assert await payments.holds() == []

    code, info = await payments.fails(
        "CapturePayment", pb.CapturePaymentRequest(name=payment.name, request_id=new_request_id())
    )

    assert (code.name, info.reason) == ("FAILED_PRECONDITION", "LEDGER_REJECTED")
    assert info.metadata["ledger_code"] in {"INVALID_ARGUMENT", "FAILED_PRECONDITION"}
    assert info.metadata["ledger_reason"]
    # Nothing was captured at the PSP while the ledger refuses the authorization's hold.
    books = payments.alpha.state.books
    assert books.authorization(payment.psp_reference).amount_captured_minor == 0
    assert (await payments.get(payment.name)).state == res.PAYMENT_STATE_AUTHORIZED
