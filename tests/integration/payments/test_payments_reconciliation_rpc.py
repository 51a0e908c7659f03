"""RunReconciliation / GetReconciliationReport / ListReconciliationReports over gRPC.

Real payments server (PostgreSQL), real ledger server, a real PSP sandbox over HTTP: payments
are made through the RPCs, the sandbox's settlement report is reconciled through the RPC
(downloaded over HTTP, or planted with differences in the report directory), and the report,
the ledger postings and the outbox are read back.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from clients.base import ClientSettings
from clients.channel import create_channel
from clients.services import LedgerClient
from commerce.ledger.v1 import ledger_service_pb2 as lpb
from commerce.payments.v1 import events_pb2 as ev
from commerce.payments.v1 import payments_service_pb2 as pb
from commerce.payments.v1 import payments_service_pb2_grpc as rpc
from commerce.payments.v1 import reconciliation_pb2 as rpb
from services.chassis.server import start_server
from services.payments.bootstrap import SERVICE_ROLE, registration
from services.payments.config import ERROR_DOMAIN, PspCredentials
from services.payments.ledger import LedgerPostings
from services.payments.psp.registry import build_registry
from services.payments.reconciliation.reports import (
    FileSettlementReports,
    HttpSettlementReports,
    SettlementReportsByScheme,
)
from services.payments.reconciliation.service import (
    ReconciliationOptions,
    ReconciliationService,
)
from services.payments.sandbox.books import capture_fee
from services.payments.sandbox.config import SandboxConfig
from services.payments.sandbox.server import start_sandbox
from services.payments.service import PaymentsService, ServiceOptions
from services.payments.storage.unit_of_work import TransactionRunner
from tests.integration.payments.conftest import (
    FAST_PSP,
    WEBHOOK_SECRET,
    Payments,
    jwt_token,
    new_request_id,
    server_settings,
)

pytestmark = pytest.mark.integration

BASIC = rpb.RECONCILIATION_REPORT_VIEW_BASIC
SUCCEEDED = rpb.RECONCILIATION_STATE_SUCCEEDED
FAILED = rpb.RECONCILIATION_STATE_FAILED
RUNNING = rpb.RECONCILIATION_STATE_RUNNING


@dataclass
class Env:
    payments: Payments
    reconciliation: ReconciliationService
    reports: SettlementReportsByScheme
    report_dir: Path
    runner: TransactionRunner
    ledger: LedgerClient
    postings: LedgerPostings
    psps: tuple[str, ...]

    @property
    def settlements(self) -> str:
        return f"{self.payments.alpha.url}/v1/settlements"

    def service(
        self, reports: SettlementReportsByScheme | None = None, **options: object
    ) -> ReconciliationService:
        """Another ReconciliationService on the same database (a second process)."""
        return ReconciliationService(
            self.runner,
            psps=lambda: self.psps,
            reports=reports or self.reports,
            ledger=self.ledger,
            postings=self.postings,
            options=ReconciliationOptions(**options),  # type: ignore[arg-type]
        )


@pytest.fixture
async def env(ledger_stack, payments_database, tmp_path) -> AsyncIterator[Env]:
    """A payments server with reconciliation wired, on its own sandbox (its settlement report
    holds this test's lines only)."""
    sandbox = await start_sandbox(
        config=SandboxConfig(timeout_seconds=2.0), webhook_secret=WEBHOOK_SECRET
    )
    credentials = {
        "alpha": PspCredentials(
            kind="sandbox", base_url=sandbox.url, webhook_secret=WEBHOOK_SECRET.decode()
        )
    }
    http = httpx.AsyncClient(follow_redirects=False)
    registry = build_registry(credentials, FAST_PSP, http)
    channel = create_channel(f"127.0.0.1:{ledger_stack.port}")
    ledger = LedgerClient(
        channel, ClientSettings(token_provider=lambda: jwt_token(None, SERVICE_ROLE))
    )
    runner = TransactionRunner(payments_database)
    postings = LedgerPostings(ledger)
    service = PaymentsService(
        runner,
        registry.psps,
        postings,
        webhook_secrets=registry.webhook_secrets,
        options=ServiceOptions(psp_deadline_seconds=FAST_PSP.deadline_seconds),
    )
    http_reports = HttpSettlementReports(http, [f"{sandbox.url}/v1/settlements"])
    reports = SettlementReportsByScheme(
        {"http": http_reports, "https": http_reports, "file": FileSettlementReports(tmp_path)}
    )
    reconciliation = ReconciliationService(
        runner, psps=lambda: service.psp_ids, reports=reports, ledger=ledger, postings=postings
    )
    server = await start_server(
        server_settings(),
        [registration(service, runner, reconciliation)],
        error_domain=ERROR_DOMAIN,
    )
    grpc_channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    payments = Payments(
        stub=rpc.PaymentsServiceStub(grpc_channel),
        service=service,
        registry=registry,
        database=payments_database,
        ledger=ledger_stack,
        alpha=sandbox,
        beta=sandbox,
        webhook_url="",
        spans=InMemorySpanExporter(),
    )
    try:
        yield Env(
            payments, reconciliation, reports, tmp_path, runner, ledger, postings, service.psp_ids
        )
    finally:
        await reconciliation.close()
        await grpc_channel.close(None)
        await server.stop()
        await channel.close(None)
        await http.aclose()
        await sandbox.close()


def _stamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def run_request(
    env: Env, location: str, *, report_id: str = "", request_id: str | None = None
) -> pb.RunReconciliationRequest:
    now = datetime.now(UTC)
    start = (now - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    return pb.RunReconciliationRequest(
        parent=env.payments.parent,
        report_id=report_id,
        psp="alpha",
        start_time=_stamp(start),
        end_time=_stamp(start + timedelta(hours=3)),
        settlement_report=location,
        request_id=request_id or new_request_id(),
    )


def report_url(env: Env, request: pb.RunReconciliationRequest) -> str:
    first = request.start_time.ToDatetime().date().isoformat()
    last = request.end_time.ToDatetime().date().isoformat()
    return f"{env.settlements}?from={first}&to={last}"


async def finished(env: Env, name: str) -> rpb.ReconciliationReport:
    """The report once its run is over (polled through GetReconciliationReport, FULL view)."""
    for _ in range(200):
        reply = await env.payments.call(
            "GetReconciliationReport", pb.GetReconciliationReportRequest(name=name)
        )
        if reply.report.state != RUNNING:
            report: rpb.ReconciliationReport = reply.report
            return report
        await asyncio.sleep(0.02)
    pytest.fail(f"{name} is still RUNNING")


async def capture(env: Env, amount: int) -> str:
    payment = await env.payments.authorize(amount)
    await env.payments.capture(payment.name)
    return payment.name


async def completed_events(env: Env, name: str) -> list[ev.ReconciliationCompleted]:
    async with env.payments.database.transaction() as session:
        rows = (
            await session.execute(
                text("SELECT type, data FROM outbox WHERE subject = :s ORDER BY position"),
                {"s": name},
            )
        ).all()
    assert {row.type for row in rows} <= {ev.ReconciliationCompleted.DESCRIPTOR.full_name}
    return [ev.ReconciliationCompleted.FromString(bytes(row.data)) for row in rows]


def key(difference: rpb.ReconciliationDifference) -> tuple[int, str, int, int]:
    return (
        difference.kind,
        difference.payment,
        difference.expected.amount_minor,
        difference.actual.amount_minor,
    )


async def test_a_report_with_a_missing_a_duplicated_and_an_off_by_one_cent_line_finds_exactly_those(
    env,
):
    payments = env.payments
    await payments.route("alpha")
    missing = await capture(env, 10_000)
    duplicated = await capture(env, 2_000)
    off = await capture(env, 999)
    clean = await capture(env, 5_000)
    await payments.call("RefundPayment", payments.refund_request(clean, 1_500))
    references = {
        name: (await payments.get(name)).psp_reference for name in (missing, duplicated, off)
    }
    request = run_request(env, "planted.csv", report_id="planted")
    async with httpx.AsyncClient() as http:
        pristine = (await http.get(report_url(env, request))).text.splitlines()
    header, lines = pristine[0], pristine[1:]
    assert len(lines) == 5  # four captures and the refund

    def line_of(name: str) -> str:
        [line] = [x for x in lines if f",{references[name]}," in x]
        return line

    planted = [x for x in lines if x != line_of(missing)]  # the PSP never settled it
    planted.append(line_of(duplicated))  # settled twice
    fields = line_of(off).split(",")  # ...,gross_minor,fee_minor,net_minor: one cent more
    fields[-3], fields[-1] = str(int(fields[-3]) + 1), str(int(fields[-1]) + 1)
    planted[planted.index(line_of(off))] = ",".join(fields)
    (env.report_dir / "planted.csv").write_text("\n".join([header, *planted]) + "\n")

    reply = await payments.call("RunReconciliation", request)
    assert reply.report.name == f"{payments.parent}/reconciliationReports/planted"
    assert reply.report.state in (RUNNING, SUCCEEDED)
    assert not reply.report.differences  # BASIC view

    report = await finished(env, reply.report.name)
    assert report.state == SUCCEEDED, report.failure_reason
    assert sorted(key(d) for d in report.differences) == sorted(
        [
            (rpb.RECONCILIATION_DIFFERENCE_KIND_MISSING_IN_PSP, missing, 10_000, 0),
            (rpb.RECONCILIATION_DIFFERENCE_KIND_DUPLICATE, duplicated, 2_000, 2_000),
            (rpb.RECONCILIATION_DIFFERENCE_KIND_AMOUNT_MISMATCH, off, 999, 1_000),
        ]
    )
    by_kind = {d.kind: d for d in report.differences}
    duplicate = by_kind[rpb.RECONCILIATION_DIFFERENCE_KIND_DUPLICATE]
    assert (duplicate.occurrences, duplicate.actual_source) == (
        2,
        rpb.RECONCILIATION_SOURCE_SETTLEMENT_REPORT,
    )
    assert duplicate.settlement_record_id
    mismatch = by_kind[rpb.RECONCILIATION_DIFFERENCE_KIND_AMOUNT_MISMATCH]
    assert mismatch.settlement_record_id
    assert mismatch.journal_entry == ""
    assert report.difference_count == 3
    assert report.settlement_records_checked == 5

    listed = await payments.call(
        "ListReconciliationReports", pb.ListReconciliationReportsRequest(parent=payments.parent)
    )
    [basic] = listed.reports
    assert (basic.name, basic.state, basic.difference_count) == (report.name, SUCCEEDED, 3)
    assert not basic.differences
    [event] = await completed_events(env, report.name)
    assert (event.report.name, event.report.difference_count) == (report.name, 3)
    assert not event.report.differences


async def settlement_entries(env: Env) -> list[Any]:
    reply = await env.payments.ledger.stub.ListJournalEntries(
        lpb.ListJournalEntriesRequest(parent=env.payments.parent, page_size=500),
        metadata=env.payments.metadata,
    )
    return [
        e for e in reply.journal_entries if e.metadata.get("operation") in ("settlement", "fee")
    ]


async def test_runs_over_http_post_settlement_and_fees_once_and_replay_by_request_id(env):
    payments = env.payments
    await payments.route("alpha")
    partial = await payments.authorize(10_000)
    await payments.capture(partial.name, 6_000)
    await payments.capture(partial.name)  # the remaining 4_000
    await payments.call("RefundPayment", payments.refund_request(partial.name, 2_500))
    await payments.authorize(5_000, manual=False)

    first = run_request(env, "", report_id="day-1")
    first.settlement_report = report_url(env, first)
    reply = await payments.call("RunReconciliation", first)
    report = await finished(env, reply.report.name)
    assert report.state == SUCCEEDED, report.failure_reason
    assert (report.difference_count, report.matched_count) == (0, 4)
    [usd] = report.totals
    assert usd.settlement_amount.amount_minor == 10_000 + 5_000 - 2_500
    assert usd.ledger_amount.amount_minor == usd.payments_amount.amount_minor == 12_500

    # Replay: the first answer; a changed request under the same id is refused.
    assert await payments.call("RunReconciliation", first) == reply
    changed = pb.RunReconciliationRequest()
    changed.CopyFrom(first)
    changed.report_id = "day-1b"
    code, info = await payments.fails("RunReconciliation", changed)
    assert (code, info.reason) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
    taken = run_request(env, first.settlement_report, report_id="day-1")
    code, info = await payments.fails("RunReconciliation", taken)
    assert (code, info.reason) == (grpc.StatusCode.ALREADY_EXISTS, "REPORT_ALREADY_EXISTS")

    # A second run over the same report (server-assigned id) books nothing more.
    second = run_request(env, first.settlement_report)
    again = await finished(env, (await payments.call("RunReconciliation", second)).report.name)
    assert again.state == SUCCEEDED, again.failure_reason
    assert again.name != report.name
    assert again.matched_count == 4

    entries = await settlement_entries(env)
    assert len({e.name for e in entries}) == len(entries) == 4 + 3  # 4 lines; 3 with a fee
    fees = [capture_fee(a) for a in (6_000, 4_000, 5_000)]
    assert (await payments.balance("payments-psp-fees-usd")).posted.amount_minor == sum(fees)
    bank = await payments.balance("payments-bank-usd")
    assert bank.posted.amount_minor == 12_500 - sum(fees)
    clearing = await payments.balance("payments-psp-clearing-usd")
    assert clearing.posted.amount_minor == 0  # captured, refunded, settled: nothing owed

    listed = await payments.call(
        "ListReconciliationReports",
        pb.ListReconciliationReportsRequest(parent=payments.parent, page_size=1),
    )
    assert [r.name for r in listed.reports] == [again.name]  # newest first
    rest = await payments.call(
        "ListReconciliationReports",
        pb.ListReconciliationReportsRequest(
            parent=payments.parent, page_size=1, page_token=listed.next_page_token
        ),
    )
    assert [r.name for r in rest.reports] == [report.name]
    assert not rest.next_page_token
    other = await payments.call(
        "ListReconciliationReports",
        pb.ListReconciliationReportsRequest(parent=payments.parent, psp="beta"),
    )
    assert not other.reports
    for name in (report.name, again.name):
        [event] = await completed_events(env, name)
        assert event.report.state == SUCCEEDED


async def test_locations_outside_the_allow_list_and_unknown_psps_are_refused_up_front(env):
    payments = env.payments
    refused = [
        "http://169.254.169.254/latest/meta-data",
        f"{payments.alpha.url}/admin/config",
        f"{env.settlements}/../../admin/config",
        "gs://bucket/settlement.csv",
        "../outside.csv",
    ]
    for location in refused:
        code, info = await payments.fails("RunReconciliation", run_request(env, location))
        assert (code, info.reason) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "SETTLEMENT_REPORT_NOT_ALLOWED",
        ), location
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await payments.call("RunReconciliation", run_request(env, refused[0]))
    status = rpc_status.from_call(caught.value)  # type: ignore[arg-type]
    assert status is not None
    violations = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations += [v.field for v in bad.field_violations]
    assert violations == ["settlement_report"]
    assert "not under an allowed settlement report URL" in (caught.value.details() or "")

    unknown = run_request(env, env.settlements)
    unknown.psp = "nosuchpsp"
    code, info = await payments.fails("RunReconciliation", unknown)
    assert (code, info.reason) == (grpc.StatusCode.NOT_FOUND, "UNKNOWN_PSP")
    listed = await payments.call(
        "ListReconciliationReports", pb.ListReconciliationReportsRequest(parent=payments.parent)
    )
    assert not listed.reports  # nothing refused was stored

    # Allowed but absent: the run ends FAILED, saying why.
    absent = await payments.call("RunReconciliation", run_request(env, "absent.csv"))
    report = await finished(env, absent.report.name)
    assert report.state == FAILED
    assert "cannot read absent.csv" in report.failure_reason
    code, info = await payments.fails(
        "GetReconciliationReport",
        pb.GetReconciliationReportRequest(name=f"{payments.parent}/reconciliationReports/nope"),
    )
    assert (code, info.reason) == (grpc.StatusCode.NOT_FOUND, "REPORT_NOT_FOUND")


async def test_a_run_left_running_by_a_crashed_process_is_resumed_or_failed(env):
    payments = env.payments
    await payments.route("alpha")
    await capture(env, 3_000)
    request = run_request(env, "")
    request.settlement_report = report_url(env, request)
    # A process that stored the run and stopped before running it (lease already over).
    crashed = env.service(background=False, lease_seconds=0.0)
    started = await crashed.run(payments.tenant, request)
    assert started.report.state == RUNNING
    assert (await finished_or_running(env, started.report.name)).state == RUNNING
    assert await completed_events(env, started.report.name) == []

    assert await env.reconciliation.resume_due() >= 1
    report = await finished(env, started.report.name)
    assert (report.state, report.matched_count) == (SUCCEEDED, 1)
    assert len(await completed_events(env, report.name)) == 1
    assert await env.reconciliation.resume_due() == 0  # dequeued with the final report

    # One interrupted too often ends FAILED, with the reason.
    again = run_request(env, request.settlement_report)
    given_up = (await crashed.run(payments.tenant, again)).report.name
    await env.service(max_attempts=0).resume_due()
    failed = await finished(env, given_up)
    assert failed.state == FAILED
    assert "interrupted" in failed.failure_reason
    [event] = await completed_events(env, given_up)
    assert event.report.state == FAILED


async def finished_or_running(env: Env, name: str) -> rpb.ReconciliationReport:
    reply = await env.payments.call(
        "GetReconciliationReport", pb.GetReconciliationReportRequest(name=name, view=BASIC)
    )
    report: rpb.ReconciliationReport = reply.report
    return report


class Stuck(SettlementReportsByScheme):
    """The env's adapters, except that downloads never end (a PSP that stopped answering)."""

    def __init__(self, inner: SettlementReportsByScheme) -> None:
        super().__init__({})
        self.inner = inner
        self.fetching = asyncio.Event()

    def check(self, location: str) -> None:
        self.inner.check(location)

    async def fetch(self, psp: str, location: str) -> str:
        self.fetching.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_draining_process_hands_its_runs_over_at_once(env):
    payments = env.payments
    await payments.route("alpha")
    await capture(env, 1_200)
    request = run_request(env, "")
    request.settlement_report = report_url(env, request)
    stuck = Stuck(env.reports)
    draining = env.service(reports=stuck)  # background on, the default 10 minute lease
    started = await draining.run(payments.tenant, request)
    await asyncio.wait_for(stuck.fetching.wait(), 5)
    assert await env.reconciliation.resume_due() == 0  # leased to the draining process

    await draining.close()
    assert await env.reconciliation.resume_due() == 1  # the lease was released
    report = await finished(env, started.report.name)
    assert (report.state, report.matched_count) == (SUCCEEDED, 1)
    assert len(await completed_events(env, report.name)) == 1


async def test_reports_are_seen_by_their_tenant_only_and_never_change_once_final(env):
    payments = env.payments
    reply = await payments.call("RunReconciliation", run_request(env, "absent.csv"))
    assert (await finished(env, reply.report.name)).state == FAILED
    report_id = reply.report.name.rsplit("/", 1)[-1]
    async with payments.database.tenant_transaction("someone-else") as session:
        seen = await session.scalar(text("SELECT count(*) FROM reconciliation_reports"))
    assert seen == 0
    other = dataclasses.replace(payments, tenant="someone-else")
    code, info = await other.fails(
        "GetReconciliationReport",
        pb.GetReconciliationReportRequest(name=f"{other.parent}/reconciliationReports/{report_id}"),
    )
    assert (code, info.reason) == (grpc.StatusCode.NOT_FOUND, "REPORT_NOT_FOUND")
    for statement in (
        "UPDATE reconciliation_reports SET state = 'RUNNING', complete_time = NULL",
        "DELETE FROM reconciliation_reports",
    ):
        with pytest.raises(DBAPIError, match="never changes"):
            async with payments.database.tenant_transaction(payments.tenant) as session:
                await session.execute(
                    text(f"{statement} WHERE report_id = :id"),
                    {"id": report_id},
                )
