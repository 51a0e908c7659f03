"""`python -m bench.checkout`: PlaceOrder/s and p50/p99 through gRPC — the whole saga
(authorize, capture, confirm) through the real payments service, the PSP sandbox over HTTP at
zero added latency and the real ledger — beside the same run's bare grpc.aio echo rate.

Starts a private embedded PostgreSQL (or uses COMMERCE_BENCH_DATABASE_URL, a superuser URL).
Everything (echo, ledger, sandbox, payments, checkout, load generator) runs in this one
process, as in bench/payments, so figures compare only within one run. Quoted checkouts are
prepared before each timed window, so the window measures PlaceOrder alone. Target: PlaceOrder
rate at least 0.10x the echo rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import jwt
from pydantic import SecretStr
from sqlalchemy.engine import URL

from bench.echo import echo_call, start_echo_server
from commerce.checkout.v1 import checkout_service_pb2 as pb
from commerce.checkout.v1 import checkout_service_pb2_grpc as rpc
from commerce.checkout.v1 import order_pb2 as opb
from commerce.checkout.v1 import resources_pb2 as res
from commerce.payments.v1 import payments_service_pb2 as ppb
from commerce.payments.v1 import payments_service_pb2_grpc as prpc
from commerce.payments.v1 import routing_pb2 as rt
from commerce.type.v1.address_pb2 import Address
from commerce.type.v1.ids_pb2 import CustomerRef
from commerce.type.v1.money_pb2 import Money
from services.chassis.config import AuthSettings, ServerSettings
from services.chassis.db.database import Database
from services.chassis.db.embedded import EmbeddedPostgres
from services.chassis.db.migrations import upgrade
from services.chassis.db.provision import provision_service_database
from services.chassis.db.settings import DatabaseSettings, normalize_postgres_url
from services.chassis.server import start_server
from services.checkout import bootstrap as checkout_bootstrap
from services.checkout.config import ERROR_DOMAIN, CheckoutSettings, SagaSettings
from services.ledger import bootstrap as ledger_bootstrap
from services.ledger.config import ERROR_DOMAIN as LEDGER_DOMAIN
from services.ledger.storage.unit_of_work import SqlTransactionRunner
from services.payments import bootstrap as payments_bootstrap
from services.payments.config import PaymentsSettings, PspSettings
from services.payments.sandbox.config import SandboxConfig
from services.payments.sandbox.server import start_sandbox

TARGET = 0.10


def token(secret: str, tenant: str) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "bench",
        "roles": ["tenant_admin"],
        "tenant": tenant,
        "iss": "commerce-mesh",
        "aud": "commerce-mesh",
        "iat": now,
        "exp": now + 86_400,
    }
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
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000.0 if ordered else 0.0


async def drive(
    operation: Callable[[], Awaitable[None]], concurrency: int, seconds: float
) -> Measured:
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []

    async def loop() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await operation()
            latencies.append(time.perf_counter() - started)

    start = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return Measured(len(latencies), time.perf_counter() - start, latencies)


def _url(url: URL) -> SecretStr:
    return SecretStr(url.render_as_string(hide_password=False))


async def measure(  # noqa: PLR0915 - one linear setup, measure, teardown
    admin: URL, seconds: float, concurrencies: list[int], tmp: Path
) -> dict[str, Any]:
    secret = secrets.token_urlsafe(32)
    auth = AuthSettings(key=SecretStr(secret), algorithms=["HS256"])
    suffix = secrets.token_hex(3)
    ledger_db = await provision_service_database(admin, f"bench_cledger_{suffix}")
    await upgrade(ledger_db.owner_url, ledger_bootstrap.MIGRATIONS)
    ledger_database = Database.connect(ledger_db.app_url, pool_size=30, max_overflow=10)
    ledger = await start_server(
        ServerSettings(port=0, auth=auth),
        [ledger_bootstrap.registration(SqlTransactionRunner(ledger_database))],
        error_domain=LEDGER_DOMAIN,
    )
    sandbox = await start_sandbox(config=SandboxConfig(latency_ms=0))
    psps = tmp / "psps.toml"
    psps.write_text(f'[psps.sandbox]\nkind = "sandbox"\nbase_url = "{sandbox.url}"\n')
    payments_db = await provision_service_database(admin, f"bench_cpay_{suffix}")
    payments = await payments_bootstrap.start(
        PaymentsSettings(
            port=0,
            auth=auth,
            ledger_addr=f"127.0.0.1:{ledger.port}",
            psp=PspSettings(credentials_file=psps, bulkhead_limit=512),
        ),
        DatabaseSettings(
            url=_url(payments_db.app_url),
            owner_url=_url(payments_db.owner_url),
            pool_size=30,
            max_overflow=10,
        ),
    )
    checkout_db = await provision_service_database(admin, f"bench_checkout_{suffix}")
    await upgrade(checkout_db.owner_url, checkout_bootstrap.MIGRATIONS)
    checkout_database = Database.connect(checkout_db.app_url, pool_size=30, max_overflow=10)
    settings = CheckoutSettings(
        port=0,
        auth=auth,
        payments_addr=f"127.0.0.1:{payments.server.port}",
        saga=SagaSettings(recover_in_server=False),
    )
    client, payments_channel = checkout_bootstrap.payments_client(settings)
    runner, _, saga = checkout_bootstrap.build_saga(settings, checkout_database, client)
    api = checkout_bootstrap.build_api(settings, runner, saga)
    checkout = await start_server(
        settings, [checkout_bootstrap.registration(api)], error_domain=ERROR_DOMAIN
    )
    echo_server, echo_port = await start_echo_server()
    tenant = f"bench-{suffix}"
    parent = f"tenants/{tenant}"
    metadata = (("authorization", f"Bearer {token(secret, tenant)}"),)
    results: dict[str, Any] = {"seconds": seconds, "target_ratio": TARGET, "runs": []}
    try:
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{checkout.port}") as channel,
            grpc.aio.insecure_channel(f"127.0.0.1:{payments.server.port}") as pay_channel,
            grpc.aio.insecure_channel(f"127.0.0.1:{echo_port}") as echo_channel,
        ):
            stub = rpc.CheckoutServiceStub(channel)
            await prpc.PaymentsServiceStub(pay_channel).UpdateRoutingConfig(
                ppb.UpdateRoutingConfigRequest(
                    routing_config=rt.RoutingConfig(
                        name=f"{parent}/routingConfig", default_psps=["sandbox"], etag='W/"0"'
                    ),
                    request_id=str(uuid.uuid4()),
                ),
                metadata=metadata,
            )

            async def quoted() -> res.Checkout:
                created = await stub.CreateCheckout(
                    pb.CreateCheckoutRequest(
                        parent=parent,
                        checkout=res.Checkout(
                            customer=CustomerRef(customer_id="bench"),
                            currency_code="USD",
                            lines=[
                                res.CheckoutLine(
                                    sku="mug",
                                    quantity=2,
                                    unit_price=Money(currency_code="USD", amount_minor=1999),
                                )
                            ],
                            shipping_address=Address(region_code="US", administrative_area="CA"),
                        ),
                        request_id=str(uuid.uuid4()),
                    ),
                    metadata=metadata,
                )
                reply = await stub.QuoteCheckout(
                    pb.QuoteCheckoutRequest(
                        name=created.checkout.name,
                        etag=created.checkout.etag,
                        request_id=str(uuid.uuid4()),
                    ),
                    metadata=metadata,
                )
                checkout_: res.Checkout = reply.checkout
                return checkout_

            async def prepare(count: int, concurrency: int = 16) -> list[res.Checkout]:
                ready: list[res.Checkout] = []

                async def worker() -> None:
                    while len(ready) < count:
                        ready.append(await quoted())

                await asyncio.gather(*(worker() for _ in range(concurrency)))
                return ready

            echo = echo_call(echo_channel)
            payload = b"x" * 200

            async def echo_once() -> None:
                await echo(payload)

            # Warm up (opens the ledger accounts) and estimate how many checkouts a window uses.
            warm = await prepare(8)
            start = time.perf_counter()
            for item in warm:
                await place(stub, metadata, item)
            single = len(warm) / (time.perf_counter() - start)
            for concurrency in concurrencies:
                pool = await prepare(int(single * concurrency * seconds * 1.5) + 4 * concurrency)

                async def place_one(pool: list[res.Checkout] = pool) -> None:
                    await place(stub, metadata, pool.pop())

                echoed = await drive(echo_once, concurrency, seconds)
                placed = await drive(place_one, concurrency, seconds)
                run = {
                    "concurrency": concurrency,
                    "echo_calls_per_s": echoed.per_second,
                    "place_orders_per_s": placed.per_second,
                    "p50_ms": placed.percentile(0.50),
                    "p99_ms": placed.percentile(0.99),
                    "ratio": placed.per_second / echoed.per_second,
                    "pool_left": len(pool),
                }
                results["runs"].append(run)
                print(  # noqa: T201 - a CLI reporting to the developer
                    f"concurrency {concurrency}: echo {run['echo_calls_per_s']:.0f} calls/s;"
                    f" PlaceOrder {run['place_orders_per_s']:.1f}/s, p50 {run['p50_ms']:.1f} ms,"
                    f" p99 {run['p99_ms']:.1f} ms; ratio {run['ratio']:.3f}x (target {TARGET}x)"
                )
                if not pool:
                    print("warning: the prepared pool ran dry; rerun")  # noqa: T201
    finally:
        await echo_server.stop(0)
        await checkout.stop()
        await payments_channel.close(None)
        await checkout_database.dispose()
        await payments.server.stop()
        await ledger.stop()
        await sandbox.close()
        await ledger_database.dispose()
    return results


async def place(stub: Any, metadata: Any, checkout: res.Checkout) -> None:
    reply = await stub.PlaceOrder(
        pb.PlaceOrderRequest(
            name=checkout.name,
            request_id=str(uuid.uuid4()),
            etag=checkout.etag,
            quote_id=checkout.quote.quote_id,
            payment_method_token="pm_sandbox_ok",  # noqa: S106 - the sandbox's approve token
        ),
        metadata=metadata,
    )
    if reply.order.state != opb.ORDER_STATE_CONFIRMED:
        raise AssertionError(f"order ended {opb.OrderState.Name(reply.order.state)}")


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.checkout", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--concurrency", type=int, action="append", default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    configured = os.environ.get("COMMERCE_BENCH_DATABASE_URL")
    tmp = Path(tempfile.mkdtemp(prefix="checkout-bench-"))
    embedded: EmbeddedPostgres | None = None
    if configured:
        admin = normalize_postgres_url(configured)
    else:
        embedded = EmbeddedPostgres(tmp / "pg")
        admin = await asyncio.to_thread(embedded.start)
    try:
        results = await measure(admin, args.seconds, args.concurrency or [1, 16], tmp)
    finally:
        if embedded is not None:
            embedded.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
