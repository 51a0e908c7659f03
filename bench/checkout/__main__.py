"""`python -m bench.checkout`: PlaceOrder/s and p50/p99 through the deployed shape — the whole
saga (authorize, capture, confirm) through checkout, payments, the PSP sandbox over HTTP at
zero added latency and the ledger, each its own OS process — beside the same run's bare gRPC
echo rate.

The mesh is services/localmesh.py (as `make run` and bench/gateway): embedded PostgreSQL, the
Pub/Sub emulator, ledger, payments and checkout with their outbox relays, checkout's saga
recovery worker, the PSP sandbox and the REST gateway (the sandbox's webhooks reach payments
through it). The load generator is k6 v1.8.1 for both paths, same VUs, same duration:
bench/common/echo.js against bench/echo.py (its own process), and bench/checkout/place.js,
which places checkouts created and quoted before each window (so the window measures
PlaceOrder alone), one tenant per VU.

Reported: PlaceOrder/s, p50/p99, the ratio to echo, and CPU ms per order of every process
(/proc/<pid>/stat; PostgreSQL = the postmaster and its backends; k6 from its rusage).
Target (issue #6): PlaceOrder/s >= 0.10x echo calls/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import secrets
import sys
import time
from dataclasses import asdict
from pathlib import Path

import grpc

from bench.common.run import (
    Figure,
    idle_rates,
    load_average,
    measure,
    new_rig,
    parse_env,
    protoset,
    record,
    require_k6,
)
from bench.common.run import ratio as ratio_of
from bench.payments.__main__ import request_id, route_to_sandbox
from commerce.checkout.v1 import checkout_service_pb2 as pb
from commerce.checkout.v1 import checkout_service_pb2_grpc as rpc
from commerce.checkout.v1 import resources_pb2 as res
from commerce.type.v1.address_pb2 import Address
from commerce.type.v1.ids_pb2 import CustomerRef
from commerce.type.v1.money_pb2 import Money

HERE = Path(__file__).resolve().parent
COMMON = HERE.parent / "common"
TARGET = 0.10
PARTS = frozenset(
    {"pubsub", "ledger", "ledger-relay", "psp-sandbox", "payments", "payments-relay",
     "checkout", "checkout-relay", "checkout-recovery", "gateway"}
)  # fmt: skip


def progress(line: str) -> None:
    print(f"  {line}", file=sys.stderr)  # noqa: T201 - a CLI reporting to the developer


async def prepare(
    address: str, tenants: list[str], tokens: list[str], count: int, path: Path
) -> None:
    """`count` quoted checkouts, entry j of tenant j % len(tenants), written to `path`."""
    ready: list[dict[str, object] | None] = [None] * count
    todo = iter(range(count))
    async with grpc.aio.insecure_channel(address) as channel:
        stub = rpc.CheckoutServiceStub(channel)

        async def worker() -> None:
            for j in todo:
                i = j % len(tenants)
                metadata = (("authorization", f"Bearer {tokens[i]}"),)
                created = await stub.CreateCheckout(
                    pb.CreateCheckoutRequest(
                        parent=f"tenants/{tenants[i]}",
                        checkout=res.Checkout(
                            customer=CustomerRef(customer_id=f"bench-{i}"),
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
                        request_id=request_id(),
                    ),
                    metadata=metadata,
                )
                quoted = await stub.QuoteCheckout(
                    pb.QuoteCheckoutRequest(
                        name=created.checkout.name,
                        etag=created.checkout.etag,
                        request_id=request_id(),
                    ),
                    metadata=metadata,
                )
                ready[j] = {"tenant": i, "name": quoted.checkout.name,
                            "etag": quoted.checkout.etag,
                            "quoteId": quoted.checkout.quote.quote_id}  # fmt: skip

        await asyncio.gather(*(worker() for _ in range(8)))
    await asyncio.to_thread(path.write_text, json.dumps(ready))


async def run(
    concurrency: list[int],
    seconds: float,
    warmup: float,
    extra_env: dict[str, str] | None = None,
) -> dict[str, object]:
    rig = new_rig(PARTS, ["echo"], extra_env)
    runs: list[dict[str, object]] = []
    idle: dict[str, float] = {}
    try:
        await rig.mesh.start(progress)
        await rig.spawn("echo", ["-m", "bench.echo", "--port", str(rig.extra_ports["echo"])])
        most = max(concurrency)
        tenants = [f"bench-{secrets.token_hex(3)}-{i}" for i in range(most)]
        tokens = [rig.mesh.token(t, ["tenant_admin"], subject="bench") for t in tenants]
        await route_to_sandbox(rig.url("payments"), tenants, tokens)
        descriptors = protoset(rig.work_dir)
        meter = rig.meter()
        echo_env = {"TARGET": rig.url("echo")}
        place = HERE / "place.js"

        def env(pool: Path, c: int) -> dict[str, str]:
            # Tokens in the pool's tenant order: entry j of tenant j % c.
            return {"TARGET": rig.url("checkout"), "PROTOSET": str(descriptors),
                    "POOL": str(pool), "TOKENS": ",".join(tokens[:c])}  # fmt: skip

        # Warm-up, not recorded; its rate sizes the pools (twice what it suggests).
        pool = rig.work_dir / "pool-warmup.json"
        await prepare(rig.url("checkout"), tenants, tokens, 4 * most, pool)
        warm = await measure("warmup-checkout", place, env(pool, most), most, warmup, meter,
                             rig.work_dir, latency_step="place")  # fmt: skip
        await measure("warmup-echo", COMMON / "echo.js", echo_env, most, warmup, meter,
                      rig.work_dir, latency_step="echo")  # fmt: skip
        rate = max(warm.per_second, 5.0)
        idle = await idle_rates(meter, warmup)
        for i, c in enumerate(concurrency):
            pool = rig.work_dir / f"pool-{c}.json"
            size = math.ceil(2 * rate * seconds) + 4 * c
            await prepare(rig.url("checkout"), tenants[:c], tokens[:c], size, pool)
            paths = {
                "echo": (COMMON / "echo.js", echo_env, "echo"),
                "checkout": (place, env(pool, c), "place"),
            }
            order = list(paths) if i % 2 == 0 else list(reversed(paths))
            got: dict[str, Figure] = {}
            for name in order:
                script, environment, step = paths[name]
                got[name] = await measure(
                    name, script, environment, c, seconds, meter, rig.work_dir,
                    latency_step=step, idle=idle,
                )  # fmt: skip
            echo, placed = got["echo"], got["checkout"]
            ratio = ratio_of(placed, echo)
            print(  # noqa: T201 - a CLI reporting to the developer
                f"c={c}: echo {echo.per_second:.0f}/s (p50 {echo.p50_ms:.2f} ms); PlaceOrder "
                f"{placed.per_second:.1f}/s, p50 {placed.p50_ms:.1f} ms, p99 {placed.p99_ms:.1f}"
                f" ms, {placed.errors} errors; ratio {ratio:.4f}x (target {TARGET}x)"
                + (" — the pool ran dry: rerun" if placed.detail.get("pool_dry") else "")
            )
            runs.append({"concurrency": c, "order": order, "pool": size, "echo": asdict(echo),
                         "checkout": asdict(placed), "ratio": ratio})  # fmt: skip
    finally:
        failed = await rig.stop()
        if failed:
            print(f"parts that exited abnormally: {failed}", file=sys.stderr)  # noqa: T201
    return {"idle_cpu_ms_per_s": {k: round(1000 * v, 2) for k, v in idle.items()}, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.checkout", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="per measured k6 run")
    parser.add_argument("--warmup", type=float, default=3.0, help="per path, not recorded")
    parser.add_argument("--concurrency", default="1,16", help="comma-separated VU counts")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an environment variable for every part (an experiment; the figures say so)",
    )
    args = parser.parse_args(argv)
    require_k6()
    started = time.time()
    before = load_average()
    env = parse_env(args.env)
    results = asyncio.run(
        run(
            [int(c) for c in args.concurrency.split(",")],
            args.seconds,
            args.warmup,
            env,
        )
    )
    record(
        args.json,
        results,
        started=started,
        load_before=before,
        seconds=args.seconds,
        target=TARGET,
        env=env,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
