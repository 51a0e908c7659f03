"""`python -m bench.gateway`: the same RPCs through the REST facade and over gRPC, same run.

Starts the local mesh (services/localmesh.py) on free ports, then for each RPC drives it
with a real load tool at the same concurrency for the same time: `hey` over HTTP through the
gateway, `ghz` over gRPC straight to the service (both pinned Go modules, installed by
`make bench`). Reported: requests/s, p50/p99, and REST/gRPC throughput ratio (target ≥ 0.8).

- Read: LedgerService.GetAccount of one seeded account.
- PlaceOrder needs a fresh checkout per request, which neither tool can vary; it is driven by
  this module's own asyncio clients instead (httpx over REST, grpc.aio over gRPC), the same
  for both sides, when the checkout service is built.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from services.localmesh import DEV_PORTS, LocalMesh, free_ports

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".tools" / "bin"
TENANT = "bench"


@dataclass
class Figure:
    rpc: str
    transport: str  # "rest (hey)", "grpc (ghz)", ...
    concurrency: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


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
    errors = sum(n for code, n in report.get("statusCodeDistribution", {}).items() if code != "OK")
    return Figure(call.rsplit("/", 1)[-1], "grpc (ghz)", concurrency, report["rps"],
                  latency[50], latency[99], errors)  # fmt: skip


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


async def run(concurrency: list[int], seconds: int) -> list[Figure]:
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
        for c in concurrency:
            rest = await asyncio.to_thread(
                hey, f"http://{mesh.url('gateway')}/v1/{account}", token, c, seconds
            )
            rpc = await asyncio.to_thread(
                ghz, mesh.url("ledger"), "commerce.ledger.v1.LedgerService/GetAccount",
                {"name": account}, token, c, seconds, descriptors,
            )  # fmt: skip
            figures += [rest, rpc]
            ratio = rest.requests_per_second / rpc.requests_per_second
            print(  # noqa: T201 - a CLI reporting to the developer
                f"GetAccount c={c}: REST {rest.requests_per_second:.0f}/s, "
                f"gRPC {rpc.requests_per_second:.0f}/s, ratio {ratio:.2f}"
            )
    finally:
        await mesh.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway", description=__doc__)
    parser.add_argument("--concurrency", default="1,16", help="comma-separated client counts")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--output", type=Path, default=Path("bench/gateway/results.json"))
    args = parser.parse_args()
    for tool in ("hey", "ghz"):
        if not (TOOLS / tool).exists():
            sys.exit(f"{TOOLS / tool} is missing: run `make bench` (it installs the load tools)")
    started = time.time()
    figures = asyncio.run(run([int(c) for c in args.concurrency.split(",")], args.seconds))
    pairs: dict[tuple[str, int], dict[str, Figure]] = {}
    for f in figures:
        pairs.setdefault((f.rpc, f.concurrency), {})[f.transport.split()[0]] = f
    ratios = {
        f"{rpc} c={c}": round(p["rest"].requests_per_second / p["grpc"].requests_per_second, 3)
        for (rpc, c), p in pairs.items()
        if {"rest", "grpc"} <= p.keys()
    }
    args.output.write_text(json.dumps({
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": args.seconds,
        "figures": [asdict(f) for f in figures],
        "rest_over_grpc": ratios,
        "median_ratio": statistics.median(ratios.values()) if ratios else None,
    }, indent=2) + "\n")  # fmt: skip
    print(json.dumps(ratios, indent=2))  # noqa: T201 - a CLI reporting to the developer


if __name__ == "__main__":
    main()
