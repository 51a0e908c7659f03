"""The ceiling: pgbench's TPC-B-like transaction rate on the PostgreSQL under test."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pgserver
from sqlalchemy.engine import URL

_TPS = re.compile(r"tps = ([0-9.]+) \(without initial connection time\)")


def pgbench_binary() -> Path:
    """pgbench ships in the pgserver wheel next to postgres."""
    return Path(pgserver.__file__).parent / "pginstall" / "bin" / "pgbench"


def _environment(admin: URL) -> dict[str, str]:
    host = admin.query.get("host") or admin.host or ""
    return {
        **os.environ,
        "PGHOST": str(host),
        "PGPORT": str(admin.query.get("port") or admin.port or 5432),
        "PGUSER": admin.username or "postgres",
        "PGPASSWORD": admin.password or "",
        "PGDATABASE": admin.database or "postgres",
    }


async def _run(admin: URL, *arguments: str) -> str:
    process = await asyncio.create_subprocess_exec(
        str(pgbench_binary()),
        *arguments,
        env=_environment(admin),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"pgbench {' '.join(arguments)} failed:\n{output.decode()}")
    return output.decode()


async def initialize(admin: URL, scale: int = 1) -> None:
    await _run(admin, "-i", "-q", "-s", str(scale))


async def tpcb_tps(admin: URL, clients: int, seconds: float) -> float:
    """Transactions per second of the built-in TPC-B-like script."""
    output = await _run(
        admin,
        "-n",
        "-c",
        str(clients),
        "-j",
        str(min(clients, 2)),
        "-T",
        str(max(1, round(seconds))),
    )
    match = _TPS.search(output)
    if match is None:
        raise RuntimeError(f"no tps in pgbench output:\n{output}")
    return float(match.group(1))
