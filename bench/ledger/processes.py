"""Server processes of the bench (each its own OS process, as in a pod) and their CPU time."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (all its threads), from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / _TICKS  # fields 14 and 15 of stat(5)


def parent_pid(pid: int) -> int | None:
    """The parent of `pid` (the postmaster of a backend), None if not on this machine."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat[stat.rindex(")") + 2 :].split()[1])
    except (OSError, ValueError):
        return None


def children_cpu_seconds(parent: int) -> float:
    """CPU of `parent` and its children, living or exited (the postmaster and its backends):
    its own utime + stime + cutime + cstime (children it reaped), plus its live children's."""
    stat = Path(f"/proc/{parent}/stat").read_text()
    own = stat[stat.rindex(")") + 2 :].split()
    total = sum(int(own[i]) for i in (11, 12, 13, 14)) / _TICKS
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[1]) == parent:
                total += (int(fields[11]) + int(fields[12])) / _TICKS
        except (OSError, ValueError, IndexError):
            continue  # a backend that exited meanwhile
    return total


@dataclass
class ServerGroup:
    """`replicas` processes of one server module serving one port (SO_REUSEPORT)."""

    module: str
    port: int
    processes: list[asyncio.subprocess.Process] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids)

    async def stop(self) -> None:
        for process in self.processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                await asyncio.wait_for(process.wait(), timeout=20)
            except TimeoutError:
                process.kill()
                await process.wait()


async def start_servers(
    module: str, environment: Mapping[str, str], replicas: int = 1, port: int | None = None
) -> ServerGroup:
    """Start `python -m <module>` `replicas` times on one port; return once each serves."""
    group = ServerGroup(module, port or free_port())
    env = {**os.environ, **environment, "COMMERCE_LEDGER_PORT": str(group.port)}
    try:
        for _ in range(replicas):
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", module, env=env, cwd=ROOT
            )
            group.processes.append(process)
            await _wait_listening(group.port, group.processes)
        await _wait_serving(group.port, group.processes)
    except BaseException:
        await group.stop()
        raise
    return group


def _listeners(port: int) -> int:
    """Sockets listening on 127.0.0.1:`port` (one per SO_REUSEPORT replica)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):  # gRPC may bind an IPv4-mapped socket
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


async def _wait_listening(port: int, processes: Sequence[asyncio.subprocess.Process]) -> None:
    for _ in range(600):
        if any(p.returncode is not None for p in processes):
            raise RuntimeError(f"a server on port {port} exited while starting")
        if _listeners(port) >= len(processes):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{len(processes)} servers never listened on port {port}")


async def _wait_serving(port: int, processes: Sequence[asyncio.subprocess.Process]) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(600):
            if any(p.returncode is not None for p in processes):
                raise RuntimeError(f"a server on port {port} exited while starting")
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"no server became SERVING on port {port}")
