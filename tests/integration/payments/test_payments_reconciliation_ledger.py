"""Reconciliation against a real ledger (PostgreSQL + the ledger servicer over gRPC).

The ledger side is read back through GrpcReconciliationSources from entries booked the way
payments books them (a posted authorization hold for a capture, an entry for a refund); the
planned settlement and fee entries are posted through LedgerClient, and posting them again,
from a rerun, adds nothing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from google.protobuf.duration_pb2 import Duration

from clients.base import ClientSettings
from clients.errors import IdempotencyKeyReused
from clients.services import LedgerClient, PaymentsClient
from commerce.ledger.v1 import ledger_service_pb2 as lpb
from commerce.ledger.v1 import resources_pb2 as lres
from commerce.payments.v1 import reconciliation_pb2 as pb
from commerce.type.v1.money_pb2 import Money
from services.chassis.config import AuthSettings, ServerSettings
from services.chassis.db.database import Database
from services.chassis.db.migrations import upgrade
from services.chassis.server import RunningServer, start_server
from services.ledger.bootstrap import MIGRATIONS, registration
from services.ledger.config import ERROR_DOMAIN
from services.ledger.storage.unit_of_work import SqlTransactionRunner
from services.payments.domain.reconciliation import (
    DifferenceKind,
    LedgerEntry,
    OperationKind,
    PaymentOperation,
    Period,
    RecordType,
    SettlementRecord,
    reconcile,
)
from services.payments.domain.reconciliation_postings import (
    SettlementAccounts,
    plan_settlement_entries,
)
from services.payments.reconciliation.grpc_sources import GrpcReconciliationSources
from services.payments.reconciliation.posting import (
    payments_settlement_accounts,
    post_settlement_entries,
)
from services.payments.reconciliation.reports import FileSettlementReports
from services.payments.reconciliation.usecase import ReconciliationRun, Settlement, complete_run

SECRET = "reconciliation-integration-test-hmac-secret-0123"


def token(tenant: str) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "reconciliation",
        "roles": ["tenant_admin"],
        "iss": "commerce-mesh",
        "aud": "commerce-mesh",
        "iat": now,
        "exp": now + 3600,
        "tenant": tenant,
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


@pytest.fixture(scope="module")
async def ledger_server(service_database) -> AsyncIterator[RunningServer]:
    await upgrade(service_database.owner_url, MIGRATIONS)
    database = Database.connect(service_database.app_url, pool_size=4, max_overflow=4)
    settings = ServerSettings(
        port=0, grace_period_seconds=1, auth=AuthSettings(key=SECRET, algorithms=["HS256"])
    )
    running = await start_server(
        settings, [registration(SqlTransactionRunner(database))], error_domain=ERROR_DOMAIN
    )
    yield running
    await running.stop()
    await database.dispose()


@pytest.fixture
async def tenant_ledger(ledger_server) -> AsyncIterator[tuple[str, LedgerClient]]:
    tenant = f"t{uuid.uuid4().hex[:10]}"
    settings = ClientSettings(token_provider=lambda: token(tenant))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{ledger_server.port}") as channel:
        yield tenant, LedgerClient(channel, settings)


def usd(minor: int) -> Money:
    return Money(currency_code="USD", amount_minor=minor)


class Books:
    """Books payments' movements the way services/payments/ledger.py does."""

    def __init__(self, tenant: str, ledger: LedgerClient) -> None:
        self.tenant = tenant
        self.ledger = ledger
        self.parent = f"tenants/{tenant}"

    def account(self, ident: str) -> str:
        return f"{self.parent}/accounts/{ident}"

    async def open_accounts(self) -> None:
        kinds = {
            "payments-psp-clearing-usd": lres.ACCOUNT_TYPE_ASSET,
            "payments-customer-funds-usd": lres.ACCOUNT_TYPE_LIABILITY,
            "payments-psp-fees-usd": lres.ACCOUNT_TYPE_EXPENSE,
            "payments-bank-usd": lres.ACCOUNT_TYPE_ASSET,
        }
        for ident, kind in kinds.items():
            await self.ledger.call(
                self.ledger.stub.CreateAccount,
                lpb.CreateAccountRequest(
                    parent=self.parent,
                    account_id=ident,
                    account=lres.Account(
                        code=ident.upper(), display_name=ident, currency_code="USD", type=kind
                    ),
                    request_id=str(uuid.uuid4()),
                ),
            )

    async def capture(self, payment: str, minor: int) -> str:
        hold_id = f"hold-{uuid.uuid4().hex[:12]}"
        await self.ledger.call(
            self.ledger.stub.CreateHold,
            lpb.CreateHoldRequest(
                parent=self.parent,
                hold_id=hold_id,
                hold=lres.Hold(
                    debit_account=self.account("payments-psp-clearing-usd"),
                    credit_account=self.account("payments-customer-funds-usd"),
                    amount=usd(minor),
                    ttl=Duration(seconds=3600),
                    metadata={"payment": payment, "psp": "sandbox"},
                ),
                request_id=str(uuid.uuid4()),
            ),
        )
        reply = await self.ledger.call(
            self.ledger.stub.PostHold,
            lpb.PostHoldRequest(
                name=f"{self.parent}/holds/{hold_id}", request_id=str(uuid.uuid4())
            ),
        )
        name: str = reply.journal_entry.name
        return name

    async def refund(self, payment: str, refund: str, minor: int) -> str:
        reply = await self.ledger.call(
            self.ledger.stub.CreateJournalEntry,
            lpb.CreateJournalEntryRequest(
                parent=self.parent,
                journal_entry=lres.JournalEntry(
                    description=f"refund {refund} of payment {payment}",
                    metadata={
                        "payment": payment,
                        "psp": "sandbox",
                        "operation": "refund",
                        "payment_operation": f"{self.parent}/payments/{payment}/refunds/{refund}",
                    },
                    postings=[
                        lres.Posting(
                            account=self.account("payments-customer-funds-usd"), amount=usd(minor)
                        ),
                        lres.Posting(
                            account=self.account("payments-psp-clearing-usd"), amount=usd(-minor)
                        ),
                    ],
                ),
                request_id=str(uuid.uuid4()),
            ),
        )
        name: str = reply.journal_entry.name
        return name

    async def balance(self, ident: str) -> int:
        reply = await self.ledger.call(
            self.ledger.stub.GetAccountBalance,
            lpb.GetAccountBalanceRequest(account=self.account(ident)),
        )
        posted: int = reply.balance.posted.amount_minor
        return posted

    async def entry_count(self) -> int:
        reply = await self.ledger.call(
            self.ledger.stub.ListJournalEntries,
            lpb.ListJournalEntriesRequest(parent=self.parent, page_size=500),
        )
        return len(reply.journal_entries)


