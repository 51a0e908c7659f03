"""One typed client per service of the mesh: its stub on the shared call engine.

    ledger = LedgerClient(create_channel("127.0.0.1:50051"), settings)
    reply = await ledger.call(ledger.stub.GetAccount, GetAccountRequest(name=...))

`ledger.stub.GetAccount` is typed by the generated stubs, so a wrong request type is a mypy error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Unpack

import grpc

from clients.base import ClientSettings, EngineOptions, ServiceClient
from commerce.checkout.v1 import checkout_service_pb2_grpc
from commerce.invoicing.v1 import invoicing_service_pb2_grpc
from commerce.ledger.v1 import ledger_service_pb2_grpc
from commerce.payments.v1 import payments_service_pb2_grpc

if TYPE_CHECKING:  # the *AsyncStub types exist only in the generated .pyi stubs, so they are
    # named as strings in the base classes below, where ruff cannot see the use.
    from commerce.checkout.v1.checkout_service_pb2_grpc import CheckoutServiceAsyncStub  # noqa: F401 - used as a string type argument below
    from commerce.invoicing.v1.invoicing_service_pb2_grpc import InvoicingServiceAsyncStub  # noqa: F401 - used as a string type argument below
    from commerce.ledger.v1.ledger_service_pb2_grpc import LedgerServiceAsyncStub  # noqa: F401 - used as a string type argument below
    from commerce.payments.v1.payments_service_pb2_grpc import PaymentsServiceAsyncStub  # noqa: F401 - used as a string type argument below


class LedgerClient(ServiceClient["LedgerServiceAsyncStub"]):
    """commerce.ledger.v1.LedgerService: accounts, journal entries, holds, balances, chain."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        settings: ClientSettings | None = None,
        **engine: Unpack[EngineOptions],
    ) -> None:
        super().__init__(ledger_service_pb2_grpc.LedgerServiceStub(channel), settings, **engine)


class PaymentsClient(ServiceClient["PaymentsServiceAsyncStub"]):
    """commerce.payments.v1.PaymentsService: authorize, capture, void, refund, reconcile."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        settings: ClientSettings | None = None,
        **engine: Unpack[EngineOptions],
    ) -> None:
        super().__init__(payments_service_pb2_grpc.PaymentsServiceStub(channel), settings, **engine)


class CheckoutClient(ServiceClient["CheckoutServiceAsyncStub"]):
    """commerce.checkout.v1.CheckoutService: checkouts, quotes, orders."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        settings: ClientSettings | None = None,
        **engine: Unpack[EngineOptions],
    ) -> None:
        super().__init__(checkout_service_pb2_grpc.CheckoutServiceStub(channel), settings, **engine)


class InvoicingClient(ServiceClient["InvoicingServiceAsyncStub"]):
    """commerce.invoicing.v1.InvoicingService: invoices, credit notes, rendering, tie-out."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        settings: ClientSettings | None = None,
        **engine: Unpack[EngineOptions],
    ) -> None:
        super().__init__(
            invoicing_service_pb2_grpc.InvoicingServiceStub(channel),
            settings,
            **engine,
        )
