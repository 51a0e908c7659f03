"""`python -m bench.payments`: authorize+capture pairs/s and p50/p99 through the deployed shape,
beside the same run's bare gRPC echo rate and the architecture's floor, as ratios.

Every part runs in its own OS process, as in Kubernetes (services/localmesh.py, as `make run`
and bench/gateway): embedded PostgreSQL, the Pub/Sub emulator, the ledger and its outbox relay,
the PSP sandbox (HTTP, zero added latency), payments and its relay, and the REST gateway (the
sandbox's webhooks reach payments through it). The load generator is k6 v1.8.1 (a Go process)
for all three paths, with the same VUs and the same duration:

- echo: bench/echo.py, a bare grpc.aio server in its own process (bench/common/echo.js);
- payments: AuthorizePayment (manual capture) + CapturePayment of the whole amount, one tenant
  per VU (bench/payments/pay.js);
- floor: the same script against bench/payments/floor.py (payments-, PSP- and ledger-shaped
  servers, each its own process, the same calls per pair, no business at all).

Reported per run: ops/s, p50/p99, ratios to echo, and CPU ms per operation of every process
(/proc/<pid>/stat; PostgreSQL = the postmaster and its backends; k6 from its rusage).
Target (issue #5): payments pairs/s >= 0.25x echo calls/s.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
import uuid
from dataclasses import asdict
from pathlib import Path

import grpc

from bench.common.run import (
    Figure,
    Rig,
    idle_rates,
    load_average,
    measure,
    new_rig,
    parse_env,
    protoset,
    ratio,
    record,
    require_k6,
)
from commerce.payments.v1 import payments_service_pb2 as pb
from commerce.payments.v1 import payments_service_pb2_grpc as rpc
from commerce.payments.v1 import routing_pb2 as rt
from services.chassis.card_data import looks_like_card_number

HERE = Path(__file__).resolve().parent
COMMON = HERE.parent / "common"
TARGET = 0.25
PARTS = frozenset(
    {"pubsub", "ledger", "ledger-relay", "psp-sandbox", "payments", "payments-relay", "gateway"}
)
FLOOR = ("floor-psp", "floor-ledger", "floor-payments")


def request_id() -> str:
    """A UUID the card-data guard cannot mistake for a card number."""
    while looks_like_card_number(candidate := str(uuid.uuid4())):
        pass
    return candidate


def progress(line: str) -> None:
    print(f"  {line}", file=sys.stderr)  # noqa: T201 - a CLI reporting to the developer


async def route_to_sandbox(address: str, tenants: list[str], tokens: list[str]) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = rpc.PaymentsServiceStub(channel)
        for tenant, token in zip(tenants, tokens, strict=True):
            await stub.UpdateRoutingConfig(
                pb.UpdateRoutingConfigRequest(
                    routing_config=rt.RoutingConfig(
                        name=f"tenants/{tenant}/routingConfig",
                        default_psps=["sandbox"],
                        etag='W/"0"',
                    ),
                    request_id=request_id(),
                ),
                metadata=(("authorization", f"Bearer {token}"),),
            )


async def start(rig: Rig) -> None:
    await rig.mesh.start(progress)
    await rig.spawn("echo", ["-m", "bench.echo", "--port", str(rig.extra_ports["echo"])])
    floor = "bench.payments.floor"
    await rig.spawn("floor-psp", ["-m", floor, "psp", "--port", str(rig.extra_ports["floor-psp"])])
    await rig.spawn(
        "floor-ledger", ["-m", floor, "ledger", "--port", str(rig.extra_ports["floor-ledger"])]
    )
    await rig.spawn(
        "floor-payments",
        ["-m", floor, "payments", "--port", str(rig.extra_ports["floor-payments"]),
         "--psp", rig.url("floor-psp"), "--ledger", rig.url("floor-ledger")],
    )  # fmt: skip


def summary_line(c: int, echo: Figure, floor: Figure, paid: Figure) -> str:
    return (
        f"c={c}: echo {echo.per_second:.0f}/s (p50 {echo.p50_ms:.2f} ms); "
        f"floor {floor.per_second:.1f} pairs/s ({ratio(floor, echo):.3f}x); "
        f"payments {paid.per_second:.1f} pairs/s, p50 {paid.p50_ms:.1f} ms, "
        f"p99 {paid.p99_ms:.1f} ms, {paid.errors} errors; ratio {ratio(paid, echo):.3f}x "
        f"(target {TARGET}x)"
    )


async def run(
    concurrency: list[int],
    seconds: float,
    warmup: float,
    profile: Path | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, object]:
    rig = new_rig(PARTS, ["echo", *FLOOR], env)
    runs: list[dict[str, object]] = []
    idle: dict[str, float] = {}
    try:
        await start(rig)
        tenants = [f"bench-{secrets.token_hex(3)}-{i}" for i in range(max(concurrency))]
        tokens = [rig.mesh.token(t, ["tenant_admin"], subject="bench") for t in tenants]
        await route_to_sandbox(rig.url("payments"), tenants, tokens)
        descriptors = protoset(rig.work_dir)
        meter = rig.meter()
        pay = {"PROTOSET": str(descriptors), "TENANTS": ",".join(tenants),
               "TOKENS": ",".join(tokens)}  # fmt: skip
        paths = {
            "echo": (COMMON / "echo.js", {"TARGET": rig.url("echo")}, "echo"),
            "floor": (HERE / "pay.js", {**pay, "TARGET": rig.url("floor-payments")}, None),
            "payments": (HERE / "pay.js", {**pay, "TARGET": rig.url("payments")}, None),
        }
        # Warm-up, not recorded: opens every tenant's ledger accounts, fills the pools.
        for name, (script, script_env, step) in paths.items():
            await measure(f"warmup-{name}", script, script_env, max(concurrency), warmup, meter,
                          rig.work_dir, latency_step=step)  # fmt: skip
        idle = await idle_rates(meter, warmup)
        for i, c in enumerate(concurrency):
            order = list(paths) if i % 2 == 0 else list(reversed(paths))
            got: dict[str, Figure] = {}
            for name in order:
                script, script_env, step = paths[name]
                spy = None
                if profile is not None and name == "payments":
                    spy = rig.profile("payments", seconds, profile / f"payments-c{c}.txt")
                got[name] = await measure(
                    name, script, script_env, c, seconds, meter, rig.work_dir,
                    latency_step=step, idle=idle,
                )  # fmt: skip
                if spy is not None:
                    await asyncio.to_thread(spy.wait)
            echo, floor, paid = got["echo"], got["floor"], got["payments"]
            print(summary_line(c, echo, floor, paid))  # noqa: T201
            runs.append({
                "concurrency": c,
                "order": order,
                "echo": asdict(echo),
                "floor": asdict(floor),
                "payments": asdict(paid),
                "ratio_payments": ratio(paid, echo),
                "ratio_payment_rpcs": round(2 * ratio(paid, echo), 4),
                "ratio_floor": ratio(floor, echo),
                "payments_over_floor": ratio(paid, floor),
            })  # fmt: skip
    finally:
        failed = await rig.stop()
        if failed:
            print(f"parts that exited abnormally: {failed}", file=sys.stderr)  # noqa: T201
    return {"idle_cpu_ms_per_s": {k: round(1000 * v, 2) for k, v in idle.items()}, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.payments", description=__doc__)
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
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="a directory: py-spy samples the payments process during each measured run",
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
            args.profile,
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
