"""`python -m bench.payments`: authorize+capture pairs/s and p50/p99 through the real payments
service (chassis server, PostgreSQL, the PSP sandbox over HTTP at zero added latency, the real
ledger service over gRPC), beside the same run's bare grpc.aio echo rate, as ratios.

Starts a private embedded PostgreSQL (or uses COMMERCE_BENCH_DATABASE_URL, a superuser URL);
everything (echo, ledger, sandbox, payments, load generator) runs in this one process, as in
bench/ledger, so the figures are comparable only within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import jwt
from sqlalchemy.engine import URL

from bench.echo import echo_call, start_echo_server
from clients.base import ClientSettings
from clients.channel import create_channel
from clients.services import LedgerClient
from commerce.payments.v1 import payments_service_pb2 as pb
from commerce.payments.v1 import payments_service_pb2_grpc as rpc
from commerce.payments.v1 import resources_pb2 as res
from commerce.payments.v1 import routing_pb2 as rt
from commerce.type.v1.money_pb2 import Money
from services.chassis.card_data import looks_like_card_number
from services.chassis.config import AuthSettings, ServerSettings
from services.chassis.db.database import Database
from services.chassis.db.embedded import EmbeddedPostgres
from services.chassis.db.migrations import upgrade
from services.chassis.db.provision import provision_service_database
from services.chassis.db.settings import normalize_postgres_url
from services.chassis.server import start_server
from services.ledger import bootstrap as ledger_bootstrap
from services.ledger.config import ERROR_DOMAIN as LEDGER_DOMAIN
from services.ledger.storage.unit_of_work import SqlTransactionRunner
from services.payments.bootstrap import MIGRATIONS, SERVICE_ROLE, registration
from services.payments.config import ERROR_DOMAIN, PspCredentials, PspSettings
from services.payments.ledger import LedgerPostings
from services.payments.psp.registry import build_registry, http_client
from services.payments.sandbox.config import SandboxConfig
from services.payments.sandbox.server import start_sandbox
from services.payments.service import PaymentsService
from services.payments.storage.unit_of_work import TransactionRunner

TARGET = 0.25
SANDBOX_TOKEN = "pm_sandbox_ok"  # noqa: S105 - the sandbox's documented approving test token


def request_id() -> str:
    import uuid  # noqa: PLC0415

    while True:
        candidate = str(uuid.uuid4())
        if not looks_like_card_number(candidate):
            return candidate


def token(secret: str, tenant: str | None, role: str) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "bench",
        "roles": [role],
        "iss": "commerce-mesh",
        "aud": "commerce-mesh",
        "iat": now,
        "exp": now + 86_400,
    }
    if tenant is not None:
        claims["tenant"] = tenant
    return jwt.encode(claims, secret, algorithm="HS256")


@dataclass(frozen=True)
class Measured:
    operations: int
    seconds: float
    latencies: list[float]

    @property
    def per_second(self) -> float:
        return self.operations / self.seconds

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000.0


async def drive(operation: Any, concurrency: int, seconds: float) -> Measured:
    """`operation(client_index)` from `concurrency` loops for `seconds`, each call timed."""
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []

    async def loop(index: int) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await operation(index)
            latencies.append(time.perf_counter() - started)

    start = time.perf_counter()
    await asyncio.gather(*(loop(i) for i in range(concurrency)))
    return Measured(len(latencies), time.perf_counter() - start, latencies)


@dataclass
class Stack:
    """Everything the run talks to, started in this process."""

    payments_port: int
    closers: list[Any]


async def start_stack(admin: URL, settings: ServerSettings, secret: str) -> Stack:
    """The ledger and payments servers on their own databases, and a zero-latency sandbox."""
    suffix = secrets.token_hex(3)
    ledger_db = await provision_service_database(admin, f"bench_pledger_{suffix}")
    await upgrade(ledger_db.owner_url, ledger_bootstrap.MIGRATIONS)
    ledger_database = Database.connect(ledger_db.app_url, pool_size=30, max_overflow=10)
    ledger_server = await start_server(
        settings,
        [ledger_bootstrap.registration(SqlTransactionRunner(ledger_database))],
        error_domain=LEDGER_DOMAIN,
    )
    payments_db = await provision_service_database(admin, f"bench_payments_{suffix}")
    await upgrade(payments_db.owner_url, MIGRATIONS)
    payments_database = Database.connect(payments_db.app_url, pool_size=30, max_overflow=10)
    sandbox = await start_sandbox(config=SandboxConfig(latency_ms=0))
    psp_settings = PspSettings(bulkhead_limit=512)
    client = http_client(psp_settings)
    registry = build_registry(
        {"sandbox": PspCredentials(kind="sandbox", base_url=sandbox.url)}, psp_settings, client
    )
    ledger_channel = create_channel(f"127.0.0.1:{ledger_server.port}")
    ledger = LedgerClient(
        ledger_channel,
        ClientSettings(token_provider=lambda: token(secret, None, SERVICE_ROLE)),
    )
    runner = TransactionRunner(payments_database)
    service = PaymentsService(runner, registry.psps, LedgerPostings(ledger))
    payments_server = await start_server(
        settings, [registration(service, runner)], error_domain=ERROR_DOMAIN
    )
    closers = [
        payments_server.stop,
        ledger_server.stop,
        lambda: ledger_channel.close(None),
        client.aclose,
        sandbox.close,
        payments_database.dispose,
        ledger_database.dispose,
    ]
    return Stack(payments_server.port, closers)


async def measure(admin: URL, seconds: float, concurrencies: list[int]) -> dict[str, Any]:
    secret = secrets.token_urlsafe(32)
    settings = ServerSettings(port=0, auth=AuthSettings(key=secret, algorithms=["HS256"]))
    stack = await start_stack(admin, settings, secret)
    suffix = secrets.token_hex(3)
    echo_server, echo_port = await start_echo_server()
    # One tenant per client loop: a tenant's ledger accounts (PSP clearing, customer funds)
    # are hot rows every payment of that tenant updates, so one tenant serialises in the ledger.
    tenants = [f"bench-{suffix}-{i}" for i in range(max(concurrencies))]
    tokens = {
        t: (("authorization", f"Bearer {token(secret, t, 'tenant_admin')}"),) for t in tenants
    }
    results: dict[str, Any] = {"seconds": seconds, "runs": []}
    try:
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{stack.payments_port}") as channel,
            grpc.aio.insecure_channel(f"127.0.0.1:{echo_port}") as echo_channel,
        ):
            stub = rpc.PaymentsServiceStub(channel)
            for tenant in tenants:
                await stub.UpdateRoutingConfig(
                    pb.UpdateRoutingConfigRequest(
                        routing_config=rt.RoutingConfig(
                            name=f"tenants/{tenant}/routingConfig",
                            default_psps=["sandbox"],
                            etag='W/"0"',
                        ),
                        request_id=request_id(),
                    ),
                    metadata=tokens[tenant],
                )
            echo = echo_call(echo_channel)
            payload = b"x" * 200

            async def echo_once(_index: int) -> None:
                await echo(payload)

            async def authorize_and_capture(index: int) -> None:
                tenant = tenants[index]
                parent, metadata = f"tenants/{tenant}", tokens[tenant]
                reply = await stub.AuthorizePayment(
                    pb.AuthorizePaymentRequest(
                        parent=parent,
                        order=f"{parent}/orders/o-{secrets.token_hex(6)}",
                        amount=Money(currency_code="USD", amount_minor=1_999),
                        payment_method=res.PaymentMethod(
                            token=SANDBOX_TOKEN, type=res.PAYMENT_METHOD_TYPE_CARD
                        ),
                        capture_method=res.CAPTURE_METHOD_MANUAL,
                        request_id=request_id(),
                    ),
                    metadata=metadata,
                )
                captured = await stub.CapturePayment(
                    pb.CapturePaymentRequest(name=reply.payment.name, request_id=request_id()),
                    metadata=metadata,
                )
                if captured.payment.state != res.PAYMENT_STATE_CAPTURED:
                    raise AssertionError("capture did not complete")

            for index in range(len(tenants)):  # warm up: opens each tenant's ledger accounts
                await authorize_and_capture(index)
            for concurrency in concurrencies:
                echoed = await drive(echo_once, concurrency, seconds)
                paid = await drive(authorize_and_capture, concurrency, seconds)
                run = {
                    "concurrency": concurrency,
                    "echo_calls_per_s": echoed.per_second,
                    "payments_per_s": paid.per_second,
                    "rpcs_per_s": 2 * paid.per_second,
                    "p50_ms": paid.percentile(0.50),
                    "p99_ms": paid.percentile(0.99),
                    "mean_ms": statistics.fmean(paid.latencies) * 1000 if paid.latencies else 0,
                    "ratio_payments": paid.per_second / echoed.per_second,
                    "ratio_rpcs": 2 * paid.per_second / echoed.per_second,
                }
                results["runs"].append(run)
                print(  # noqa: T201 - a CLI reporting to the developer
                    f"concurrency {concurrency}: echo {run['echo_calls_per_s']:.0f} calls/s;"
                    f" authorize+capture {run['payments_per_s']:.1f} payments/s"
                    f" ({run['rpcs_per_s']:.1f} RPCs/s), p50 {run['p50_ms']:.1f} ms,"
                    f" p99 {run['p99_ms']:.1f} ms; ratio {run['ratio_payments']:.3f}x payments"
                    f" / {run['ratio_rpcs']:.3f}x RPCs (target {TARGET}x)"
                )
    finally:
        await echo_server.stop(0)
        for close in stack.closers:
            await close()
    return results


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.payments", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--concurrency", type=int, action="append", default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    configured = os.environ.get("COMMERCE_BENCH_DATABASE_URL")
    data_dir: Path | None = None
    embedded: EmbeddedPostgres | None = None
    if configured:
        admin = normalize_postgres_url(configured)
    else:
        data_dir = Path(tempfile.mkdtemp(prefix="payments-bench-"))
        embedded = EmbeddedPostgres(data_dir)
        admin = await asyncio.to_thread(embedded.start)
    try:
        results = await measure(admin, args.seconds, args.concurrency or [1, 16])
    finally:
        if embedded is not None:
            embedded.stop()
        if data_dir is not None:
            shutil.rmtree(data_dir, ignore_errors=True)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
