"""`python -m services.invoicing` serve, consume, relay and post-ledger as processes, from an
admin URL and the Pub/Sub API server: the consumer turns a CheckoutCompleted on
`checkout-events` into an invoice the server returns, the relay publishes its InvoiceIssued on
`invoicing-events`, the ledger poster posts the invoice's revenue/tax and payment journals to a
real ledger (as the self-signed `service:invoicing` identity), and every process drains on
SIGTERM."""

import asyncio
import os
import signal
import socket
import sys
import threading
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from commerce.invoicing.v1 import invoicing_service_pb2 as pb
from commerce.invoicing.v1 import invoicing_service_pb2_grpc as rpc
from commerce.invoicing.v1 import resources_pb2 as res
from services.chassis.db.provision import drop_service_database
from services.chassis.events import pubsub
from services.chassis.events.apply import apply_topology
from services.chassis.events.mesh import MESH_TOPOLOGY
from services.chassis.events.topology import events_topic
from services.invoicing.domain.commands import derived_id

pytestmark = pytest.mark.integration
PROJECT = "commerce-process-test"
SECRET = "invoicing-integration-test-hmac-secret-0123456789"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_serving(port: int, processes) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(600):
            assert all(p.returncode is None for p in processes), "a process exited early"
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.1)
    pytest.fail(f"nothing SERVING on {port}")


def _tap(subscriber):
    """Everything published on `invoicing-events`: (stream, ce-types seen, "InvoiceIssued seen")."""
    tap = pubsub.subscription_path(PROJECT, f"tap-{uuid.uuid4().hex[:8]}")
    subscriber.create_subscription(
        request={"name": tap, "topic": pubsub.topic_path(PROJECT, events_topic("invoicing"))}
    )
    published: list[str] = []
    seen = threading.Event()

    def on_message(message):
        published.append(message.attributes["ce-type"])
        if message.attributes["ce-type"] == "commerce.invoicing.v1.InvoiceIssued":
            seen.set()
        message.ack()

    return subscriber.subscribe(tap, on_message), published, seen


async def _publish_checkout(publisher, event):
    """As checkout's relay would: CloudEvents attributes, the order as ordering key."""
    attributes = {
        "ce-specversion": "1.0",
        "ce-id": str(uuid.uuid4()),
        "ce-type": "commerce.checkout.v1.CheckoutCompleted",
        "ce-source": "//commerce-mesh/checkout",
        "ce-subject": event.order,
        "ce-time": "2026-03-02T09:30:00Z",
        "content-type": "application/protobuf",
    }
    await pubsub.wait_published(
        publisher.publish(
            pubsub.topic_path(PROJECT, events_topic("checkout")),
            event.SerializeToString(),
            ordering_key=event.order,
            **attributes,
        )
    )


async def test_serve_consume_relay_and_post_ledger_processes(
    postgres_admin_url, pubsub_emulator, checkout_completed, bearer_token, ledger_server
):
    publisher, subscriber = pubsub.ordered_publisher(), pubsub.subscriber()
    apply_topology(MESH_TOPOLOGY, PROJECT, publisher, subscriber)
    tap_future, published, seen = _tap(subscriber)
    port, consumer_health, relay_health = free_port(), free_port(), free_port()
    poster_health = free_port()
    env = {
        **os.environ,
        "PUBSUB_PROJECT_ID": PROJECT,
        "COMMERCE_INVOICING_DATABASE_URL": postgres_admin_url.render_as_string(hide_password=False),
        "COMMERCE_INVOICING_PORT": str(port),
        "COMMERCE_INVOICING_AUTH__KEY": SECRET,
        "COMMERCE_INVOICING_AUTH__ALGORITHMS": '["HS256"]',
        "COMMERCE_INVOICING_GRACE_PERIOD_SECONDS": "2",
        # Several processes provision one database: they must agree on the role passwords.
        "COMMERCE_INVOICING_OWNER_PASSWORD": "owner-secret-for-tests",
        "COMMERCE_INVOICING_APP_PASSWORD": "app-secret-for-tests",
        "COMMERCE_INVOICING_LEDGER_ADDR": f"127.0.0.1:{ledger_server.port}",
        "COMMERCE_INVOICING_POSTER_IDLE_SECONDS": "0.1",
    }
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.invoicing", env=env
    )
    processes = [server]
    try:
        await wait_serving(port, processes)  # provisioned and migrated before the workers start
        for command, health in (
            ("consume", consumer_health),
            ("relay", relay_health),
            ("post-ledger", poster_health),
        ):
            worker_env = {**env, "COMMERCE_INVOICING_WORKER__HEALTH_PORT": str(health)}
            processes.append(
                await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "services.invoicing", command, env=worker_env
                )
            )
            await wait_serving(health, processes)
        tenant = f"t{uuid.uuid4().hex[:8]}"
        event = checkout_completed(tenant, "o-process")
        await _publish_checkout(publisher, event)
        name = f"tenants/{tenant}/invoices/{derived_id(event.order)}"
        metadata = (("authorization", f"Bearer {bearer_token(tenant)}"),)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = rpc.InvoicingServiceStub(channel)
            reply = None
            for _ in range(300):
                try:
                    reply = await stub.GetInvoice(
                        pb.GetInvoiceRequest(name=name), metadata=metadata
                    )
                    break
                except grpc.aio.AioRpcError as error:
                    if error.code() != grpc.StatusCode.NOT_FOUND:
                        raise
                    await asyncio.sleep(0.1)
        assert reply is not None, "the consumer never issued the invoice"
        assert reply.invoice.state == res.INVOICE_STATE_PAID
        assert await asyncio.to_thread(seen.wait, 30), published
        movements: list[str] = []
        for _ in range(300):
            movements = sorted(e.metadata["movement"] for e in await ledger_server.entries(tenant))
            if len(movements) == 2:
                break
            await asyncio.sleep(0.1)
        assert movements == ["apply/" + event.payment, "issue"]
        assert await ledger_server.balance(tenant, "invoicing-revenue-eur") == -3998
        assert await ledger_server.balance(tenant, "invoicing-receivable-eur") == 0
        for process in reversed(processes):
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), timeout=30) == 0
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
        tap_future.cancel()
        publisher.stop()
        subscriber.close()
        await drop_service_database(postgres_admin_url, "invoicing")
