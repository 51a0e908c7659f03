"""The crash matrix: a checkout process is killed (`os._exit`, the crash test hook) at a saga
checkpoint while placing an order against the real payments service, the sandbox PSP and the
ledger; a recovery worker in another process resumes it. Every order must end
confirmed-and-charged-once or failed-and-not-charged, never charged twice, never charged
without an order, and the ledger must agree.

20 runs by default (`make test`); `CHECKOUT_SOAK=1` runs 200. Processes come from a
multiprocessing forkserver that has imported checkout once, so a run costs a fork, not an
interpreter start.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import socket
from dataclasses import dataclass
from typing import Any

import doomed_checkout  # type: ignore[import-not-found]  # beside this file
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import text

from commerce.checkout.v1 import checkout_service_pb2 as pb
from commerce.checkout.v1 import checkout_service_pb2_grpc as rpc
from commerce.checkout.v1 import order_pb2 as opb
from commerce.checkout.v1 import resources_pb2 as res
from services.checkout.recovery import RecoveryWorker
from services.payments.sandbox.books import SandboxError

SOAK = os.environ.get("CHECKOUT_SOAK") == "1"
RUNS = 200 if SOAK else 20
BATCH = 5
# (crash point, payment token, PSP behaviour): every step of the saga, compensations included.
# "capture_down": the PSP answers 503 to this order's captures (nothing done), so the capture
# step gives up and the authorization is voided. "refuse_confirmation": confirmation fails
# after the capture (doomed_checkout.py), so the capture is refunded.
MATRIX = (
    ("placed", "pm_sandbox_ok", "ok"),
    ("authorize.before", "pm_sandbox_ok", "ok"),
    ("authorize.after", "pm_sandbox_ok", "ok"),
    ("capture.before", "pm_sandbox_ok", "ok"),
    ("capture.after", "pm_sandbox_ok", "ok"),
    ("confirm.before", "pm_sandbox_ok", "ok"),
    ("confirm.after", "pm_sandbox_ok", "ok"),
    ("authorize.before", "pm_sandbox_decline", "ok"),
    ("authorize.after", "pm_sandbox_decline", "ok"),
    ("void.before", "pm_sandbox_ok", "capture_down"),
    ("void.after", "pm_sandbox_ok", "capture_down"),
    ("refund.before", "pm_sandbox_ok", "refuse_confirmation"),
    ("refund.after", "pm_sandbox_ok", "refuse_confirmation"),
    ("confirm.before", "pm_sandbox_ok", "refuse_confirmation"),
    ("placed", "pm_sandbox_insufficient_funds", "ok"),
)
CUSTOMER_FUNDS = "payments-customer-funds-usd"


def free_ports(count: int) -> list[int]:
    """Distinct free ports: the probes stay bound until all are chosen (gRPC binds with
    SO_REUSEPORT, so two processes given one port would silently share it)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


@pytest.fixture(scope="module")
def forkserver() -> Any:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["services.checkout.bootstrap"])
    return context


@dataclass
class Run:
    point: str
    token: str
    behaviour: str
    price: int  # unique per run: the PSP recognises the run's authorization by its amount
    port: int
    process: Any
    order: str = ""


class MisbehavingPsp:
    """Makes the sandbox PSP misbehave for chosen authorizations (by amount)."""

    def __init__(self, mesh: Any) -> None:
        self.books = mesh.sandbox.state.books
        self.behaviours: dict[int, str] = {}
        self._capture = self.books.capture
        self.books.capture = self.capture  # an instance attribute shadows the method

    def capture(self, authorization_id: str, amount_minor: Any, *, final: bool, now: Any) -> Any:
        auth = self.books.authorization(authorization_id)
        behaviour = self.behaviours.get(auth.amount_minor, "ok")
        if behaviour == "capture_down":
            raise SandboxError(503, "api_error", "unavailable", "capture outage; nothing done")
        return self._capture(authorization_id, amount_minor, final=final, now=now)

    def restore(self) -> None:
        del self.books.capture


