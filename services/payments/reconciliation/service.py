"""RunReconciliation / GetReconciliationReport / ListReconciliationReports inside payments.

RunReconciliation refuses an unknown PSP and a report location no adapter may read (SSRF,
path traversal) up front, then, in one transaction, claims the request_id, stores the RUNNING
report, queues the run and stores the response (so a replay answers the same report). The run
itself goes on in the background: `complete_run` reads payments' side from storage and the
ledger's over gRPC, posts settlement and fee entries for matched lines (idempotent ledger ids),
and one more transaction stores the final report, dequeues the run and stages
ReconciliationCompleted in the outbox. A run whose process stopped before that stays queued
with a lease; when the lease runs out the background worker resumes it (the postings replay),
and after `max_attempts` it ends FAILED, saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

from clients.errors import AlreadyExists as LedgerAlreadyExists
from clients.errors import CommerceError
from clients.services import LedgerClient
from commerce.ledger.v1 import ledger_service_pb2 as lpb
from commerce.ledger.v1 import resources_pb2 as lres
from commerce.payments.v1 import payments_service_pb2 as pb
from commerce.payments.v1 import reconciliation_pb2 as rpb
from commerce.payments.v1 import resources_pb2 as pres
from services.chassis import pages
from services.chassis.errors import Aborted, DomainError, IdempotencyKeyReused
from services.payments import messages
from services.payments.domain import errors
from services.payments.domain.reconciliation import (
    LedgerEntry,
    PaymentOperation,
    Period,
    ReportState,
)
from services.payments.domain.records import PaymentRecord
from services.payments.ids import random_id
from services.payments.ledger import LedgerPostings
from services.payments.ledger import request_id as ledger_request_id
from services.payments.reconciliation import errors as rerrors
from services.payments.reconciliation.grpc_sources import LedgerOverGrpc, captures_of, refund_of
from services.payments.reconciliation.messages import report_message, with_view
from services.payments.reconciliation.ports import ReportUnavailableError
from services.payments.reconciliation.posting import (
    BANK_ACCOUNT_PREFIX,
    payments_settlement_accounts,
)
from services.payments.reconciliation.reports import SettlementReportsByScheme
from services.payments.reconciliation.usecase import (
    AccountsUnavailableError,
    ReconciliationRun,
    Settlement,
    complete_run,
    completed_event,
    started_report,
)
from services.payments.service import fingerprint
from services.payments.storage.idempotency import ClaimState
from services.payments.storage.payments import PageFilter
from services.payments.storage.reconciliation import (
    SqlReconciliationReports,
    SqlReconciliationRuns,
)
from services.payments.storage.unit_of_work import TransactionRunner, UnitOfWork

log = logging.getLogger(__name__)
METHOD = "RunReconciliation"
PAGE = 500
BASIC = rpb.RECONCILIATION_REPORT_VIEW_BASIC
FULL = rpb.RECONCILIATION_REPORT_VIEW_FULL
_STATE_NAMES = {
    rpb.RECONCILIATION_STATE_RUNNING: ReportState.RUNNING.value,
    rpb.RECONCILIATION_STATE_SUCCEEDED: ReportState.SUCCEEDED.value,
    rpb.RECONCILIATION_STATE_FAILED: ReportState.FAILED.value,
}


def _now() -> datetime:
    return datetime.now(UTC)


def _reports(uow: UnitOfWork) -> SqlReconciliationReports:
    return SqlReconciliationReports(uow.sql, uow.payments.tenant)


@dataclass(frozen=True, slots=True)
class ReconciliationOptions:
    lease_seconds: float = 300.0
    """How long a process owns a run before the background worker may resume it."""
    max_attempts: int = 5
    """Resumptions of a run before it ends FAILED."""
    background: bool = True
    """Start runs in the background right away (tests turn it off to play a crash)."""


async def _page(after: tuple[datetime, str] | None, uow: UnitOfWork) -> list[PaymentRecord]:
    return await uow.payments.page(PageFilter(), after, PAGE)


class StoredPaymentOperations:
    """Payments' side of one tenant, read from payments' own storage (no RPC to itself)."""

    def __init__(self, runner: TransactionRunner, tenant: str) -> None:
        self._runner = runner
        self._tenant = tenant
        self._loaded: list[tuple[pres.Payment, list[pres.Refund]]] | None = None

    async def _payments(self) -> list[tuple[pres.Payment, list[pres.Refund]]]:
        if self._loaded is not None:
            return self._loaded
        found: list[tuple[pres.Payment, list[pres.Refund]]] = []
        after: tuple[datetime, str] | None = None
        while True:
            records = await self._runner.run(self._tenant, partial(_page, after))
            for record in records:
                refunds = [messages.refund(record, r) for r in record.payment.refunds.values()]
                found.append((messages.payment(record), refunds))
            if len(records) < PAGE:
                break
            last = records[-1].payment
            after = (last.create_time, last.payment_id)
        self._loaded = found
        return found

    async def payment_names(self, psp: str) -> set[str]:
        return {p.name for p, _ in await self._payments() if p.psp == psp}

    async def payment_operations(self, psp: str, period: Period) -> Sequence[PaymentOperation]:
        operations: list[PaymentOperation] = []
        for payment, refunds in await self._payments():
            if payment.psp != psp:
                continue
            operations += captures_of(payment, period)
            operations += [o for r in refunds if (o := refund_of(payment, r, period)) is not None]
        return operations


class ServiceSources:
    """Both sides for one run: payments from storage, the ledger over LedgerClient."""

    def __init__(self, runner: TransactionRunner, ledger: LedgerClient, tenant: str) -> None:
        self._payments = StoredPaymentOperations(runner, tenant)
        self._ledger = LedgerOverGrpc(ledger, tenant, self._payments.payment_names)

    async def payment_operations(self, psp: str, period: Period) -> Sequence[PaymentOperation]:
        return await self._payments.payment_operations(psp, period)

    async def ledger_entries(self, psp: str, period: Period) -> Sequence[LedgerEntry]:
        return await self._ledger.ledger_entries(psp, period)


class SettlementAccountsOpener:
    """Opens what settlement postings touch: payments' PSP clearing and fee accounts (as
    LedgerPostings opens them) and the payout bank account `payments-bank-<ccy>`."""

    def __init__(self, postings: LedgerPostings, ledger: LedgerClient) -> None:
        self._postings = postings
        self._ledger = ledger
        self._banks: set[tuple[str, str]] = set()

    async def __call__(self, tenant: str, currencies: list[str]) -> None:
        try:
            for currency in currencies:
                await self._postings.ensure_accounts(tenant, currency)
                await self._open_bank(tenant, currency)
        except (DomainError, CommerceError) as error:
            msg = f"the settlement accounts could not be opened in the ledger: {error}"
            raise AccountsUnavailableError(msg) from error

    async def _open_bank(self, tenant: str, currency: str) -> None:
        if (tenant, currency) in self._banks:
            return
        ident = f"{BANK_ACCOUNT_PREFIX}{currency.lower()}"
        request = lpb.CreateAccountRequest(
            parent=f"tenants/{tenant}",
            account_id=ident,
            account=lres.Account(
                code=ident.upper(),
                display_name=f"Bank, PSP payouts ({currency})",
                currency_code=currency,
                type=lres.ACCOUNT_TYPE_ASSET,
                metadata={"owner": "payments"},
            ),
            request_id=ledger_request_id(tenant, "account", ident),
        )
        try:
            await self._ledger.call(self._ledger.stub.CreateAccount, request)
        except LedgerAlreadyExists as error:
            if error.reason != "ACCOUNT_ALREADY_EXISTS":
                raise
        self._banks.add((tenant, currency))


def _run_of(tenant: str, report: rpb.ReconciliationReport) -> ReconciliationRun:
    return ReconciliationRun(
        tenant=tenant,
        report_id=report.name.rsplit("/", 1)[-1],
        psp=report.psp,
        period=Period(
            report.start_time.ToDatetime(tzinfo=UTC), report.end_time.ToDatetime(tzinfo=UTC)
        ),
        settlement_report=report.settlement_report,
        create_time=report.create_time.ToDatetime(tzinfo=UTC),
    )


class ReconciliationService:
    """The three reconciliation RPCs and the resumption of unfinished runs."""

    def __init__(
        self,
        runner: TransactionRunner,
        *,
        psps: Callable[[], Collection[str]],
        reports: SettlementReportsByScheme,
        ledger: LedgerClient,
        postings: LedgerPostings,
        options: ReconciliationOptions = ReconciliationOptions(),
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._runner = runner
        self._psps = psps
        self._reports = reports
        self._ledger = ledger
        self._accounts = SettlementAccountsOpener(postings, ledger)
        self._options = options
        self._clock = clock
        self._tasks: dict[asyncio.Task[None], ReconciliationRun] = {}

    # -- RunReconciliation -----------------------------------------------------------------

    async def run(
        self, tenant: str, request: pb.RunReconciliationRequest
    ) -> pb.RunReconciliationResponse:
        if request.psp not in self._psps():
            raise errors.unknown_psp(request.psp)
        try:
            self._reports.check(request.settlement_report)
        except ReportUnavailableError as refused:
            raise rerrors.settlement_report_not_allowed(str(refused)) from None
        request_id = request.request_id or str(uuid.uuid4())
        digest = fingerprint(request)
        run = ReconciliationRun(
            tenant=tenant,
            report_id=request.report_id or random_id("rec-"),
            psp=request.psp,
            period=Period(
                request.start_time.ToDatetime(tzinfo=UTC), request.end_time.ToDatetime(tzinfo=UTC)
            ),
            settlement_report=request.settlement_report,
            create_time=self._clock(),
        )

        async def start(uow: UnitOfWork) -> tuple[pb.RunReconciliationResponse, bool]:
            now = self._clock()
            found = await uow.idempotency.claim(
                request_id, METHOD, digest, now, self._options.lease_seconds
            )
            if found.method != METHOD or found.fingerprint != digest:
                raise IdempotencyKeyReused(request_id)
            if found.state is ClaimState.DONE:
                assert found.response is not None
                return pb.RunReconciliationResponse.FromString(found.response), False
            if found.state is ClaimState.IN_PROGRESS:
                raise Aborted(
                    "REQUEST_IN_PROGRESS",
                    "a request with this request_id is still being processed; retry",
                )
            started = started_report(run)
            inserted = await _reports(uow).insert(
                report_id=run.report_id,
                psp=run.psp,
                state=ReportState.RUNNING.value,
                request_id=request_id,
                fingerprint=digest,
                create_time=run.create_time,
                report=started.SerializeToString(deterministic=True),
            )
            if not inserted:
                raise rerrors.report_already_exists(run.name)
            lease = now + timedelta(seconds=self._options.lease_seconds)
            await SqlReconciliationRuns(uow.sql).queue(tenant, run.report_id, lease)
            response = pb.RunReconciliationResponse(report=with_view(started, BASIC, default=BASIC))
            await uow.idempotency.complete(
                request_id, response.SerializeToString(deterministic=True), now
            )
            return response, True

        response, fresh = await self._runner.run(tenant, start)
        if fresh and self._options.background:
            self._spawn(run)
        return response

    def _spawn(self, run: ReconciliationRun) -> None:
        task = asyncio.get_running_loop().create_task(self._complete_logged(run))
        self._tasks[task] = run
        task.add_done_callback(lambda done: self._tasks.pop(done, None))

    async def _complete_logged(self, run: ReconciliationRun) -> None:
        try:
            await self.complete(run)
        except Exception:  # the run stays queued: the worker resumes it when the lease ends
            log.exception("reconciliation run %s did not finish; it will be resumed", run.name)

    async def complete(self, run: ReconciliationRun) -> rpb.ReconciliationReport:
        """Run to the end and store the final report (once) with its event."""
        final = await complete_run(
            run,
            reports=self._reports,
            sources=ServiceSources(self._runner, self._ledger, run.tenant),
            settlement=Settlement(
                ledger=self._ledger,
                accounts=payments_settlement_accounts,
                prepare=self._accounts,
            ),
            clock=self._clock,
        )
        return await self._finish(run, final)

    async def _finish(
        self, run: ReconciliationRun, final: rpb.ReconciliationReport
    ) -> rpb.ReconciliationReport:
        async def store(uow: UnitOfWork) -> None:
            finished = await _reports(uow).finish(
                run.report_id,
                state=_STATE_NAMES[final.state],
                complete_time=final.complete_time.ToDatetime(tzinfo=UTC),
                report=final.SerializeToString(deterministic=True),
            )
            await SqlReconciliationRuns(uow.sql).dequeue(run.tenant, run.report_id)
            if finished:  # a twin (a resumed run) may have stored it first
                await uow.publish([(completed_event(final), run.name)])

        await self._runner.run(run.tenant, store)
        return final

    # -- resuming --------------------------------------------------------------------------

    async def resume_due(self, limit: int = 10) -> int:
        """Resume in the background (or fail, after max_attempts) runs whose lease ran out,
        keeping at most `limit` runs in flight in this process; how many were taken."""
        room = limit - len(self._tasks)
        if room <= 0:
            return 0
        due = await self._runner.run_service_wide(
            lambda uow: SqlReconciliationRuns(uow.sql).claim_due(
                self._clock(), self._options.lease_seconds, room
            )
        )
        for item in due:
            stored = await self._runner.run(
                item.tenant,
                lambda uow, i=item: _reports(uow).get(i.report_id),  # type: ignore[misc]
            )
            if stored is None:  # queued without its report (both are written together): drop
                await self._runner.run_service_wide(
                    lambda uow, i=item: SqlReconciliationRuns(uow.sql).dequeue(  # type: ignore[misc]
                        i.tenant, i.report_id
                    )
                )
                continue
            report = rpb.ReconciliationReport.FromString(stored)
            run = _run_of(item.tenant, report)
            if report.state != rpb.RECONCILIATION_STATE_RUNNING:
                await self._finish(run, report)  # only dequeues: the report is final
            elif item.attempts > self._options.max_attempts:
                await self._finish(run, self._given_up(run, item.attempts - 1))
            else:
                log.info("resuming reconciliation run %s (attempt %d)", run.name, item.attempts)
                self._spawn(run)
        return len(due)

    def _given_up(self, run: ReconciliationRun, attempts: int) -> rpb.ReconciliationReport:
        return report_message(
            name=run.name,
            psp=run.psp,
            period=run.period,
            settlement_report=run.settlement_report,
            state=ReportState.FAILED,
            create_time=run.create_time,
            complete_time=self._clock(),
            failure_reason=(
                f"the run was interrupted {attempts} times without finishing (see the payments"
                " logs); start a new run"
            ),
        )

    async def close(self) -> None:
        """Stop runs in flight; they stay queued, their leases released, so the next process
        (or another replica) resumes them at once."""
        stopped = dict(self._tasks)
        for task in stopped:
            task.cancel()
        for task in stopped:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for run in stopped.values():
            try:
                await self._runner.run_service_wide(
                    lambda uow, r=run: SqlReconciliationRuns(uow.sql).release(  # type: ignore[misc]
                        r.tenant, r.report_id, self._clock()
                    )
                )
            except Exception:  # the lease ends anyway
                log.warning("could not release reconciliation run %s", run.name, exc_info=True)

    # -- Get / List ------------------------------------------------------------------------

    async def get(
        self, tenant: str, name: str, view: rpb.ReconciliationReportView.ValueType
    ) -> pb.GetReconciliationReportResponse:
        report_id = name.rsplit("/", 1)[-1]
        stored = await self._runner.run(tenant, lambda uow: _reports(uow).get(report_id))
        if stored is None:
            raise rerrors.report_not_found(name)
        report = rpb.ReconciliationReport.FromString(stored)
        return pb.GetReconciliationReportResponse(report=with_view(report, view, default=FULL))

    async def list(
        self, tenant: str, request: pb.ListReconciliationReportsRequest
    ) -> pb.ListReconciliationReportsResponse:
        params = {"m": "ListReconciliationReports", "parent": request.parent, "psp": request.psp}
        cursor = pages.decode(request.page_token, params)
        after: tuple[datetime, str] | None = None
        if cursor is not None:
            try:
                after = (datetime.fromisoformat(str(cursor["t"])), str(cursor["id"]))
            except (KeyError, ValueError):
                raise errors.invalid_page_token() from None
        size = pages.page_size(request.page_size)
        psp = request.psp or None
        found = await self._runner.run(tenant, lambda uow: _reports(uow).page(psp, after, size + 1))
        token = ""
        if len(found) > size:
            last = found[size - 1]
            token = pages.encode(params, {"t": last.create_time.isoformat(), "id": last.report_id})
        return pb.ListReconciliationReportsResponse(
            reports=[
                with_view(
                    rpb.ReconciliationReport.FromString(r.report), request.view, default=BASIC
                )
                for r in found[:size]
            ],
            next_page_token=token,
        )


class ReconciliationWorker:
    """Every `interval` seconds, resumes the runs whose lease ran out (a crashed process's)."""

    def __init__(self, service: ReconciliationService, *, interval: float) -> None:
        self._service = service
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._service.close()

    async def _loop(self) -> None:
        while True:
            try:
                await self._service.resume_due()
            except Exception:  # keep going; the next round retries
                log.exception("resuming reconciliation runs failed")
            await asyncio.sleep(self._interval)
