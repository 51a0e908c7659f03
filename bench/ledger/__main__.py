"""`python -m bench.ledger`: ledger entries/s beside pgbench TPC-B tps, as ratios.

Measured like the deployment (ADR 0019): every party is its own OS process.
- PostgreSQL: a private embedded one (or COMMERCE_BENCH_DATABASE_URL, a superuser URL);
  pgbench runs against it in the same run (the ceiling the targets are ratios of).
- The ledger: `python -m services.ledger` — the real entry point, settings from
  `COMMERCE_LEDGER_*` (its database provisioned and migrated here first). `--replicas N`
  also measures N processes on one port (SO_REUSEPORT, as the HPA scales the Deployment);
  the 1-process figure is always reported.
- The floor: `python -m bench.ledger.floor` — the same chassis server, contract, interceptors
  and pool, whose entry RPCs run one trivial tenant transaction and no ledger work.
- The load: `ghz` (Go), one process per measurement, templated data (every request new).

For each concurrency (1 and 32): pgbench tps, then single-entry requests (CreateJournalEntry)
and batches of 100 (BatchCreateJournalEntries) on the floor and on the ledger. Beside each
rate: the server processes' CPU ms per entry and PostgreSQL's (postmaster and backends),
from /proc — far less disturbed by a shared machine's load than the wall clock.
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
from pathlib import Path
from typing import Any

import grpc
import jwt
import psycopg
from sqlalchemy.engine import URL

from bench.ledger import load, pgbench
from bench.ledger.processes import (
    ServerGroup,
    children_cpu_seconds,
    parent_pid,
    start_servers,
)
from commerce.ledger.v1 import ledger_service_pb2 as pb
from commerce.ledger.v1 import ledger_service_pb2_grpc as rpc
from commerce.ledger.v1 import resources_pb2 as res
from services.chassis.db.embedded import EmbeddedPostgres
from services.chassis.db.migrations import upgrade
from services.chassis.db.provision import provision_service_database
from services.chassis.db.settings import libpq_conninfo, normalize_postgres_url
from services.ledger.bootstrap import MIGRATIONS

TARGETS = {"single": 0.4, "batch": 3.0}
BATCH = 100
LEDGER_TENANT = "bench-ledger"
FLOOR_TENANT = "bench-floor"


def token(secret: str, tenant: str) -> str:
    now = int(time.time())
    claims = {
        "sub": "bench",
        "tenant": tenant,
        "roles": ["tenant_admin"],
        "iss": "commerce-mesh",
        "aud": "commerce-mesh",
        "iat": now,
        "exp": now + 86_400,
    }
    return jwt.encode(claims, secret)


async def _pgbench_database(admin: URL) -> tuple[URL, int | None]:
    """A fresh pgbench database, and the postmaster's pid (None if not on this machine)."""
    async with await psycopg.AsyncConnection.connect(
        libpq_conninfo(admin), autocommit=True
    ) as conn:
        await conn.execute("DROP DATABASE IF EXISTS bench_pgbench")
        await conn.execute("CREATE DATABASE bench_pgbench")
        row = await (await conn.execute("SELECT pg_backend_pid()")).fetchone()
        postmaster = parent_pid(row[0] if row else 0)  # while this backend lives
    return admin.set(database="bench_pgbench"), postmaster


async def open_accounts(port: int, bearer: str) -> None:
    parent = f"tenants/{LEDGER_TENANT}"
    metadata = (("authorization", f"Bearer {bearer}"),)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = rpc.LedgerServiceStub(channel)
        for account_id in load.account_ids():
            await stub.CreateAccount(
                pb.CreateAccountRequest(
                    parent=parent,
                    account_id=account_id,
                    account=res.Account(
                        code=account_id.upper(),
                        display_name=account_id,
                        currency_code="USD",
                        type=res.ACCOUNT_TYPE_ASSET,
                    ),
                    request_id=str(uuid.uuid4()),
                ),
                metadata=metadata,
            )


class Bench:
    def __init__(self, descriptors: Path, postmaster: int | None, secret: str) -> None:
        self._descriptors = descriptors
        self._postmaster = postmaster
        self.tokens = {t: token(secret, t) for t in (LEDGER_TENANT, FLOOR_TENANT)}

    async def measure(
        self, servers: ServerGroup, tenant: str, size: int, clients: int, seconds: float
    ) -> dict[str, Any]:
        """Entries/s of CreateJournalEntry (size 1) or batches of `size`, with CPU per entry."""
        parent = f"tenants/{tenant}"
        call, template = (
            (load.SINGLE, load.single_template(parent))
            if size == 1
            else (load.BATCH, load.batch_template(parent, size))
        )
        server_cpu = servers.cpu_seconds()
        pg_cpu = self._postgres_cpu()
        run = await asyncio.to_thread(
            load.ghz, servers.port, call, template, self.tokens[tenant], clients, seconds,
            self._descriptors,
        )  # fmt: skip
        server_cpu = servers.cpu_seconds() - server_cpu
        pg_cpu = self._postgres_cpu() - pg_cpu
        entries = run.ok_calls * size

        def per_entry(cpu: float) -> float:
            return 1000 * cpu / entries if entries else float("nan")

        return {
            "entries_per_s": entries / run.seconds,
            "calls_ok": run.ok_calls,
            "errors": run.errors,
            "error_kinds": run.error_kinds,
            "server_cpu_ms_per_entry": per_entry(server_cpu),
            # All of PostgreSQL: the server's backends (living or exited: the postmaster's
            # reaped children count) and autovacuum, checkpoints, WAL writes of this load.
            "postgres_cpu_ms_per_entry": per_entry(pg_cpu) if self._postmaster else None,
            "replicas": len(servers.pids),
        }

    def _postgres_cpu(self) -> float:
        return 0.0 if self._postmaster is None else children_cpu_seconds(self._postmaster)


