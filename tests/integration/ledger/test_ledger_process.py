"""`python -m services.ledger` from an admin URL: provisions, migrates, serves, drains."""

import asyncio
import os
import signal
import socket
import sys

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from commerce.ledger.v1 import ledger_service_pb2 as pb
from commerce.ledger.v1 import ledger_service_pb2_grpc as rpc
from commerce.ledger.v1 import resources_pb2 as res
from services.chassis.db.provision import drop_service_database

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_serving(port: int, process) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(300):
            assert process.returncode is None, "the ledger exited early"
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.1)
    pytest.fail("the ledger never reported SERVING")


async def test_the_process_provisions_its_database_serves_and_drains(postgres_admin_url, ledger):
    port = free_port()
    admin = postgres_admin_url.render_as_string(hide_password=False)
    env = {
        **os.environ,
        "COMMERCE_LEDGER_DATABASE_URL": admin,
        "COMMERCE_LEDGER_PORT": str(port),
        "COMMERCE_LEDGER_AUTH__KEY": "ledger-integration-test-hmac-secret-0123456789",
        "COMMERCE_LEDGER_AUTH__ALGORITHMS": '["HS256"]',
        "COMMERCE_LEDGER_GRACE_PERIOD_SECONDS": "2",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.ledger", env=env, stderr=asyncio.subprocess.PIPE
    )
    try:
        await wait_serving(port, process)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = rpc.LedgerServiceStub(channel)
            reply = await stub.CreateAccount(
                pb.CreateAccountRequest(
                    parent=ledger.parent,
                    account_id="cash",
                    account=res.Account(
                        code="1000",
                        display_name="Cash",
                        currency_code="USD",
                        type=res.ACCOUNT_TYPE_ASSET,
                    ),
                    request_id=ledger.new_request_id(),
                ),
                metadata=ledger.metadata,
            )
            assert reply.account.name == ledger.account("cash")
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=20) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await drop_service_database(postgres_admin_url, "ledger")
