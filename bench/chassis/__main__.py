"""`python -m bench.chassis`: what the chassis costs per call, against a bare gRPC ceiling.

Two server processes serve the ledger's CreateJournalEntry with the same echo servicer
(bench/chassis/server.py): one a bare grpc.aio server, one through `start_server` — tracing,
RED metrics, RS256 JWT verification, RBAC, idempotency key, request validation and the
card-data guard. ghz (a separate process) drives each at every concurrency with a realistic
two-posting entry (a fresh request_id per call). Reported: calls/s, the chassis/bare ratio, and
server CPU µs per call (utime+stime of the server process over the run / calls), which the
shared machine disturbs less than the wall clock. Before that, in-process: µs per
`RequestValidator.validate` for the hot request types of ledger, payments and checkout and
how many CEL programs the interpreter ran for them (the goal: none), and the CPU per call of
the interceptor chain itself (bench/chassis/inprocess.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.protobuf.descriptor import Descriptor
from google.protobuf.json_format import MessageToDict

from bench.chassis import inprocess
from bench.chassis.messages import hot_requests, journal_entry_request
from bench.chassis.server import AUDIENCE, ISSUER
from services.chassis.validation import RequestValidator

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".tools" / "bin"
CALL = "commerce.ledger.v1.LedgerService.CreateJournalEntry"
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Run:
    """One ghz run against one server."""

    server: str
    concurrency: int
    calls: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us_per_call: float


def _keys(directory: Path) -> tuple[str, Path]:
    """An RS256 token (tenant_admin of acme, valid for an hour) and the public key's file."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = directory / "jwt.pub.pem"
    public.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    now = int(time.time())
    claims = {
        "sub": "bench",
        "tenant": "acme",
        "roles": ["tenant_admin"],
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 3600,
    }
    return jwt.encode(claims, private, algorithm="RS256"), public


def _protoset(directory: Path) -> Path:
    path = directory / "commerce.binpb"
    subprocess.run(  # noqa: S603 - the pinned buf CLI
        [str(ROOT / "node_modules/.bin/buf"), "build", "proto", "-o", str(path)],
        check=True,
        cwd=ROOT,
    )
    return path


