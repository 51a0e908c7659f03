"""`python -m bench.gateway`: the same RPCs through the REST facade and over gRPC, same run.

Starts the local mesh (services/localmesh.py) on free ports, then for each RPC drives it
with a real load tool at the same concurrency for the same time, REST through the gateway
and gRPC straight to the service. Reported: requests/s, p50/p99, and the REST/gRPC
throughput ratio (target ≥ 0.8).

- Read: LedgerService.GetAccount of one seeded account, `hey` (HTTP) beside `ghz` (gRPC).
- Write: CheckoutService.PlaceOrder, `k6` with a script per transport (bench/gateway/*.js):
  every iteration creates and quotes its own checkout (timed as their own steps), then
  places it; PlaceOrder's own durations and the orders placed per second are compared.
  The runs alternate which transport goes first, so the growing tables favour neither.

The load tools are pinned Go modules in .tools/bin (`make bench` installs them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path

import httpx

from services.localmesh import DEV_PORTS, LocalMesh, free_ports

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".tools" / "bin"
TENANT = "bench"
CUT_AT_END = re.compile(
    r"transport is closing|client connection is closing|context canceled|use of closed network"
)


@dataclass
class Figure:
    rpc: str
    transport: str  # "rest (hey)", "grpc (ghz)", ...
    concurrency: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    # PlaceOrder: the create and quote steps' p50/p99, orders confirmed within the call, ...
    detail: dict[str, float] = field(default_factory=dict)
    error_kinds: dict[str, int] = field(default_factory=dict)  # message -> count, as reported
    round: int = 0


def hey(url: str, token: str, concurrency: int, seconds: int) -> Figure:
    out = subprocess.run(  # noqa: S603 - the pinned load tool `make bench` installs
        [str(TOOLS / "hey"), "-z", f"{seconds}s", "-c", str(concurrency),
         "-H", f"Authorization: Bearer {token}", url],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    p50 = float(re.search(r"50%+ in ([\d.]+) secs", out)[1]) * 1000  # type: ignore[index]
    p99 = float(re.search(r"99%+ in ([\d.]+) secs", out)[1]) * 1000  # type: ignore[index]
    statuses = dict(re.findall(r"\[(\d{3})\]\s+(\d+) responses", out))
    errors = sum(int(n) for code, n in statuses.items() if code != "200")
    return Figure("GetAccount", "rest (hey)", concurrency, rps, p50, p99, errors)


def protoset(directory: Path) -> Path:
    """The contracts as a descriptor set for ghz (the Python reflection service does not
    resolve method symbols, which ghz looks up)."""
    path = directory / "commerce.binpb"
    subprocess.run(  # noqa: S603 - the pinned buf CLI
        [str(ROOT / "node_modules/.bin/buf"), "build", "proto", "-o", str(path)],
        check=True, cwd=ROOT,
    )  # fmt: skip
    return path


def ghz(  # noqa: PLR0917 - one call's whole description
    target: str,
    call: str,
    data: dict[str, str],
    token: str,
    concurrency: int,
    seconds: int,
    descriptors: Path,
) -> Figure:
    out = subprocess.run(  # noqa: S603 - the pinned load tool `make bench` installs
        [str(TOOLS / "ghz"), "--insecure", "--protoset", str(descriptors), "--call", call,
         "-d", json.dumps(data),
         "-m", json.dumps({"authorization": f"Bearer {token}"}), "-c", str(concurrency),
         "-z", f"{seconds}s", "--format", "json", target],
        check=False, capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"ghz failed: {out.stderr.strip()}")
    report = json.loads(out.stdout)
    latency = {d["percentage"]: d["latency"] / 1e6 for d in report["latencyDistribution"]}
    codes = report.get("statusCodeDistribution", {})
    kinds: dict[str, int] = report.get("errorDistribution", {})
    # With -z, ghz closes its connections when the time is up and fails the calls still in
    # flight (at most one per client) on the client side: not the server's errors.
    cut = sum(n for message, n in kinds.items() if CUT_AT_END.search(message))
    errors = sum(n for code, n in codes.items() if code != "OK") - cut
    return Figure(call.rsplit("/", 1)[-1], "grpc (ghz)", concurrency, report["rps"],
                  latency[50], latency[99], errors, {"cut_at_end": cut}, kinds)  # fmt: skip


def k6(script: str, env: dict[str, str], concurrency: int, seconds: int, out: Path) -> Figure:
    """One k6 run of a PlaceOrder script; its handleSummary writes `out` (see common.js)."""
    # k6 reads the process environment into __ENV: the token stays out of the command line.
    settings = {**env, "VUS": str(concurrency), "SECONDS": str(seconds), "SUMMARY": str(out)}
    out.unlink(missing_ok=True)
    run = subprocess.run(  # noqa: S603 - the pinned load tool `make bench` installs
        [str(TOOLS / "k6"), "run", "--no-usage-report", "--quiet",
         str(Path(__file__).with_name(script))],
        check=False, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **settings},
    )  # fmt: skip
    if run.returncode != 0 or not out.exists():
        raise RuntimeError(f"k6 {script} failed ({run.returncode}): {run.stderr[-2000:]}")
    report = json.loads(out.read_text())
    # Every failed step, and the first slow PlaceOrders with their saga steps (common.js).
    lines = run.stderr.splitlines()
    notes = [x for x in lines if "level=error" in x] + [x for x in lines if "slow place" in x][:5]
    if notes:
        print(f"k6 {script} c={concurrency}:", *notes, sep="\n", file=sys.stderr)  # noqa: T201
    place, create, quote = report["place"], report["create"], report["quote"]
    return Figure(
        "PlaceOrder", f"{report['transport']} (k6)", concurrency,
        # errors: failed steps of any kind (create, quote or place) in the run.
        report["orders_placed"] / seconds, place["p(50)"], place["p(99)"], report["step_errors"],
        {"place_avg_ms": place["avg"], "create_p50_ms": create["p(50)"],
         "create_p99_ms": create["p(99)"], "quote_p50_ms": quote["p(50)"],
         "quote_p99_ms": quote["p(99)"], "orders_placed": report["orders_placed"],
         "orders_confirmed": report["orders_confirmed"],
         "slow_places": report["slow_places"]},
    )  # fmt: skip


async def seed(mesh: LocalMesh, token: str) -> str:
    async with httpx.AsyncClient(
        base_url=f"http://{mesh.url('gateway')}", headers={"Authorization": f"Bearer {token}"}
    ) as rest:
        reply = await rest.post(
            f"/v1/tenants/{TENANT}/accounts",
            params={"accountId": "cash"},
            json={"code": "cash", "displayName": "Cash", "currencyCode": "EUR",
                  "type": "ACCOUNT_TYPE_ASSET"},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )  # fmt: skip
        reply.raise_for_status()
        return str(reply.json()["account"]["name"])


async def place_orders(
    mesh: LocalMesh, token: str, descriptors: Path, c: int, seconds: int, *, grpc_first: bool
) -> list[Figure]:
    """PlaceOrder over REST (gateway) and gRPC (checkout), same VUs, time, tenant and cart."""
    common = {"TENANT": TENANT, "TOKEN": token}
    sides = [
        ("place_order_rest.js", {**common, "GATEWAY": mesh.url("gateway")}),
        ("place_order_grpc.js", {**common, "CHECKOUT": mesh.url("checkout"),
                                 "PAYMENTS": mesh.url("payments"),
                                 "PROTOSET": str(descriptors)}),
    ]  # fmt: skip
    figures = {}
    for script, env in reversed(sides) if grpc_first else sides:
        out = descriptors.with_name(f"{script}.c{c}.json")
        figures[script] = await asyncio.to_thread(k6, script, env, c, seconds, out)
    return [figures["place_order_rest.js"], figures["place_order_grpc.js"]]


def report(rpc: str, c: int, rest: Figure, rpc_figure: Figure) -> None:
    ratio = rest.requests_per_second / rpc_figure.requests_per_second
    print(  # noqa: T201 - a CLI reporting to the developer
        f"{rpc} c={c}: REST {rest.requests_per_second:.1f}/s "
        f"(p50 {rest.p50_ms:.1f} ms, p99 {rest.p99_ms:.1f} ms, {rest.errors} errors), "
        f"gRPC {rpc_figure.requests_per_second:.1f}/s (p50 {rpc_figure.p50_ms:.1f} ms, "
        f"p99 {rpc_figure.p99_ms:.1f} ms, {rpc_figure.errors} errors), ratio {ratio:.2f}"
    )


async def run(
    concurrency: list[int], seconds: int, place_seconds: int, rpcs: set[str], rounds: int
) -> list[Figure]:
    data_dir = Path(tempfile.mkdtemp(prefix="commerce-bench-"))
    key_file = data_dir / "jwt.key"
    key_file.write_text(secrets.token_urlsafe(48))
    passwords: dict[str, str] = {}
    mesh = LocalMesh(
        data_dir=data_dir,
        ports=free_ports(DEV_PORTS),
        jwt_key_file=key_file,
        secret=lambda name: passwords.setdefault(name, secrets.token_urlsafe(24)),
        # No trace viewer: exporting every span would measure Zipkin, not the facade.
        only=frozenset(DEV_PORTS) - {"traceviewer"},
    )
    figures: list[Figure] = []
    try:
        await mesh.start(lambda line: print(f"  {line}", file=sys.stderr))  # noqa: T201
        token = mesh.token(TENANT, ["tenant_admin"], subject="bench")
        account = await seed(mesh, token)
        descriptors = protoset(data_dir)
        # Rounds and client counts alternate which transport goes first, so neither always
        # meets the warmer caches or the emptier tables.
        for r in range(rounds):
            for i, c in enumerate(concurrency):
                grpc_first = (r + i) % 2 == 1
                if "GetAccount" in rpcs:
                    rest_url = f"http://{mesh.url('gateway')}/v1/{account}"
                    sides = {
                        "rest": partial(hey, rest_url, token, c, seconds),
                        "grpc": partial(
                            ghz, mesh.url("ledger"), "commerce.ledger.v1.LedgerService/GetAccount",
                            {"name": account}, token, c, seconds, descriptors,
                        ),
                    }  # fmt: skip
                    got = {}
                    for side in ("grpc", "rest") if grpc_first else ("rest", "grpc"):
                        got[side] = await asyncio.to_thread(sides[side])
                    figures += [replace(got["rest"], round=r), replace(got["grpc"], round=r)]
                    report("GetAccount", c, got["rest"], got["grpc"])
                if "PlaceOrder" in rpcs:
                    placed = await place_orders(
                        mesh, token, descriptors, c, place_seconds, grpc_first=grpc_first
                    )
                    figures += [replace(f, round=r) for f in placed]
                    report("PlaceOrder", c, *placed)
    finally:
        await mesh.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway", description=__doc__)
    parser.add_argument("--concurrency", default="1,16", help="comma-separated client counts")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument(
        "--place-seconds",
        type=int,
        default=20,
        help="each PlaceOrder run (a few per second per client: longer for steadier figures)",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="repeat everything; ratios are the rounds' median"
    )
    parser.add_argument(
        "--rpcs", default="GetAccount,PlaceOrder", help="comma-separated: GetAccount, PlaceOrder"
    )
    parser.add_argument("--output", type=Path, default=Path("bench/gateway/results.json"))
    args = parser.parse_args()
    rpcs = set(args.rpcs.split(","))
    if unknown := rpcs - {"GetAccount", "PlaceOrder"}:
        parser.error(f"unknown RPCs: {sorted(unknown)}")
    tools = {"GetAccount": ("hey", "ghz"), "PlaceOrder": ("k6",)}
    for tool in (t for rpc in rpcs for t in tools[rpc]):
        if not (TOOLS / tool).exists():
            sys.exit(f"{TOOLS / tool} is missing: run `make bench` (it installs the load tools)")
    started = time.time()
    load_before = os.getloadavg()
    figures = asyncio.run(
        run(
            [int(c) for c in args.concurrency.split(",")],
            args.seconds,
            args.place_seconds,
            rpcs,
            args.rounds,
        )
    )
    pairs: dict[tuple[str, int, int], dict[str, Figure]] = {}
    for f in figures:
        pairs.setdefault((f.rpc, f.concurrency, f.round), {})[f.transport.split()[0]] = f
    complete = {k: p for k, p in pairs.items() if {"rest", "grpc"} <= p.keys()}
    per_round: dict[str, list[float]] = {}
    per_round_latency: dict[str, list[float]] = {}
    per_round_p50: dict[str, list[float]] = {}
    for (rpc, c, _), p in complete.items():
        rest, grpc = p["rest"], p["grpc"]
        per_round.setdefault(f"{rpc} c={c}", []).append(
            round(rest.requests_per_second / grpc.requests_per_second, 3)
        )
        if rpc == "PlaceOrder":
            per_round_latency.setdefault(f"{rpc} c={c}", []).append(
                round(grpc.detail["place_avg_ms"] / rest.detail["place_avg_ms"], 3)
            )
            per_round_p50.setdefault(f"{rpc} c={c}", []).append(round(grpc.p50_ms / rest.p50_ms, 3))
    ratios = {k: round(statistics.median(v), 3) for k, v in per_round.items()}
    latency_ratios = {k: round(statistics.median(v), 3) for k, v in per_round_latency.items()}
    p50_ratios = {k: round(statistics.median(v), 3) for k, v in per_round_p50.items()}
    args.output.write_text(json.dumps({
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": args.seconds,
        "place_seconds": args.place_seconds,
        "rounds": args.rounds,
        "tools": {"hey": "v0.1.4", "ghz": "v0.121.0", "k6": "v1.8.1"},
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "figures": [asdict(f) for f in figures],
        "rest_over_grpc": ratios,
        "rest_over_grpc_per_round": per_round,
        "median_ratio": statistics.median(ratios.values()) if ratios else None,
        # PlaceOrder alone: at a fixed client count a closed loop's rate is clients / mean
        # latency, so gRPC's mean PlaceOrder latency over REST's is PlaceOrder's own ratio.
        "place_order_latency_ratio": latency_ratios,
        "place_order_latency_ratio_per_round": per_round_latency,
        # The same from the medians: blind to the rare saga step that retries for seconds.
        "place_order_p50_ratio": p50_ratios,
        "place_order_p50_ratio_per_round": per_round_p50,
    }, indent=2) + "\n")  # fmt: skip
    summary = {"throughput": ratios, "place_order_mean_latency": latency_ratios,
               "place_order_p50_latency": p50_ratios}  # fmt: skip
    print(json.dumps(summary, indent=2))  # noqa: T201 - a CLI reporting to the developer


if __name__ == "__main__":
    main()
