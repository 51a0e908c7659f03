"""`python -m services.payments` with the deployment's settings: provisions its database from
an admin URL, reads PSPs from the credentials file, calls the real ledger with a service
token, takes webhooks over HTTP, serves, and drains on SIGTERM."""

import asyncio
import os
import signal
import socket
import sys
from datetime import UTC, datetime, timedelta

import grpc
import httpx
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc

from commerce.payments.v1 import payments_service_pb2 as pb
from commerce.payments.v1 import payments_service_pb2_grpc as rpc
from commerce.payments.v1 import reconciliation_pb2 as rpb
from commerce.payments.v1 import resources_pb2 as res
from commerce.payments.v1 import routing_pb2 as rt
from services.chassis.db.provision import drop_service_database
from services.payments.sandbox.config import SandboxConfig
from services.payments.sandbox.server import start_sandbox
from tests.integration.payments.conftest import (
    JWT_SECRET,
    WEBHOOK_SECRET,
    jwt_token,
    money,
    new_request_id,
)

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_serving(port: int, process) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(600):
            assert process.returncode is None, "payments exited early"
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.1)
    pytest.fail("payments never reported SERVING")


async def reconcile_through_the_process(stub, parent, metadata, sandbox_url: str) -> None:
    """RunReconciliation as wired by bootstrap: the sandbox PSP's settlement URL is allowed,
    the run reads storage and the ledger, posts settlement and fee entries, and succeeds."""
    now = datetime.now(UTC)
    start, end = Timestamp(), Timestamp()
    start.FromDatetime(now - timedelta(hours=1))
    end.FromDatetime(now + timedelta(hours=1))
    first, last = (now - timedelta(hours=1)).date(), (now + timedelta(hours=1)).date()
    started = await stub.RunReconciliation(
        pb.RunReconciliationRequest(
            parent=parent,
            psp="sandbox",
            start_time=start,
            end_time=end,
            settlement_report=f"{sandbox_url}/v1/settlements?from={first}&to={last}",
            request_id=new_request_id(),
        ),
        metadata=metadata,
    )
    for _ in range(200):
        got = await stub.GetReconciliationReport(
            pb.GetReconciliationReportRequest(name=started.report.name), metadata=metadata
        )
        if got.report.state != rpb.RECONCILIATION_STATE_RUNNING:
            break
        await asyncio.sleep(0.05)
    assert got.report.state == rpb.RECONCILIATION_STATE_SUCCEEDED, got.report.failure_reason
    assert (got.report.matched_count, got.report.difference_count) == (1, 0)


async def test_the_process_serves_payments_end_to_end(postgres_admin_url, ledger_stack, tmp_path):
    sandbox = await start_sandbox(config=SandboxConfig(), webhook_secret=WEBHOOK_SECRET)
    credentials = tmp_path / "psp-credentials.toml"
    credentials.write_text(
        f'[psps.sandbox]\nkind = "sandbox"\nbase_url = "{sandbox.url}"\n'
        f'webhook_secret = "{WEBHOOK_SECRET.decode()}"\n'
    )
    port, webhook_port = free_port(), free_port()
    env = {
        **os.environ,
        "COMMERCE_PAYMENTS_DATABASE_URL": postgres_admin_url.render_as_string(hide_password=False),
        "COMMERCE_PAYMENTS_PORT": str(port),
        "COMMERCE_PAYMENTS_AUTH__KEY": JWT_SECRET,
        "COMMERCE_PAYMENTS_AUTH__ALGORITHMS": '["HS256"]',
        "COMMERCE_PAYMENTS_GRACE_PERIOD_SECONDS": "2",
        "COMMERCE_PAYMENTS_LEDGER_ADDR": f"127.0.0.1:{ledger_stack.port}",
        "COMMERCE_PAYMENTS_PSP__CREDENTIALS_FILE": str(credentials),
        "COMMERCE_PAYMENTS_WEBHOOK_HTTP_PORT": str(webhook_port),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.payments", "serve", env=env
    )
    tenant = "tprocess"
    parent = f"tenants/{tenant}"
    metadata = (("authorization", f"Bearer {jwt_token(tenant)}"),)
    try:
        await wait_serving(port, process)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = rpc.PaymentsServiceStub(channel)
            await stub.UpdateRoutingConfig(
                pb.UpdateRoutingConfigRequest(
                    routing_config=rt.RoutingConfig(
                        name=f"{parent}/routingConfig", default_psps=["sandbox"], etag='W/"0"'
                    ),
                    request_id=new_request_id(),
                ),
                metadata=metadata,
            )
            authorized = await stub.AuthorizePayment(
                pb.AuthorizePaymentRequest(
                    parent=parent,
                    order=f"{parent}/orders/o1",
                    amount=money(4_200),
                    payment_method=res.PaymentMethod(
                        token="pm_sandbox_ok",
                        type=res.PAYMENT_METHOD_TYPE_CARD,
                    ),
                    capture_method=res.CAPTURE_METHOD_MANUAL,
                    request_id=new_request_id(),
                ),
                metadata=metadata,
            )
            assert authorized.payment.state == res.PAYMENT_STATE_AUTHORIZED
            captured = await stub.CapturePayment(
                pb.CapturePaymentRequest(name=authorized.payment.name, request_id=new_request_id()),
                metadata=metadata,
            )
            assert captured.payment.state == res.PAYMENT_STATE_CAPTURED
            await reconcile_through_the_process(stub, parent, metadata, sandbox.url)
        async with httpx.AsyncClient() as client:
            forged = await client.post(
                f"http://127.0.0.1:{webhook_port}/v1/webhooks/sandbox",
                content=b"{}",
                headers={"Sandbox-Signature": "t=1,v1=00"},
            )
        assert forged.status_code == 401
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await sandbox.close()
        await drop_service_database(postgres_admin_url, "payments")
