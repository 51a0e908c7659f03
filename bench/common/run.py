"""Run a k6 script against a target and measure it: ops/s, p50/p99 and CPU ms per operation of
every process involved (the load generator included)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bench.common.processes import CpuMeter, PidSource, fixed, postmaster_pid, with_children
from services.localmesh import DEV_PORTS, LocalMesh, free_ports

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".tools" / "bin"
K6_VERSION = "v1.8.1"


@dataclass
class Figure:
    """One measured k6 run."""

    path: str  # "echo", "payments", "floor", "checkout"
    vus: int
    seconds: float
    ops: int
    errors: int
    p50_ms: float
    p99_ms: float
    cpu_ms_per_op: dict[str, float] = field(default_factory=dict)
    # The same less each process's idle CPU (relay polling, sweepers, metrics) over the run.
    cpu_ms_per_op_net: dict[str, float] = field(default_factory=dict)
    steps: dict[str, dict[str, float]] = field(default_factory=dict)  # step -> p50/p99 ms
    detail: dict[str, float] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.ops / self.seconds


def protoset(directory: Path) -> Path:
    """The contracts as a descriptor set for k6 (`buf build proto`)."""
    path = directory / "commerce.binpb"
    subprocess.run(  # noqa: S603 - the pinned buf CLI
        [str(ROOT / "node_modules/.bin/buf"), "build", "proto", "-o", str(path)],
        check=True, cwd=ROOT,
    )  # fmt: skip
    return path


def run_k6(
    script: Path, env: Mapping[str, str], vus: int, seconds: float, out: Path
) -> tuple[dict[str, Any], float]:
    """One k6 run; its summary (k6common.js) and k6's own CPU seconds."""
    settings = {**env, "VUS": str(vus), "SECONDS": str(seconds), "SUMMARY": str(out)}
    out.unlink(missing_ok=True)
    log = out.with_suffix(".log")
    with log.open("wb") as sink:
        process = subprocess.Popen(  # noqa: S603 - the pinned load tool `make bench` installs
            [str(TOOLS / "k6"), "run", "--no-usage-report", "--quiet", script.name],
            cwd=script.parent, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **settings},
        )  # fmt: skip
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text(errors="replace")
    if process.returncode != 0 or not out.exists():
        raise RuntimeError(f"k6 {script.name} failed ({process.returncode}): {text[-2000:]}")
    errors = [line for line in text.splitlines() if "level=error" in line]
    if errors:
        print(f"k6 {script.name} vus={vus}:", *errors[:5], sep="\n", file=sys.stderr)  # noqa: T201
    return json.loads(out.read_text()), usage.ru_utime + usage.ru_stime


async def measure(  # noqa: PLR0917 - one run's whole description
    path: str,
    script: Path,
    env: Mapping[str, str],
    vus: int,
    seconds: float,
    meter: CpuMeter,
    work_dir: Path,
    *,
    latency_step: str | None = None,
    idle: Mapping[str, float] | None = None,
) -> Figure:
    """`latency_step`: take p50/p99 from that step's own gRPC durations (a one-call operation,
    timed by k6 to the microsecond) instead of the operation's wall time."""
    out = work_dir / f"{path}.vus{vus}.json"
    before = meter.sample()
    started = time.monotonic()
    report, k6_cpu = await asyncio.to_thread(run_k6, script, env, vus, seconds, out)
    elapsed = time.monotonic() - started
    used = CpuMeter.used(before, meter.sample())
    used["k6 (load)"] = k6_cpu
    ops = int(report["ops"])
    steps: dict[str, dict[str, float]] = {
        name: {"p50_ms": v.get("p(50)", 0.0), "p99_ms": v.get("p(99)", 0.0)}
        for name, v in report["steps"].items()
    }
    op_ms: dict[str, float] = report["op_ms"]
    if latency_step is not None:
        p50, p99 = steps[latency_step]["p50_ms"], steps[latency_step]["p99_ms"]
    else:
        p50, p99 = op_ms.get("p(50)", 0.0), op_ms.get("p(99)", 0.0)
    # CPU over the whole k6 run (start-up and graceful stop included) per operation counted.
    per_op = {name: round(1000 * s / max(ops, 1), 3) for name, s in used.items()}
    net = {
        name: round(1000 * max(0.0, s - (idle or {}).get(name, 0.0) * elapsed) / max(ops, 1), 3)
        for name, s in used.items()
    }
    return Figure(
        path, vus, seconds, ops, int(report["op_errors"]), round(p50, 3), round(p99, 3),
        per_op, net, steps, {"k6_wall_s": round(elapsed, 2), "iterations": report["iterations"],
         "pool_dry": report.get("pool_dry", 0)},
    )  # fmt: skip


