"""What one PlaceOrder costs checkout's database: transactions and statements, counted on a
checkout server with an engine of its own (so nothing else in the session is counted), on the
happy path against the real payments service. The figures are ADR 0022's; the bounds keep a
change from quietly adding round trips back."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from sqlalchemy import event

from commerce.checkout.v1 import checkout_service_pb2_grpc as rpc
from commerce.checkout.v1 import order_pb2 as opb
from services.chassis.db.database import Database
from services.chassis.server import start_server
from services.checkout import bootstrap as checkout_bootstrap
from services.checkout.config import ERROR_DOMAIN
from tests.integration.checkout.conftest import Shopper, checkout_settings, route_to_sandbox

# The happy path: place (claim, order with its first attempt and lease, checkout, event),
# authorize's outcome with the capture's attempt, capture's outcome with the confirmation
# (order, checkout, event). ADR 0022 lists the statements.
TRANSACTIONS = 3
STATEMENTS = 13


class Counting:
    """Counts the commits and the statements sent through one engine."""

    def __init__(self, database: Database) -> None:
        self.counts: Counter[str] = Counter()
        self.statements: list[str] = []
        self._engine = database.engine.sync_engine
        event.listen(self._engine, "before_cursor_execute", self._statement)
        event.listen(self._engine, "commit", self._commit)
        event.listen(self._engine, "rollback", self._rollback)

    def _statement(self, *args: Any) -> None:
        self.counts["statements"] += 1
        self.statements.append(str(args[2]).split("\n", 1)[0][:90])

    def _commit(self, *_: Any) -> None:
        self.counts["commits"] += 1

    def _rollback(self, *_: Any) -> None:
        self.counts["rollbacks"] += 1

    def reset(self) -> None:
        self.counts.clear()
        self.statements.clear()


@pytest.fixture
async def counted(mesh) -> AsyncIterator[tuple[Shopper, Counting]]:
    database = Database.connect(mesh.checkout_app_url, pool_size=5, max_overflow=5)
    counting = Counting(database)
    settings = checkout_settings(mesh)
    client, channel = checkout_bootstrap.payments_client(settings)
    runner, _, saga = checkout_bootstrap.build_saga(settings, database, client)
    api = checkout_bootstrap.build_api(settings, runner, saga)
    server = await start_server(
        settings, [checkout_bootstrap.registration(api)], error_domain=ERROR_DOMAIN
    )
    server.on_drain.append(api.drain)
    tenant = f"t{uuid.uuid4().hex[:10]}"
    await route_to_sandbox(mesh, tenant)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as stub_channel:
        try:
            yield Shopper(mesh, rpc.CheckoutServiceStub(stub_channel), tenant), counting
        finally:
            await server.stop()
            await channel.close(None)
            await database.dispose()


async def test_a_place_order_takes_three_transactions(counted):
    shopper, counting = counted
    for _ in range(2):  # the second is counted: the first warms caches (tenant registered)
        quoted = await shopper.quoted(shopper.line("mug", 1, 1500))
        counting.reset()
        order = (await shopper.call("PlaceOrder", shopper.place_request(quoted))).order
        assert order.state == opb.ORDER_STATE_CONFIRMED
    assert counting.counts["commits"] == TRANSACTIONS, counting.statements
    assert counting.counts["rollbacks"] == 0, counting.statements
    assert counting.counts["statements"] <= STATEMENTS, counting.statements
