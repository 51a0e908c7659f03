"""The ledger process (`python -m services.ledger`) exports its metrics on /metrics: the RED
series of every RPC called, by method and gRPC status, and the chain verification failures —
from the VerifyChain RPC and from the scheduled verification, which needs no caller.

Scraped over HTTP exactly as Prometheus does; the names are the ones
k8s/components/monitoring's dashboards and rules read."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import urllib.request
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from commerce.ledger.v1 import ledger_service_pb2 as pb
from commerce.ledger.v1 import ledger_service_pb2_grpc as rpc
from commerce.ledger.v1 import resources_pb2 as res
from tests.integration.ledger.conftest import SECRET, LedgerClient
from tests.integration.ledger.test_ledger_process import free_port, wait_serving

pytestmark = pytest.mark.integration

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass
class LedgerProcess:
    grpc_port: int
    metrics_port: int
    stub: rpc.LedgerServiceStub

    def scrape(self) -> list[tuple[str, dict[str, str], float]]:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read().decode()
        samples = []
        for line in body.splitlines():
            match = _SAMPLE.match(line)
            if match and not line.startswith("#"):
                labels = dict(_LABEL.findall(match["labels"] or ""))
                samples.append((match["name"], labels, float(match["value"])))
        return samples

    async def series(self, name: str, **labels: str) -> list[float]:
        """The values of `name`'s samples whose labels include `labels`."""
        samples = await asyncio.to_thread(self.scrape)
        return [v for n, found, v in samples if n == name and labels.items() <= found.items()]

    async def value(self, name: str, **labels: str) -> float:
        """The sum of `name`'s samples whose labels include `labels` (0 when there is none)."""
        samples = await asyncio.to_thread(self.scrape)
        return sum(v for n, found, v in samples if n == name and labels.items() <= found.items())


@pytest.fixture(scope="module")
async def process(ledger_database, service_database) -> AsyncIterator[LedgerProcess]:
    """The real ledger process on the module's migrated database, verifying every tenant's
    chain every half second."""
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "COMMERCE_LEDGER_DATABASE_URL": service_database.app_url.render_as_string(
            hide_password=False
        ),
        "COMMERCE_LEDGER_PORT": str(port),
        "COMMERCE_LEDGER_AUTH__KEY": SECRET,
        "COMMERCE_LEDGER_AUTH__ALGORITHMS": '["HS256"]',
        "COMMERCE_LEDGER_GRACE_PERIOD_SECONDS": "1",
        "COMMERCE_LEDGER_TELEMETRY__METRICS_PORT": str(metrics_port),
        "COMMERCE_LEDGER_TELEMETRY__METRICS_HOST": "127.0.0.1",
        "COMMERCE_LEDGER_CHAIN_VERIFY_INTERVAL_SECONDS": "0.5",
    }
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.ledger", env=env, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        await wait_serving(port, child)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield LedgerProcess(port, metrics_port, rpc.LedgerServiceStub(channel))
        child.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(child.wait(), timeout=20) == 0
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()


@pytest.fixture
def client(process) -> LedgerClient:
    return LedgerClient(process.stub, f"t{uuid.uuid4().hex[:10]}")


@pytest.fixture
async def superuser(postgres_admin_url, service_database):
    engine = create_async_engine(postgres_admin_url.set(database=service_database.name))
    yield engine
    await engine.dispose()


async def test_red_series_count_every_rpc_called_by_method_and_status(process, client):
    calls = "rpc_server_calls_total"
    before = {
        (method, status): await process.value(calls, rpc_method=method, rpc_grpc_status=status)
        for method, status in [
            ("CreateAccount", "OK"),
            ("CreateAccount", "INVALID_ARGUMENT"),
            ("GetAccount", "OK"),
            ("GetAccount", "NOT_FOUND"),
            ("GetAccount", "UNAUTHENTICATED"),
        ]
    }
    await client.open("cash")
    await client.open("sales", res.ACCOUNT_TYPE_REVENUE)
    await client.call("GetAccount", pb.GetAccountRequest(name=client.account("cash")))
    for _ in range(3):
        code, _info = await client.fails(
            "GetAccount", pb.GetAccountRequest(name=client.account("absent"))
        )
        assert code is grpc.StatusCode.NOT_FOUND
    code, _info = await client.fails(
        "CreateAccount",
        pb.CreateAccountRequest(
            parent=client.parent, account_id="Not An Id!", request_id=client.new_request_id()
        ),
    )
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await process.stub.GetAccount(pb.GetAccountRequest(name=client.account("cash")))
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED

    after = {
        key: await process.value(calls, rpc_method=key[0], rpc_grpc_status=key[1]) for key in before
    }
    assert {key: after[key] - before[key] for key in before} == {
        ("CreateAccount", "OK"): 2,
        ("CreateAccount", "INVALID_ARGUMENT"): 1,
        ("GetAccount", "OK"): 1,
        ("GetAccount", "NOT_FOUND"): 3,
        ("GetAccount", "UNAUTHENTICATED"): 1,
    }
    samples = await asyncio.to_thread(process.scrape)
    series = [
        labels
        for name, labels, _ in samples
        if name == calls and labels["rpc_method"] == "GetAccount"
    ]
    assert {s["rpc_service"] for s in series} == {"commerce.ledger.v1.LedgerService"}
    # The duration histogram has one observation per call, with the same labels.
    duration = "rpc_server_duration_milliseconds_count"
    assert await process.value(duration, rpc_method="GetAccount", rpc_grpc_status="NOT_FOUND") == (
        await process.value(calls, rpc_method="GetAccount", rpc_grpc_status="NOT_FOUND")
    )
    assert await process.value(
        "rpc_server_duration_milliseconds_bucket",
        rpc_method="GetAccount",
        rpc_grpc_status="NOT_FOUND",
        le="+Inf",
    ) == await process.value(calls, rpc_method="GetAccount", rpc_grpc_status="NOT_FOUND")


async def test_a_broken_chain_is_counted_per_tenant_without_anyone_calling_verify(
    process, client, superuser
):
    failures = "ledger_chain_verification_failures_total"
    await client.open("cash")
    await client.open("sales", res.ACCOUNT_TYPE_REVENUE)
    entries = [await client.post(("cash", 10 * i), ("sales", -10 * i)) for i in range(1, 4)]
    await asyncio.sleep(1.5)  # three scheduled passes over an intact chain
    # The series exists at 0 before any failure, so the alert's increase() sees the first.
    assert await process.series(failures, tenant=client.tenant) == [0]

    async with superuser.begin() as conn:
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
        await conn.execute(
            text(
                "UPDATE postings SET amount_minor = amount_minor * 10"
                " WHERE tenant_id = :t AND entry_id = :e"
            ),
            {"t": client.tenant, "e": entries[1].name.rsplit("/", 1)[1]},
        )
    for _ in range(100):  # the scheduled verification finds it on its own
        if await process.value(failures, tenant=client.tenant) > 0:
            break
        await asyncio.sleep(0.1)
    scheduled = await process.value(failures, tenant=client.tenant)
    assert scheduled >= 1

    reply = await client.call("VerifyChain", pb.VerifyChainRequest(parent=client.parent))
    assert reply.result == pb.CHAIN_VERIFICATION_RESULT_BROKEN
    # The RPC counts too (and the scheduler keeps counting: the alert reads increase()).
    assert await process.value(failures, tenant=client.tenant) >= scheduled + 1
    other = LedgerClient(process.stub, f"t{uuid.uuid4().hex[:10]}")
    await other.open("cash")
    await asyncio.sleep(1.0)
    assert await process.series(failures, tenant=other.tenant) == [0]
