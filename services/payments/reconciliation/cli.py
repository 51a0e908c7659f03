"""`python -m services.payments.reconciliation`: reconcile a settlement report from the shell.

    python -m services.payments.reconciliation --report settlement.csv --psp sandbox \\
        --start 2026-11-20 --end 2026-11-21 --sources export.json [--format json]
    python -m services.payments.reconciliation --report settlement.csv --psp sandbox \\
        --start 2026-11-20 --end 2026-11-21 --tenant acme \\
        --payments-target 127.0.0.1:50052 --ledger-target 127.0.0.1:50051 [--post]

Both sides come through the ReconciliationSources port: a JSON export (`--sources`) or the
running mesh over gRPC (bearer token from `$COMMERCE_TOKEN`, or the variable `--token-env`
names). Exit status: 0 when everything ties out, 1 when there are differences, 2 when the
run could not be made (bad arguments, unreadable or malformed report, unreachable service).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TextIO

import httpx

from clients.base import ClientSettings
from clients.channel import create_channel
from clients.errors import CommerceError
from clients.services import LedgerClient, PaymentsClient
from services.payments.domain.reconciliation import Period, Reconciliation
from services.payments.domain.reconciliation_postings import (
    MissingAccountsError,
    SettlementJournalEntry,
    plan_settlement_entries,
)
from services.payments.reconciliation.file_sources import JsonFileSources, SourcesFileError
from services.payments.reconciliation.grpc_sources import GrpcReconciliationSources
from services.payments.reconciliation.ingest import SettlementReportError
from services.payments.reconciliation.ports import (
    ReconciliationSources,
    ReportUnavailableError,
    SettlementReports,
)
from services.payments.reconciliation.posting import (
    payments_settlement_accounts,
    post_settlement_entries,
)
from services.payments.reconciliation.render import report_json, report_table
from services.payments.reconciliation.reports import (
    FileSettlementReports,
    HttpSettlementReports,
)
from services.payments.reconciliation.runner import run_reconciliation

EXIT_TIES_OUT = 0
EXIT_DIFFERENCES = 1
EXIT_ERROR = 2


def _moment(text: str) -> datetime:
    """A date (midnight UTC) or an ISO 8601 time with its offset."""
    try:
        if len(text) == len("YYYY-MM-DD"):
            return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        msg = f"{text!r} is not a date (YYYY-MM-DD) or an ISO 8601 time"
        raise argparse.ArgumentTypeError(msg) from exc
    if moment.tzinfo is None:
        msg = f"{text!r} needs a UTC offset (e.g. Z or +00:00)"
        raise argparse.ArgumentTypeError(msg)
    return moment


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m services.payments.reconciliation",
        description="Reconcile a PSP settlement report against payments and the ledger.",
    )
    p.add_argument("--report", required=True, help="settlement report: a CSV file or http(s) URL")
    p.add_argument("--psp", default="sandbox", help="the PSP reconciled (default: sandbox)")
    p.add_argument("--start", required=True, type=_moment, help="period start, inclusive")
    p.add_argument("--end", required=True, type=_moment, help="period end, exclusive")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--sources", type=Path, help="JSON export of both sides (offline run)")
    p.add_argument("--tenant", help="tenant id, for the mesh and for settlement accounts")
    p.add_argument("--payments-target", help="payments gRPC address, e.g. 127.0.0.1:50052")
    p.add_argument("--ledger-target", help="ledger gRPC address, e.g. 127.0.0.1:50051")
    p.add_argument("--token-env", default="COMMERCE_TOKEN", help="variable with the bearer token")
    p.add_argument(
        "--plan-postings",
        action="store_true",
        help="list the settlement and fee entries matched lines call for (needs --tenant)",
    )
    p.add_argument("--post", action="store_true", help="post those entries to the ledger")
    return p


def _check(args: argparse.Namespace, p: argparse.ArgumentParser) -> None:
    if args.start >= args.end:
        p.error("--start must be before --end")
    mesh = (args.tenant, args.payments_target, args.ledger_target)
    if args.sources is None and not all(mesh):
        p.error("give --sources FILE, or --tenant, --payments-target and --ledger-target")
    if args.sources is not None and (args.payments_target or args.ledger_target):
        p.error("--sources reads both sides; it excludes --payments-target/--ledger-target")
    if (args.plan_postings or args.post) and not args.tenant:
        p.error("--plan-postings and --post need --tenant (the accounts are the tenant's)")
    if args.post and args.ledger_target is None:
        p.error("--post needs --ledger-target")


def _reports(location: str, http: httpx.AsyncClient) -> SettlementReports:
    if location.startswith(("http://", "https://")):
        return HttpSettlementReports(http, [location])
    return FileSettlementReports(Path(location).resolve().parent)


@asynccontextmanager
async def _mesh(
    args: argparse.Namespace,
) -> AsyncIterator[tuple[PaymentsClient, LedgerClient] | None]:
    if args.sources is not None:
        yield None
        return
    token = os.environ.get(args.token_env, "")
    settings = ClientSettings(token_provider=(lambda: token) if token else None)
    async with (
        create_channel(args.payments_target) as payments_channel,
        create_channel(args.ledger_target) as ledger_channel,
    ):
        yield PaymentsClient(payments_channel, settings), LedgerClient(ledger_channel, settings)


async def _run(args: argparse.Namespace, out: TextIO) -> int:
    period = Period(args.start, args.end)
    location: str = args.report
    async with httpx.AsyncClient() as http, _mesh(args) as mesh:
        sources: ReconciliationSources
        if mesh is None:
            sources = JsonFileSources(args.sources)
        else:
            sources = GrpcReconciliationSources(mesh[0], mesh[1], args.tenant)
        result = await run_reconciliation(
            psp=args.psp,
            period=period,
            settlement_report=location,
            reports=_reports(location, http),
            sources=sources,
        )
        planned = _plan(args, result)
        if args.post and mesh is not None:
            outcome = await post_settlement_entries(mesh[1], args.tenant, planned)
            sys.stderr.write(
                f"posted {len(outcome.posted)} entries, {len(outcome.already_posted)} were "
                "already posted\n"
            )
    if args.format == "json":
        json.dump(report_json(result, period, location, planned), out, indent=2)
        out.write("\n")
    else:
        out.write(report_table(result, period, location, planned))
    return EXIT_DIFFERENCES if result.differences else EXIT_TIES_OUT


def _plan(args: argparse.Namespace, result: Reconciliation) -> tuple[SettlementJournalEntry, ...]:
    if not (args.plan_postings or args.post):
        return ()
    currencies = sorted({t.currency for t in result.totals})
    return plan_settlement_entries(result, payments_settlement_accounts(args.tenant, currencies))


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    p = parser()
    args = p.parse_args(argv)
    _check(args, p)
    if "://" not in args.report:
        args.report = str(Path(args.report).resolve())
    try:
        return asyncio.run(_run(args, out))
    except (
        SettlementReportError,
        ReportUnavailableError,
        SourcesFileError,
        MissingAccountsError,
        CommerceError,
    ) as exc:
        sys.stderr.write(f"reconciliation failed: {exc}\n")
        return EXIT_ERROR