async def measure(
    admin: URL, seconds: float, concurrencies: list[int], replicas: int
) -> dict[str, Any]:
    pgbench_url, postmaster = await _pgbench_database(admin)
    await pgbench.initialize(pgbench_url)
    provisioned = await provision_service_database(admin, f"bench_ledger_{secrets.token_hex(3)}")
    await upgrade(provisioned.owner_url, MIGRATIONS)
    secret = secrets.token_urlsafe(32)
    environment = {
        "COMMERCE_LEDGER_DATABASE_URL": provisioned.app_url.render_as_string(hide_password=False),
        "COMMERCE_LEDGER_AUTH__KEY": secret,
        "COMMERCE_LEDGER_AUTH__ALGORITHMS": '["HS256"]',
        "COMMERCE_LEDGER_LOG_LEVEL": "WARNING",
        "COMMERCE_LEDGER_GRACE_PERIOD_SECONDS": "2",
    }
    workdir = Path(tempfile.mkdtemp(prefix="ledger-bench-ghz-"))
    results: dict[str, Any] = {
        "seconds": seconds,
        "batch_size": BATCH,
        "load": "ghz v0.121.0, one process per measurement",
        "runs": [],
    }
    groups: dict[str, ServerGroup] = {}
    try:
        bench = Bench(load.protoset(workdir), postmaster, secret)
        groups["floor"] = await start_servers("bench.ledger.floor", environment)
        groups["ledger"] = await start_servers("services.ledger", environment)
        if replicas > 1:
            groups[f"ledger x{replicas}"] = await start_servers(
                "services.ledger", environment, replicas=replicas
            )
        for name, group in groups.items():  # for py-spy and friends
            print(f"{name}: port {group.port}, pids {group.pids}", file=sys.stderr)  # noqa: T201
        await open_accounts(groups["ledger"].port, bench.tokens[LEDGER_TENANT])
        for name, group in groups.items():  # warm up every process
            tenant = FLOOR_TENANT if name == "floor" else LEDGER_TENANT
            await bench.measure(group, tenant, 1, 4 * len(group.pids), 1)
            await bench.measure(group, tenant, BATCH, 2 * len(group.pids), 1)
        for clients in concurrencies:
            tps = await pgbench.tpcb_tps(pgbench_url, clients, seconds)
            run: dict[str, Any] = {"concurrency": clients, "pgbench_tps": tps}
            for kind, size in (("single", 1), ("batch", BATCH)):
                for name, group in groups.items():
                    tenant = FLOOR_TENANT if name == "floor" else LEDGER_TENANT
                    figure = await bench.measure(group, tenant, size, clients, seconds)
                    figure["ratio"] = figure["entries_per_s"] / tps
                    run.setdefault(name, {})[kind] = figure
            results["runs"].append(run)
            _print_run(run)
    finally:
        for group in groups.values():
            await group.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def _print_run(run: dict[str, Any]) -> None:
    lines = [f"\nconcurrency {run['concurrency']}: pgbench TPC-B {run['pgbench_tps']:.0f} tps"]
    for name, figures in run.items():
        if not isinstance(figures, dict):
            continue
        parts = []
        for kind in ("single", "batch"):
            f = figures[kind]
            pg = f["postgres_cpu_ms_per_entry"]
            parts.append(
                f"{kind} {f['entries_per_s']:7.0f} entries/s ({f['ratio']:.2f}x,"
                f" target {TARGETS[kind]}x) [cpu ms/entry: server"
                f" {f['server_cpu_ms_per_entry']:.2f}, postgres"
                f" {'-' if pg is None else f'{pg:.2f}'}"
                f"{', ' + str(f['errors']) + ' errors' if f['errors'] else ''}]"
            )
        lines.append(f"  {name:<10} " + "   ".join(parts))
    print("\n".join(lines))  # noqa: T201 - a CLI reporting to the developer


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ledger", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--concurrency", type=int, action="append", default=None)
    parser.add_argument(
        "--replicas", type=int, default=1, help="also measure N ledger processes on one port"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    configured = os.environ.get("COMMERCE_BENCH_DATABASE_URL")
    data_dir: Path | None = None
    embedded: EmbeddedPostgres | None = None
    if configured:
        admin = normalize_postgres_url(configured)
    else:
        data_dir = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
        embedded = EmbeddedPostgres(data_dir)
        admin = await asyncio.to_thread(embedded.start)
    try:
        results = await measure(admin, args.seconds, args.concurrency or [1, 32], args.replicas)
    finally:
        if embedded is not None:
            embedded.stop()
        if data_dir is not None:
            shutil.rmtree(data_dir, ignore_errors=True)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
