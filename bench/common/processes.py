"""CPU time per process from /proc/<pid>/stat (utime + stime), sampled around a measured run.

The services, relays, the PSP sandbox, the echo and floor servers are our own child
processes (their pids are known). PostgreSQL's backends are the postmaster's children: they
are summed as one "postgres" figure (a backend that exits inside the window loses its share;
the services keep pooled connections, so the measured path's backends live through it).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
_PROC = Path("/proc")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of `pid` so far; None once it is gone."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ..." — comm may hold spaces and parentheses: split after the last ")".
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def children(parent: int) -> list[int]:
    """The live processes whose parent is `parent`."""
    found = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            found.append(int(entry.name))
    return found


def postmaster_pid(data_dir: Path) -> int | None:
    """The pid of the PostgreSQL server whose data directory is under `data_dir`."""
    for pidfile in data_dir.rglob("postmaster.pid"):
        first = pidfile.read_text().splitlines()[:1]
        if first and first[0].strip().isdigit():
            return int(first[0])
    return None


PidSource = Callable[[], list[int]]


@dataclass
class CpuMeter:
    """Samples the CPU seconds of named groups of processes."""

    groups: Mapping[str, PidSource]

    def sample(self) -> dict[str, dict[int, float]]:
        taken: dict[str, dict[int, float]] = {}
        for name, pids in self.groups.items():
            seconds = {pid: cpu_seconds(pid) for pid in pids()}
            taken[name] = {pid: s for pid, s in seconds.items() if s is not None}
        return taken

    @staticmethod
    def used(
        before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]
    ) -> dict[str, float]:
        """CPU seconds each group used between two samples (processes alive at the end; one
        born in between counts from zero)."""
        return {
            name: sum(s - before.get(name, {}).get(pid, 0.0) for pid, s in now.items())
            for name, now in after.items()
        }


def fixed(*pids: int) -> PidSource:
    return lambda: list(pids)


def with_children(pid: int) -> PidSource:
    """A process and its children (the postmaster and its backends)."""
    return lambda: [pid, *children(pid)]
