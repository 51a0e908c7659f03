"""`python -m services.invoicing tie-out --tenant acme --start 2026-03-01 --end 2026-04-01`:
fetch GetTieOutReport (every page) from an invoicing server and print it (text or JSON).
Exit status 0 when tied out, 1 when there are differences, 2 when the call failed."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TextIO

from google.protobuf.json_format import MessageToDict
from google.protobuf.timestamp_pb2 import Timestamp

from clients.base import ClientSettings
from clients.channel import create_channel
from clients.errors import CommerceError
from clients.services import InvoicingClient
from commerce.invoicing.v1 import invoicing_service_pb2 as pb
from commerce.invoicing.v1 import tie_out_pb2 as tpb


def _moment(text: str) -> Timestamp:
    value = datetime.fromisoformat(text)
    stamp = Timestamp()
    stamp.FromDatetime(value if value.tzinfo else value.replace(tzinfo=UTC))
    return stamp


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m services.invoicing tie-out")
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--start", required=True, help="ISO date/time, inclusive (UTC if naive)")
    parser.add_argument("--end", required=True, help="ISO date/time, exclusive")
    parser.add_argument("--currency", default="", help="limit to one ISO 4217 currency")
    parser.add_argument(
        "--target", default=os.environ.get("COMMERCE_INVOICING_ADDR", "127.0.0.1:50054")
    )
    parser.add_argument(
        "--token-env", default="COMMERCE_TOKEN", help="environment variable holding the JWT"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


async def fetch(client: InvoicingClient, request: pb.GetTieOutReportRequest) -> tpb.TieOutReport:
    """The report with the differences of every page."""
    report: tpb.TieOutReport | None = None
    while True:
        reply = await client.call(client.stub.GetTieOutReport, request, timeout=60)
        if report is None:
            report = reply.report
        else:
            report.differences.extend(reply.report.differences)
        if not reply.next_page_token:
            return report
        request.page_token = reply.next_page_token


def _print_text(report: tpb.TieOutReport, out: TextIO) -> None:
    state = "TIED OUT" if report.tied_out else f"{report.difference_count} difference(s)"
    out.write(f"{report.name} {state}\n")
    out.write(
        f"payments {report.matched_payment_count}/{report.payment_count} matched, "
        f"invoices {report.matched_invoice_count}/{report.invoice_count}, "
        f"credit notes {report.matched_credit_note_count}/{report.credit_note_count}, "
        f"refunds {report.refund_count}\n"
    )
    for d in report.differences:
        kind = tpb.TieOutDifferenceKind.Name(d.kind).removeprefix("TIE_OUT_DIFFERENCE_KIND_")
        ids = " ".join(
            f"{label}={value}"
            for label, value in (
                ("invoice", d.invoice_number or d.invoice),
                ("credit_note", d.credit_note),
                ("payment", d.payment),
                ("refund", d.refund),
                ("ledger_entry", d.ledger_entry),
            )
            if value
        )
        out.write(
            f"{d.occur_time.ToJsonString()} {kind} {ids} "
            f"difference={d.difference_amount.amount_minor} {d.difference_amount.currency_code}: "
            f"{d.detail}\n"
        )


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    args = _parser().parse_args(argv)
    out = out or sys.stdout
    token = os.environ.get(args.token_env, "")
    settings = ClientSettings(token_provider=(lambda: token) if token else None)
    request = pb.GetTieOutReportRequest(
        name=f"tenants/{args.tenant}/tieOutReport",
        start_time=_moment(args.start),
        end_time=_moment(args.end),
        currency_code=args.currency,
        page_size=500,
    )

    async def run() -> tpb.TieOutReport:
        channel = create_channel(args.target)
        try:
            return await fetch(InvoicingClient(channel, settings), request)
        finally:
            await channel.close(grace=None)

    try:
        report = asyncio.run(run())
    except CommerceError as error:
        sys.stderr.write(f"tie-out failed: {error}\n")
        return 2
    if args.json:
        json.dump(MessageToDict(report), out, indent=2, sort_keys=True)
        out.write("\n")
    else:
        _print_text(report, out)
    return 0 if report.tied_out else 1