def line(n: int, kind: RecordType, reference: str, *, gross: int, fee: int) -> SettlementRecord:
    return SettlementRecord(
        record_id=f"sl_{n:08d}",
        line_number=n + 1,
        settlement_date=datetime.now(UTC).date(),
        type=kind,
        psp_reference=reference,
        payment_reference="sbx_auth_1",
        currency="USD",
        gross_minor=gross,
        fee_minor=fee,
        net_minor=gross - fee,
    )


@pytest.fixture
async def nowhere() -> AsyncIterator[PaymentsClient]:
    """A payments client nobody answers: every entry here names its PSP, so it is never asked."""
    async with grpc.aio.insecure_channel("127.0.0.1:1") as channel:
        yield PaymentsClient(channel)


def p1_operations(tenant: str) -> list[PaymentOperation]:
    p1 = f"tenants/{tenant}/payments/p1"
    return [
        PaymentOperation(
            operation_id=f"{p1}/captures/2",
            kind=OperationKind.CAPTURE,
            payment=p1,
            payment_reference="sbx_auth_1",
            amount_minor=10_000,
            currency="USD",
        ),
        PaymentOperation(
            operation_id=f"{p1}/refunds/r1",
            kind=OperationKind.REFUND,
            payment=p1,
            refund=f"{p1}/refunds/r1",
            payment_reference="sbx_auth_1",
            psp_reference="sbx_re_1",
            amount_minor=2_500,
            currency="USD",
        ),
    ]


RECORDS = [
    line(1, RecordType.CAPTURE, "sbx_cap_1", gross=10_000, fee=320),
    line(2, RecordType.REFUND, "sbx_re_1", gross=-2_500, fee=0),
]


