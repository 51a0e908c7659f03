"""`python -m bench.ledger`: ledger entries/s beside pgbench TPC-B tps, as ratios.

Starts a private embedded PostgreSQL (or uses COMMERCE_BENCH_DATABASE_URL, a superuser URL),
provisions and migrates a ledger database, serves it on a real chassis server, then measures
for each concurrency (1 and 32): pgbench TPC-B tps, single-entry requests/s and entries/s in
batches of 100 — through the full chassis server (with group commit for single entries,
ADR 0016), through it with request validation switched off (a diagnostic), and through the
use cases directly (no gRPC, no validation, no group commit). Each figure also reports the
process CPU per entry (client, server and use cases share this process), which the shared
machine's load disturbs far less than the wall clock.
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
from pathlib import Path
from typing import Any

import grpc
import psycopg
from sqlalchemy.engine import URL

from bench.ledger import pgbench
from bench.ledger.unvalidated import start_unvalidated
from bench.ledger.workload import CoreWorkload, GrpcWorkload, Rate, drive
from services.chassis.config import AuthSettings, ServerSettings
from services.chassis.db.database import Database
from services.chassis.db.embedded import EmbeddedPostgres
from services.chassis.db.migrations import upgrade
from services.chassis.db.provision import provision_service_database
from services.chassis.db.settings import libpq_conninfo, normalize_postgres_url
from services.chassis.server import start_server
from services.ledger.bootstrap import MIGRATIONS, registration
from services.ledger.config import ERROR_DOMAIN
from services.ledger.storage.unit_of_work import SqlTransactionRunner

TARGETS = {"single": 0.4, "batch": 3.0}
BATCH = 100


async def _pgbench_database(admin: URL) -> URL:
    async with await psycopg.AsyncConnection.connect(
        libpq_conninfo(admin), autocommit=True
    ) as conn:
        await conn.execute("DROP DATABASE IF EXISTS bench_pgbench")
        await conn.execute("CREATE DATABASE bench_pgbench")
    return admin.set(database="bench_pgbench")


async def measure(admin: URL, seconds: float, concurrencies: list[int]) -> dict[str, Any]:
    pgbench_url = await _pgbench_database(admin)
    await pgbench.initialize(pgbench_url)
    service = f"bench_ledger_{secrets.token_hex(3)}"
    provisioned = await provision_service_database(admin, service)
    await upgrade(provisioned.owner_url, MIGRATIONS)
    database = Database.connect(provisioned.app_url, pool_size=40, max_overflow=10)
    runner = SqlTransactionRunner(database)
    secret = secrets.token_urlsafe(32)
    settings = ServerSettings(port=0, auth=AuthSettings(key=secret, algorithms=["HS256"]))
    server = await start_server(settings, [registration(runner)], error_domain=ERROR_DOMAIN)
    bare = await start_unvalidated(settings, [registration(runner)])
    results: dict[str, Any] = {"seconds": seconds, "batch_size": BATCH, "runs": []}
    try:
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
            grpc.aio.insecure_channel(f"127.0.0.1:{bare.port}") as bare_channel,
        ):
            remote = GrpcWorkload(channel, "bench-grpc", secret)
            await remote.open_accounts()
            unvalidated = GrpcWorkload(bare_channel, "bench-bare", secret)
            await unvalidated.open_accounts()
            core = CoreWorkload(runner, "bench-core")
            await core.open_accounts()
            for _, workload in measured_paths(remote, unvalidated, core):  # warm caches
                await drive(workload.single, 4, 0.5)
                await drive(workload.batch(BATCH), 2, 0.5)
            for clients in concurrencies:
                tps = await pgbench.tpcb_tps(pgbench_url, clients, seconds)
                run: dict[str, Any] = {"concurrency": clients, "pgbench_tps": tps}
                for path, workload in measured_paths(remote, unvalidated, core):
                    single: Rate = await drive(workload.single, clients, seconds)
                    batch: Rate = await drive(workload.batch(BATCH), clients, seconds)
                    run[path] = {
                        "single_entries_per_s": single.per_second,
                        "single_ratio": single.per_second / tps,
                        "batch_entries_per_s": batch.per_second,
                        "batch_ratio": batch.per_second / tps,
                        "single_cpu_ms_per_entry": single.cpu_ms_per_entry,
                        "batch_cpu_ms_per_entry": batch.cpu_ms_per_entry,
                    }
                results["runs"].append(run)
                _print_run(run)
    finally:
        await bare.stop()
        await server.stop()
        await database.dispose()
    return results


def measured_paths(
    remote: GrpcWorkload, unvalidated: GrpcWorkload, core: CoreWorkload
) -> list[tuple[str, GrpcWorkload | CoreWorkload]]:
    """gRPC through the full chassis; gRPC without validation; the use cases alone."""
    return [("grpc", remote), ("grpc-no-validation", unvalidated), ("core", core)]


def _print_run(run: dict[str, Any]) -> None:
    print(  # noqa: T201 - a CLI reporting to the developer
        f"\nconcurrency {run['concurrency']}: pgbench TPC-B {run['pgbench_tps']:.0f} tps"
    )
    for path in ("grpc", "grpc-no-validation", "core"):
        r = run[path]
        print(  # noqa: T201 - a CLI reporting to the developer
            f"  {path:<18} single {r['single_entries_per_s']:8.0f} entries/s"
            f" ({r['single_ratio']:.2f}x, target {TARGETS['single']}x)"
            f" [{r['single_cpu_ms_per_entry']:.2f} cpu ms/entry]"
            f"   batch {r['batch_entries_per_s']:8.0f} entries/s"
            f" ({r['batch_ratio']:.2f}x, target {TARGETS['batch']}x)"
            f" [{r['batch_cpu_ms_per_entry']:.2f} cpu ms/entry]"
        )


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ledger", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--concurrency", type=int, action="append", default=None)
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
        results = await measure(admin, args.seconds, args.concurrency or [1, 32])
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