def environment(mesh, secret: str, port: int, point: str) -> dict[str, str]:
    return {
        "COMMERCE_CHECKOUT_PORT": str(port),
        "COMMERCE_CHECKOUT_DATABASE_URL": mesh.checkout_app_url.render_as_string(
            hide_password=False
        ),
        "COMMERCE_CHECKOUT_DATABASE_POOL_SIZE": "2",
        "COMMERCE_CHECKOUT_AUTH__KEY": secret,
        "COMMERCE_CHECKOUT_AUTH__ALGORITHMS": '["HS256"]',
        "COMMERCE_CHECKOUT_PAYMENTS_ADDR": f"127.0.0.1:{mesh.payments_port}",
        "COMMERCE_CHECKOUT_CRASH_AT": point,
        "COMMERCE_CHECKOUT_SAGA__LEASE_SECONDS": "1",
        "COMMERCE_CHECKOUT_SAGA__MAX_ATTEMPTS": "2",
        "COMMERCE_CHECKOUT_SAGA__RECOVER_IN_SERVER": "false",
        "COMMERCE_CHECKOUT_LOG_LEVEL": "WARNING",
    }


async def ready(port: int, process: Any, seconds: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while loop.time() < deadline:
            assert process.is_alive(), "the checkout process died while starting"
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("checkout did not become ready")


async def crash_one(shopper: Any, psp: MisbehavingPsp, run_: Run) -> None:
    """Place an order on the doomed process; it dies at its checkpoint mid-call."""
    checkout = await shopper.quoted(shopper.line("mug", 1, run_.price))
    psp.behaviours[checkout.quote.total.amount_minor] = run_.behaviour
    request = shopper.place_request(checkout, token=run_.token)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{run_.port}") as channel:
        stub = rpc.CheckoutServiceStub(channel)
        code = grpc.StatusCode.OK
        try:
            reply = await stub.PlaceOrder(request, metadata=shopper.metadata, timeout=30)
        except grpc.aio.AioRpcError as error:
            code = error.code()
        if code is grpc.StatusCode.OK:
            # The call's ~10 s budget ran out first (a compensation after retries): the saga
            # went on in the background, so the process dies there instead.
            assert reply.order.state != opb.ORDER_STATE_CONFIRMED, run_.point
        else:
            assert code is grpc.StatusCode.UNAVAILABLE, code  # it died mid-call
    await asyncio.to_thread(run_.process.join, 60)
    assert run_.process.exitcode == 17, f"{run_.point}: exit code {run_.process.exitcode}"
    got = await shopper.call("GetCheckout", pb.GetCheckoutRequest(name=checkout.name))
    run_.order = got.checkout.order
    assert run_.order, "PlaceOrder persisted the order before the first checkpoint"


async def recover_all(mesh, checkout_server, runs: list[Run], shopper) -> None:
    _, leases, saga = checkout_server.process
    worker = RecoveryWorker(saga, leases, interval=0.2, batch=100, budget=20)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    pending = {r.order for r in runs}
    while pending and loop.time() < deadline:
        await worker.recover_once()
        for name in list(pending):
            status = await shopper.call("GetOrderStatus", pb.GetOrderStatusRequest(name=name))
            if status.done:
                pending.discard(name)
        await asyncio.sleep(0.3)
    stuck = [describe(await shopper.order(name)) for name in pending]
    assert not pending, f"orders not recovered: {stuck}"


def describe(order: Any) -> str:
    steps = [
        f"{opb.SagaStepType.Name(x.type)}:{opb.SagaStepState.Name(x.state)}"
        f"x{x.attempt_count}:{x.error_reason}:{x.error_message[:80]}"
        for x in order.saga_steps
    ]
    return f"{order.name} {opb.OrderState.Name(order.state)} {steps}"


async def check_run(shopper, mesh, run_: Run) -> int:
    """The invariants for one order; returns what it charged (minor units)."""
    order = await shopper.order(run_.order)
    total: int = order.quote.total.amount_minor
    payments = await shopper.payments_for(order.name)
    assert len(payments) <= 1, "one payment per order"
    authorizations = mesh.psp_authorizations(order.name)
    assert len(authorizations) <= 1, "one authorization at the PSP per order"
    captured_psp = sum(a.amount_captured_minor - a.amount_refunded_minor for a in authorizations)
    captures = [
        e
        for a in authorizations
        for e in mesh.sandbox.state.books.settlement
        if e.authorization == a.id and e.type == "capture"
    ]
    checkout = (
        await shopper.call("GetCheckout", pb.GetCheckoutRequest(name=order.checkout))
    ).checkout
    async with mesh.checkout_database.tenant_transaction(shopper.tenant) as session:
        completed = (
            await session.execute(
                text(
                    "SELECT count(*) FROM outbox WHERE subject = :s"
                    " AND type = 'commerce.checkout.v1.CheckoutCompleted'"
                ),
                {"s": order.name},
            )
        ).scalar_one()
    where = f"{run_.point} / {run_.token}: {describe(order)}"
    if order.state == opb.ORDER_STATE_CONFIRMED:
        assert run_.token == "pm_sandbox_ok", where
        assert captured_psp == total, where
        assert len(captures) == 1, f"{where}: charged {len(captures)} times"
        (payment,) = payments
        assert payment.amount_captured.amount_minor == total, where
        assert checkout.state == res.CHECKOUT_STATE_COMPLETED, where
        assert completed == 1, where
        return total
    # Failed and not charged: declined (FAILED), or compensated (VOIDED / REFUNDED) when an
    # overloaded payments service made a step give up.
    failed = {opb.ORDER_STATE_FAILED, opb.ORDER_STATE_VOIDED, opb.ORDER_STATE_REFUNDED}
    assert order.state in failed, where
    if run_.behaviour == "capture_down":
        assert order.state == opb.ORDER_STATE_VOIDED, where
        assert [a.status for a in authorizations] == ["voided"], where
    if run_.behaviour == "refuse_confirmation":
        assert order.state == opb.ORDER_STATE_REFUNDED, where
        assert [len(a.refunds) for a in authorizations] == [1], f"{where}: refunds"
    if order.state == opb.ORDER_STATE_FAILED:
        assert run_.token != "pm_sandbox_ok", where
    assert captured_psp == 0, where
    assert completed == 0, where
    assert checkout.state == res.CHECKOUT_STATE_OPEN, where
    return 0


@pytest.mark.timeout(1800 if SOAK else 300)
async def test_every_crash_ends_charged_once_or_not_at_all(
    mesh, shopper, start_checkout, forkserver, jwt_secret
):
    refused_prices: set[int] = set()  # filled as runs are planned; the recovery refuses too

    def confirmation(order: Any) -> tuple[str, str] | None:
        check = doomed_checkout.refusing(frozenset(refused_prices))
        result: tuple[str, str] | None = check(order)
        return result

    recovery_server = await start_checkout(lease_seconds=1.0, confirmation=confirmation)
    psp = MisbehavingPsp(mesh)
    try:
        await crash_matrix(
            mesh, shopper, recovery_server, forkserver, jwt_secret, psp, refused_prices
        )
    finally:
        psp.restore()


async def crash_matrix(  # noqa: PLR0917 - the test's fixtures, passed on
    mesh: Any,
    shopper: Any,
    recovery_server: Any,
    forkserver: Any,
    jwt_secret: str,
    psp: Any,
    refused_prices: set[int],
) -> None:
    charged = 0
    runs: list[Run] = []
    for start in range(0, RUNS, BATCH):
        batch: list[Run] = []
        indexes = range(start, min(start + BATCH, RUNS))
        for index, port in zip(indexes, free_ports(len(indexes)), strict=True):
            point, token, behaviour = MATRIX[index % len(MATRIX)]
            price = 1000 + index  # a distinct total per run
            refused = frozenset({price} if behaviour == "refuse_confirmation" else ())
            refused_prices.update(refused)
            process = forkserver.Process(
                target=doomed_checkout.serve,
                args=(environment(mesh, jwt_secret, port, point), refused),
                daemon=True,
            )
            process.start()
            batch.append(Run(point, token, behaviour, price, port, process))
        try:
            await asyncio.gather(*(ready(r.port, r.process) for r in batch))
            await asyncio.gather(*(crash_one(shopper, psp, r) for r in batch))
        finally:
            for r in batch:
                if r.process.is_alive():
                    r.process.kill()
                    r.process.join(10)
        await recover_all(mesh, recovery_server, batch, shopper)
        for r in batch:
            charged += await check_run(shopper, mesh, r)
        runs += batch
    assert len(runs) == RUNS
    # Never charged without an order: every PSP authorization of this tenant's orders is an
    # order we placed, and the ledger holds exactly what the confirmed orders charged.
    names = {r.order.rsplit("/", 1)[-1] for r in runs}
    ours = [
        a
        for a in mesh.sandbox.state.books.authorizations.values()
        if a.description.removeprefix("order ") in names
    ]
    assert sum(a.amount_captured_minor - a.amount_refunded_minor for a in ours) == charged
    balance = await shopper.ledger_balance(CUSTOMER_FUNDS)
    assert (balance.posted.amount_minor, balance.pending.amount_minor) == (charged, 0)