async def test_ledger_entries_are_read_back_matched_and_settled_exactly_once(
    tenant_ledger, nowhere
):
    tenant, ledger = tenant_ledger
    books = Books(tenant, ledger)
    await books.open_accounts()
    start = datetime.now(UTC) - timedelta(minutes=1)
    capture_entry = await books.capture("p1", 10_000)
    refund_entry = await books.refund("p1", "r1", 2_500)
    await books.capture("p2", 5_000)
    period = Period(start, datetime.now(UTC) + timedelta(minutes=1))
    accounts = payments_settlement_accounts(tenant, ["USD"])

    sources = GrpcReconciliationSources(nowhere, ledger, tenant)
    entries = await sources.ledger_entries("sandbox", period)
    p1 = f"tenants/{tenant}/payments/p1"
    assert {(e.entry, e.kind, e.payment, e.amount_minor) for e in entries} >= {
        (capture_entry, OperationKind.CAPTURE, p1, 10_000),
        (refund_entry, OperationKind.REFUND, p1, 2_500),
    }
    assert len(entries) == 3
    assert await sources.ledger_entries("stripe", period) == []

    operations = p1_operations(tenant)
    result = reconcile(
        psp="sandbox", records=RECORDS, operations=operations, ledger_entries=entries
    )
    # p2's capture is in the ledger but not in payments' list: an orphan ledger entry.
    [orphan] = result.differences
    assert (orphan.kind, orphan.payment) == (
        DifferenceKind.MISSING_IN_PAYMENTS,
        f"tenants/{tenant}/payments/p2",
    )
    assert result.matched_count == 2
    assert await books.balance("payments-psp-clearing-usd") == 10_000 - 2_500 + 5_000

    first = await post_settlement_entries(ledger, tenant, plan_settlement_entries(result, accounts))
    assert len(first.posted) == 3  # capture: settlement + fee; refund: settlement
    count = await books.entry_count()
    # The matched lines are cleared from PSP clearing; p2's capture (unmatched) stays.
    assert await books.balance("payments-psp-clearing-usd") == 5_000
    assert await books.balance("payments-bank-usd") == 9_680 - 2_500
    assert await books.balance("payments-psp-fees-usd") == 320

    rerun = reconcile(
        psp="sandbox",
        records=RECORDS[::-1],
        operations=operations,
        ledger_entries=await sources.ledger_entries("sandbox", period),
    )
    again = await post_settlement_entries(ledger, tenant, plan_settlement_entries(rerun, accounts))
    assert again.posted == first.posted  # replayed, not posted anew
    assert await books.entry_count() == count
    assert await books.balance("payments-bank-usd") == 9_680 - 2_500

    corrected = [line(1, RecordType.CAPTURE, "sbx_cap_1", gross=10_000, fee=321), RECORDS[1]]
    changed = reconcile(
        psp="sandbox", records=corrected, operations=operations, ledger_entries=entries
    )
    with pytest.raises(IdempotencyKeyReused):
        await post_settlement_entries(ledger, tenant, plan_settlement_entries(changed, accounts))
    assert await books.entry_count() == count


@dataclass
class PaymentsListThenLedger:
    """Payments' side from a list, the ledger's from the real ledger over gRPC."""

    operations: list[PaymentOperation]
    ledger: GrpcReconciliationSources

    async def payment_operations(self, psp: str, period: Period) -> list[PaymentOperation]:
        del psp, period
        return self.operations

    async def ledger_entries(self, psp: str, period: Period) -> Sequence[LedgerEntry]:
        return await self.ledger.ledger_entries(psp, period)


async def test_a_run_with_settlement_posts_its_entries_once_and_reruns_change_nothing(
    tenant_ledger, nowhere, tmp_path: Path
):
    tenant, ledger = tenant_ledger
    books = Books(tenant, ledger)
    await books.open_accounts()
    start = datetime.now(UTC) - timedelta(minutes=1)
    await books.capture("p1", 10_000)
    await books.refund("p1", "r1", 2_500)
    period = Period(start, datetime.now(UTC) + timedelta(minutes=1))
    (tmp_path / "settlement.csv").write_text(
        "settlement_date,line_id,type,reference,authorization,currency,gross_minor,fee_minor,"
        "net_minor\n"
        + "".join(
            f"{r.settlement_date},{r.record_id},{r.type.value},{r.psp_reference},"
            f"{r.payment_reference},USD,{r.gross_minor},{r.fee_minor},{r.net_minor}\n"
            for r in RECORDS
        )
    )
    run = ReconciliationRun(
        tenant=tenant,
        report_id="sandbox-today",
        psp="sandbox",
        period=period,
        settlement_report="settlement.csv",
        create_time=datetime.now(UTC),
    )
    sources = PaymentsListThenLedger(
        p1_operations(tenant), GrpcReconciliationSources(nowhere, ledger, tenant)
    )
    settlement = Settlement(ledger=ledger, accounts=payments_settlement_accounts)
    reports = FileSettlementReports(tmp_path)
    for _ in range(2):
        done = await complete_run(run, reports=reports, sources=sources, settlement=settlement)
        assert done.state == pb.RECONCILIATION_STATE_SUCCEEDED, done.failure_reason
        assert (done.matched_count, done.difference_count) == (2, 0)
        assert await books.balance("payments-psp-clearing-usd") == 0
        assert await books.balance("payments-bank-usd") == 9_680 - 2_500
        assert await books.balance("payments-psp-fees-usd") == 320

    def no_accounts(tenant: str, currencies: list[str]) -> dict[str, SettlementAccounts]:
        del tenant, currencies
        return {}

    failed = await complete_run(
        run,
        reports=reports,
        sources=sources,
        settlement=Settlement(ledger=ledger, accounts=no_accounts),
    )
    assert failed.state == pb.RECONCILIATION_STATE_FAILED
    assert failed.failure_reason == "no settlement accounts for USD"