async def idle_rates(meter: CpuMeter, seconds: float) -> dict[str, float]:
    """CPU seconds per second each group uses with no load (sampled over `seconds`)."""
    before = meter.sample()
    started = time.monotonic()
    await asyncio.sleep(seconds)
    used = CpuMeter.used(before, meter.sample())
    elapsed = time.monotonic() - started
    return {name: s / elapsed for name, s in used.items()}


@dataclass
class Rig:
    """The local mesh (each part its own process) plus extra bench servers (echo, floor)."""

    mesh: LocalMesh
    work_dir: Path
    extra: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    extra_ports: dict[str, int] = field(default_factory=dict)
    logs: list[IO[bytes]] = field(default_factory=list)

    def meter(self) -> CpuMeter:
        groups: dict[str, PidSource] = {r.part.key: fixed(r.process.pid) for r in self.mesh.running}
        groups.update({name: fixed(p.pid) for name, p in self.extra.items()})
        postmaster = postmaster_pid(self.work_dir / "postgres")
        if postmaster is not None:
            groups["postgres"] = with_children(postmaster)
        return CpuMeter(groups)

    def url(self, key: str) -> str:
        if key in self.extra_ports:
            return f"127.0.0.1:{self.extra_ports[key]}"
        return self.mesh.url(key)

    async def spawn(self, name: str, argv: Sequence[str]) -> None:
        """A bench server in its own process, waited for until it accepts connections."""
        port = self.extra_ports[name]
        log = (self.work_dir / "logs" / f"{name}.log").open("ab")
        self.logs.append(log)
        process = await asyncio.create_subprocess_exec(
            sys.executable, *argv, cwd=ROOT, stdin=asyncio.subprocess.DEVNULL, stdout=log,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.extra[name] = process
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"{name} exited; see {log.name}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            writer.close()
            return
        raise RuntimeError(f"{name} did not listen on {port}")

    async def stop(self) -> list[tuple[str, int]]:
        for process in self.extra.values():
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 10)
                except TimeoutError:
                    process.kill()
                    await process.wait()
        for log in self.logs:
            log.close()
        failed = await self.mesh.stop()
        if not failed:
            shutil.rmtree(self.work_dir, ignore_errors=True)
        else:
            print(f"logs kept in {self.work_dir / 'logs'}", file=sys.stderr)  # noqa: T201
        return failed

    def profile(self, key: str, seconds: float, out: Path) -> subprocess.Popen[bytes]:
        """py-spy samples one mesh part for `seconds` (raw collapsed stacks into `out`)."""
        pid = next(r.process.pid for r in self.mesh.running if r.part.key == key)
        return subprocess.Popen(  # noqa: S603 - the venv's py-spy
            [str(ROOT / ".venv/bin/py-spy"), "record", "--nonblocking", "-p", str(pid),
             "-d", str(int(seconds)), "-r", "200", "-f", "raw", "-o", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip


def new_rig(
    parts: frozenset[str], extra: Sequence[str], env: Mapping[str, str] | None = None
) -> Rig:
    """A rig on free ports in a fresh directory (not started); `env` reaches every part (for
    experiments such as COMMERCE_DATABASE_POOL_SIZE=20; none by default: the deployed
    settings)."""
    work_dir = Path(tempfile.mkdtemp(prefix="commerce-bench-"))
    (work_dir / "logs").mkdir()
    key_file = work_dir / "jwt.key"
    key_file.write_text(secrets.token_urlsafe(48))
    passwords: dict[str, str] = {}
    ports = free_ports([*DEV_PORTS, *extra])
    mesh = LocalMesh(
        data_dir=work_dir,
        ports={k: ports[k] for k in DEV_PORTS},
        jwt_key_file=key_file,
        secret=lambda name: passwords.setdefault(name, secrets.token_urlsafe(24)),
        only=parts,
        extra_env=dict(env or {}),
    )
    return Rig(mesh, work_dir, extra_ports={k: ports[k] for k in extra})


def parse_env(pairs: Sequence[str]) -> dict[str, str]:
    """`KEY=VALUE` arguments as a mapping."""
    return dict(pair.split("=", 1) for pair in pairs)


def ratio(measured: Figure, ceiling: Figure) -> float:
    return round(measured.per_second / ceiling.per_second, 4) if ceiling.ops else 0.0


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def require_k6() -> None:
    if not (TOOLS / "k6").exists():
        sys.exit(f"{TOOLS / 'k6'} is missing: run `make bench` (it installs the load tools)")


def record(
    path: Path | None,
    results: Mapping[str, Any],
    *,
    started: float,
    load_before: list[float],
    seconds: float,
    target: float,
    env: Mapping[str, str],
) -> None:
    """Write one run's results with what it ran on (tools, load, settings) to `path`, if any."""
    if path is None:
        return
    document = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": seconds,
        "tools": {"k6": K6_VERSION},
        "target_ratio": target,
        "env": dict(env),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        **results,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