class ServerProcess:
    """A bench server in its own process; its CPU time read from /proc."""

    def __init__(self, variant: str, directory: Path, public_key: Path) -> None:
        self.variant = variant
        port_file = directory / f"{variant}.port"
        env = {**os.environ, "COMMERCE_BENCH_JWT_PUBLIC_KEY": str(public_key)}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(  # noqa: S603 - this interpreter, our module
            [sys.executable, "-m", "bench.chassis.server", variant, str(port_file)],
            cwd=ROOT,
            env=env,
        )
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the {variant} server did not start")
            time.sleep(0.05)
        self.target = f"127.0.0.1:{port_file.read_text()}"

    def cpu_seconds(self) -> float:
        """utime + stime of the server process so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def stop(self) -> None:
        """SIGTERM, then wait for the drain."""
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _ghz(
    server: ServerProcess,
    token: str,
    protoset: Path,
    concurrency: int,
    duration: str,
    *,
    calls: int | None = None,
) -> Run:
    data = MessageToDict(journal_entry_request(), preserving_proto_field_name=True)
    data["request_id"] = "{{newUUID}}"
    amount = ["-z", duration] if calls is None else ["-n", str(calls)]
    before = server.cpu_seconds()
    out = subprocess.run(  # noqa: S603 - the pinned load tool `make bench` installs
        [
            str(TOOLS / "ghz"),
            "--insecure",
            "--protoset",
            str(protoset),
            "--call",
            CALL,
            "-d",
            json.dumps(data),
            "-m",
            json.dumps({"authorization": f"Bearer {token}"}),
            "-c",
            str(concurrency),
            *amount,
            "--format",
            "json",
            server.target,
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    cpu = server.cpu_seconds() - before
    if out.returncode != 0:
        raise RuntimeError(f"ghz failed: {out.stderr.strip()}")
    report = json.loads(out.stdout)
    latency = {d["percentage"]: d["latency"] / 1e6 for d in report.get("latencyDistribution") or []}
    codes: dict[str, int] = report.get("statusCodeDistribution", {})
    ok = codes.get("OK", 0)
    # With -z, ghz cancels the calls still in flight when the time is up (at most one per
    # connection): those are the client's doing, not errors of the server.
    errors = sum(n for code, n in codes.items() if code not in {"OK", "Canceled", "Unavailable"})
    return Run(
        server.variant,
        concurrency,
        ok,
        report["rps"],
        latency.get(50, 0.0),
        latency.get(99, 0.0),
        errors,
        cpu / max(ok, 1) * 1e6,
    )


def measure_servers(seconds: float, concurrencies: list[int]) -> list[Run]:
    """ghz against the bare and the chassis server at each concurrency."""
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench-chassis-") as tmp:
        directory = Path(tmp)
        token, public_key = _keys(directory)
        protoset = _protoset(directory)
        servers = [ServerProcess(v, directory, public_key) for v in ("bare", "chassis")]
        try:
            for server in servers:  # warm up: imports, plans, connections
                warm = _ghz(server, token, protoset, 4, "", calls=500)
                if warm.errors or warm.calls != 500:  # noqa: PLR2004
                    raise RuntimeError(f"{server.variant} warm-up failed: {warm}")
            for concurrency in concurrencies:
                for server in servers:
                    run = _ghz(server, token, protoset, concurrency, f"{seconds}s")
                    runs.append(run)
                    print(  # noqa: T201 - a CLI reporting to the developer
                        _row(run), flush=True
                    )
        finally:
            for server in servers:
                server.stop()
    return runs


def measure_validation(rounds: int) -> dict[str, dict[str, float]]:
    """µs per validate() (CPU) and interpreted CEL programs per call, per hot request type."""
    validator = RequestValidator()
    requests = hot_requests()
    validator.prepare(cast("Descriptor", m.DESCRIPTOR) for m in requests.values())
    plans = validator._plans  # noqa: SLF001 - the interpreter counter is the plan compiler's
    figures: dict[str, dict[str, float]] = {}
    for label, message in requests.items():
        validator.validate(message)  # warm
        before = plans.interpreted_evaluations
        repeat = max(1, rounds // (100 if "100" in label else 1))
        started = time.process_time()
        for _ in range(repeat):
            validator.validate(message)
        elapsed = time.process_time() - started
        figures[label] = {
            "us_per_validate": elapsed / repeat * 1e6,
            "interpreted_per_validate": (plans.interpreted_evaluations - before) / repeat,
        }
        print(  # noqa: T201 - a CLI reporting to the developer
            f"  {label:40s} {figures[label]['us_per_validate']:9.1f} µs"
            f"  interpreted CEL/call {figures[label]['interpreted_per_validate']:.0f}",
            flush=True,
        )
    return figures


def _row(run: Run) -> str:
    return (
        f"  {run.server:8s} c={run.concurrency:<3d} {run.rps:8.0f} calls/s"
        f"  p50 {run.p50_ms:6.2f} ms  p99 {run.p99_ms:6.2f} ms"
        f"  server CPU {run.cpu_us_per_call:7.0f} µs/call  errors {run.errors}"
    )


def main() -> None:
    """Run the bench and write bench/chassis/results.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--validate-rounds", type=int, default=2000)
    parser.add_argument("--skip-servers", action="store_true", help="validation figures only")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results.json"))
    args = parser.parse_args()
    result: dict[str, Any] = {"tools": {"ghz": "v0.121.0"}, "seconds": args.seconds}
    print(  # noqa: T201 - a CLI reporting to the developer
        "validate():", flush=True
    )
    result["validation"] = measure_validation(args.validate_rounds)
    print("interceptors in-process (CPU µs/call):", flush=True)  # noqa: T201 - a CLI
    result["in_process"] = inprocess.measure()
    for label, micros in result["in_process"].items():
        print(f"  {label:40s} {micros:9.1f} µs", flush=True)  # noqa: T201 - a CLI
    if not args.skip_servers:
        print(  # noqa: T201 - a CLI reporting to the developer
            "servers (ghz):", flush=True
        )
        runs = measure_servers(args.seconds, args.concurrency)
        result["runs"] = [asdict(run) for run in runs]
        ratios = {}
        for concurrency in args.concurrency:
            bare = next(r for r in runs if r.server == "bare" and r.concurrency == concurrency)
            full = next(r for r in runs if r.server == "chassis" and r.concurrency == concurrency)
            ratios[f"c={concurrency}"] = {
                "rps_ratio": full.rps / bare.rps if bare.rps else 0.0,
                "chassis_cpu_us_per_call_over_bare": full.cpu_us_per_call - bare.cpu_us_per_call,
            }
            print(  # noqa: T201 - a CLI reporting to the developer
                f"  c={concurrency}: chassis/bare calls/s {full.rps / max(bare.rps, 1e-9):.2f}"
                f", chassis adds {full.cpu_us_per_call - bare.cpu_us_per_call:.0f} µs CPU/call",
                flush=True,
            )
        result["ratios"] = ratios
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
