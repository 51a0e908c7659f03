"""Each per-service client wraps the stub of its own service, with every RPC of the contract."""

import grpc
import pytest

from clients.services import CheckoutClient, InvoicingClient, LedgerClient, PaymentsClient
from commerce.checkout.v1 import checkout_service_pb2
from commerce.invoicing.v1 import invoicing_service_pb2
from commerce.ledger.v1 import ledger_service_pb2
from commerce.payments.v1 import payments_service_pb2


@pytest.mark.parametrize(
    ("client_class", "descriptor"),
    [
        (LedgerClient, ledger_service_pb2.DESCRIPTOR.services_by_name["LedgerService"]),
        (PaymentsClient, payments_service_pb2.DESCRIPTOR.services_by_name["PaymentsService"]),
        (CheckoutClient, checkout_service_pb2.DESCRIPTOR.services_by_name["CheckoutService"]),
        (InvoicingClient, invoicing_service_pb2.DESCRIPTOR.services_by_name["InvoicingService"]),
    ],
)
async def test_client_stub_exposes_every_rpc_of_its_service(client_class, descriptor):
    async with grpc.aio.insecure_channel("127.0.0.1:9") as channel:
        client = client_class(channel)
        for method in descriptor.methods:
            assert callable(getattr(client.stub, method.name)), method.full_name
