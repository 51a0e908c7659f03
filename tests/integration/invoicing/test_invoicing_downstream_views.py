"""The tie-out's gRPC views against real servers: the ledger view reads revenue and tax credits
from a real ledger (migrated PostgreSQL, the real servicer) and attributes them by entry
metadata; a payments or ledger that does not answer is UNAVAILABLE DOWNSTREAM_UNAVAILABLE."""

import socket
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from clients.base import ClientSettings
from clients.channel import create_channel
from clients.retry import RetryPolicy
from clients.services import LedgerClient, PaymentsClient
from commerce.ledger.v1 import ledger_service_pb2 as lpb
from commerce.ledger.v1 import resources_pb2 as lres
from commerce.type.v1.money_pb2 import Money
from services.chassis.config import AuthSettings, ServerSettings
from services.chassis.db.database import Database
from services.chassis.db.migrations import upgrade
from services.chassis.errors import Unavailable
from services.chassis.server import start_server
from services.invoicing.downstream import GrpcLedgerView, GrpcPaymentsView, LedgerAccounts
from services.ledger import bootstrap as ledger_bootstrap
from services.ledger.config import ERROR_DOMAIN as LEDGER_ERROR_DOMAIN
from services.ledger.storage.unit_of_work import SqlTransactionRunner as LedgerRunner

pytestmark = pytest.mark.integration
SECRET = "invoicing-integration-test-hmac-secret-0123456789"
ACCOUNTS = LedgerAccounts(frozenset({"revenue"}), frozenset({"tax-payable"}))


@pytest.fixture(scope="module")
async def ledger_port(service_database):
    await upgrade(service_database.owner_url, ledger_bootstrap.MIGRATIONS)
    database = Database.connect(service_database.app_url, pool_size=4, max_overflow=4)
    settings = ServerSettings(
        port=0, grace_period_seconds=1, auth=AuthSettings(key=SECRET, algorithms=["HS256"])
    )
    server = await start_server(
        settings,
        [ledger_bootstrap.registration(LedgerRunner(database))],
        error_domain=LEDGER_ERROR_DOMAIN,
    )
    yield server.port
    await server.stop()
    await database.dispose()


def eur(amount):
    return Money(currency_code="EUR", amount_minor=amount)


async def test_the_ledger_view_reads_revenue_and_tax_per_document(ledger_port, bearer_token):
    tenant = f"t{uuid.uuid4().hex[:8]}"
    parent = f"tenants/{tenant}"
    metadata = (("authorization", f"Bearer {bearer_token(tenant)}"),)
    client = LedgerClient(create_channel(f"127.0.0.1:{ledger_port}"))
    kinds = {
        "cash": lres.ACCOUNT_TYPE_ASSET,
        "revenue": lres.ACCOUNT_TYPE_REVENUE,
        "tax-payable": lres.ACCOUNT_TYPE_LIABILITY,
        "fees": lres.ACCOUNT_TYPE_EXPENSE,
    }
    for account, kind in kinds.items():
        await client.call(
            client.stub.CreateAccount,
            lpb.CreateAccountRequest(
                parent=parent,
                account_id=account,
                account=lres.Account(
                    code=account.upper(), display_name=account, currency_code="EUR", type=kind
                ),
                request_id=str(uuid.uuid4()),
            ),
            metadata=metadata,
        )

    async def post(legs, **tags):
        await client.call(
            client.stub.CreateJournalEntry,
            lpb.CreateJournalEntryRequest(
                parent=parent,
                journal_entry=lres.JournalEntry(
                    postings=[
                        lres.Posting(account=f"{parent}/accounts/{a}", amount=eur(x))
                        for a, x in legs
                    ],
                    metadata=tags,
                ),
                request_id=str(uuid.uuid4()),
            ),
            metadata=metadata,
        )

    invoice = f"{parent}/invoices/i1"
    note = f"{invoice}/creditNotes/c1"
    await post([("cash", 4758), ("revenue", -3998), ("tax-payable", -760)], invoice=invoice)
    await post([("revenue", 843), ("tax-payable", 160), ("cash", -1003)], credit_note=note)
    await post([("fees", 30), ("cash", -30)])  # touches neither revenue nor tax: not reported
    now = datetime.now(UTC)
    view = GrpcLedgerView(client, tenant, ACCOUNTS, metadata)
    postings = await view.postings_between(now - timedelta(hours=1), now + timedelta(hours=1))
    assert sorted((p.document, p.currency_code, p.revenue, p.tax) for p in postings) == sorted(
        [(invoice, "EUR", 3998, 760), (note, "EUR", -843, -160)]
    )
    assert all(p.entry.startswith(f"{parent}/") for p in postings)
    assert len({p.entry for p in postings}) == 2


def _dead_target() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"  # closed again: nothing listens


async def test_a_downstream_that_does_not_answer_is_unavailable_never_hidden():
    settings = ClientSettings(default_timeout=0.5, retry=RetryPolicy(max_attempts=1))
    now = datetime.now(UTC)
    payments = GrpcPaymentsView(PaymentsClient(create_channel(_dead_target()), settings), "acme")
    with pytest.raises(Unavailable) as caught:
        await payments.captured_between(now - timedelta(days=1), now)
    assert caught.value.reason == "DOWNSTREAM_UNAVAILABLE"
    assert caught.value.metadata == {"service": "payments"}
    ledger = GrpcLedgerView(
        LedgerClient(create_channel(_dead_target()), settings), "acme", ACCOUNTS
    )
    with pytest.raises(Unavailable) as refused:
        await ledger.postings_between(now - timedelta(days=1), now)
    assert refused.value.metadata == {"service": "ledger"}
