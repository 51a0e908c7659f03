"""Revenue and tax in the real ledger: every issue, payment application, void and credit note
records its journal in the change's transaction (`ledger_postings_due`), and the poster worker
posts it to a real ledger server exactly once — after a redelivered CheckoutCompleted, after a
crash between posting and marking, after the ledger refused it for a while. Balances per
account are to the cent and sum to zero; the tie-out over the real ledger (GrpcLedgerView) is
clean after a consistent mixed run and lists exactly what a planted deletion breaks."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint

from clients.services import LedgerClient
from commerce.invoicing.v1 import credit_note_pb2 as cn
from commerce.invoicing.v1 import invoicing_service_pb2 as pb
from commerce.invoicing.v1 import tie_out_pb2 as tpb
from services.invoicing.config import InvoicingSettings
from services.invoicing.domain import usecases
from services.invoicing.domain.commands import Refund
from services.invoicing.domain.tie_out import CapturedPayment, RefundRecord
from services.invoicing.downstream import GrpcLedgerView, LedgerAccounts
from services.invoicing.ledger_poster import LedgerPoster, PosterSettings, PostingWorker
from services.invoicing.messages import checkout_invoice
from services.invoicing.storage import ledger_queue
from services.invoicing.tie_out import TieOutService
from services.payments.domain.money import Money as PaymentsMoney
from services.payments.ledger import LedgerPostings
from tests.integration.invoicing.conftest import StaticPayments, Views, token

pytestmark = pytest.mark.integration

RECEIVABLE = "invoicing-receivable-eur"
REVENUE = "invoicing-revenue-eur"
VAT_19 = "invoicing-tax-payable-de-vat-190000-eur"
VAT_7 = "invoicing-tax-payable-de-vat-70000-eur"
CUSTOMER_FUNDS = "payments-customer-funds-eur"
CLEARING = "payments-psp-clearing-eur"


def _tenant() -> str:
    return f"tl{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def worker(app_db, ledger_server):
    return PostingWorker(app_db, LedgerPoster(ledger_server.client("service:invoicing")))


@pytest.fixture
async def payments_ledger(ledger_server):
    """Payments' own ledger postings (services/payments/ledger.py) as `service:payments`."""
    return LedgerPostings(ledger_server.client("service:payments"))


async def _sum_of_balances(ledger_server, tenant: str) -> int:
    return sum(
        [await ledger_server.balance(tenant, a) for a in await ledger_server.accounts(tenant)]
    )


async def _due_rows(owner_sql, tenant: str):
    return await owner_sql(
        "SELECT movement, document, attempts, last_error, ledger_entry, posted_time"
        " FROM ledger_postings_due WHERE tenant_id = %s ORDER BY create_time, movement",
        (tenant,),
        tenant=tenant,
    )


async def test_issuing_posts_revenue_and_tax_per_rate_exactly_once(
    client_for, worker, ledger_server, owner_sql
):
    tenant = _tenant()
    invoicing = client_for(tenant)
    invoice = await invoicing.issued(
        invoicing.line("Widget", 3, 1999, invoicing.vat()),  # 5997 + 1139.43 -> 1139
        invoicing.line("Book", 1, 2500, invoicing.vat(70000)),  # 2500 + 175
    )
    # Nothing reaches the ledger in the request: the journal waits for the poster.
    assert await ledger_server.entries(tenant) == []
    (due,) = await _due_rows(owner_sql, tenant)
    assert (due[0], due[1], due[4]) == ("issue", invoice.name, None)

    await worker.drain()
    await worker.drain()  # nothing left: posting again is not possible
    (entry,) = await ledger_server.entries(tenant)
    assert entry.metadata["invoice"] == invoice.name
    assert "credit_note" not in entry.metadata
    assert await ledger_server.balance(tenant, RECEIVABLE) == 9811
    assert await ledger_server.balance(tenant, REVENUE) == -(5997 + 2500)
    assert await ledger_server.balance(tenant, VAT_19) == -1139
    assert await ledger_server.balance(tenant, VAT_7) == -175
    assert await _sum_of_balances(ledger_server, tenant) == 0
    (posted,) = await _due_rows(owner_sql, tenant)
    assert posted[4] == entry.name
    assert posted[2] == 1


async def test_a_voided_invoice_reverses_its_journal(client_for, worker, ledger_server):
    tenant = _tenant()
    invoicing = client_for(tenant)
    invoice = await invoicing.issued()
    await invoicing.call(
        "VoidInvoice", pb.VoidInvoiceRequest(name=invoice.name, request_id=invoicing.rid())
    )
    await worker.drain()
    entries = await ledger_server.entries(tenant)
    assert sorted(e.metadata["movement"] for e in entries) == ["issue", "void"]
    for account in (RECEIVABLE, REVENUE, VAT_19):
        assert await ledger_server.balance(tenant, account) == 0


async def test_a_redelivered_checkout_event_posts_once_and_applies_the_payment(
    runner, worker, ledger_server, payments_ledger, checkout_completed
):
    tenant = _tenant()
    event = checkout_completed(tenant, "o-1")
    payment_id = event.payment.rsplit("/", 1)[-1]
    await payments_ledger.captured_at_once(tenant, payment_id, PaymentsMoney(4758, "EUR"), "s1")
    for _ in range(3):  # the consumer's use case, as a redelivery or republication runs it
        await runner.run(
            tenant, lambda uow: usecases.invoice_checkout(uow, checkout_invoice(event))
        )
        await worker.drain()
    ours = [e for e in await ledger_server.entries(tenant) if "invoice" in e.metadata]
    assert sorted(e.metadata["movement"] for e in ours) == ["apply/" + event.payment, "issue"]
    assert await ledger_server.balance(tenant, CUSTOMER_FUNDS) == 0  # captured, then applied
    assert await ledger_server.balance(tenant, RECEIVABLE) == 0  # invoiced, then paid
    assert await ledger_server.balance(tenant, CLEARING) == 4758
    assert await ledger_server.balance(tenant, REVENUE) == -3998
    assert await ledger_server.balance(tenant, VAT_19) == -760
    assert await _sum_of_balances(ledger_server, tenant) == 0


async def test_a_crash_between_posting_and_marking_is_a_ledger_replay(
    client_for, app_db, worker, ledger_server, owner_sql
):
    tenant = _tenant()
    invoicing = client_for(tenant)
    invoice = await invoicing.issued()
    poster = LedgerPoster(ledger_server.client("service:invoicing"))
    posted: list[str] = []

    async def post_then_crash() -> None:
        async with app_db.transaction() as session:
            due = await ledger_queue.claim_due(session, 100)
            posted.extend(
                [await poster.post(i.journal) for i in due if i.journal.invoice == invoice.name]
            )
            raise RuntimeError("crash before marking")  # the transaction rolls back

    with pytest.raises(RuntimeError, match="crash"):
        await post_then_crash()
    (first,) = posted
    (row,) = await _due_rows(owner_sql, tenant)
    assert row[5] is None  # still due

    await worker.drain()
    (entry,) = await ledger_server.entries(tenant)
    assert entry.name == first
    (row,) = await _due_rows(owner_sql, tenant)
    assert row[4] == first
    assert await ledger_server.balance(tenant, REVENUE) == -2000  # 2 x 10.00


async def test_a_journal_the_ledger_refuses_stays_due_and_is_posted_later(
    client_for, app_db, worker, ledger_server, owner_sql
):
    tenant = _tenant()
    invoicing = client_for(tenant)
    await invoicing.issued()
    # Checkout's identity may not create accounts or entries: the ledger refuses the journal.
    reader = InMemoryMetricReader()
    refused = PostingWorker(
        app_db,
        LedgerPoster(ledger_server.client("service:checkout")),
        meter_provider=MeterProvider(metric_readers=[reader]),
    )
    await refused.drain()
    assert refused.failed >= 1
    backlog, _age = await refused.measure()
    assert backlog >= 1
    readings = _metrics(reader)
    assert readings["invoicing.ledger.backlog"] == backlog
    assert readings["invoicing.ledger.post_failures"] >= 1
    (row,) = await _due_rows(owner_sql, tenant)
    assert row[2] == 1
    assert "PermissionDenied" in row[3]
    assert row[5] is None
    assert await ledger_server.entries(tenant) == []

    await worker.drain()  # put off: not due yet
    assert await ledger_server.entries(tenant) == []
    await owner_sql(
        "UPDATE ledger_postings_due SET next_attempt_time = now() WHERE tenant_id = %s",
        (tenant,),
        tenant=tenant,
    )
    await worker.drain()
    (entry,) = await ledger_server.entries(tenant)
    (row,) = await _due_rows(owner_sql, tenant)
    assert (row[2], row[3], row[4]) == (2, "", entry.name)


def _metrics(reader: InMemoryMetricReader) -> dict[str, float]:
    data = reader.get_metrics_data()
    assert data is not None
    out: dict[str, float] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points = [p for p in metric.data.data_points if isinstance(p, NumberDataPoint)]
                out[metric.name] = float(sum(p.value for p in points))
    return out


def _stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


async def _report(service: TieOutService, tenant: str) -> tpb.TieOutReport:
    now = datetime.now(UTC)
    reply = await service.report(
        tenant,
        pb.GetTieOutReportRequest(
            name=f"tenants/{tenant}/tieOutReport",
            start_time=_stamp(now - timedelta(hours=1)),
            end_time=_stamp(now + timedelta(hours=1)),
            page_size=100,
        ),
        (("authorization", f"Bearer {token(tenant)}"),),
    )
    return reply.report


async def test_the_tie_out_over_the_real_ledger_is_clean_and_finds_a_deleted_invoice(  # noqa: PLR0915, PLR0917 - one mixed run
    runner, client_for, worker, ledger_server, payments_ledger, owner_sql, checkout_completed
):
    tenant = _tenant()
    now = datetime.now(UTC)
    views = Views()
    ledger_client = LedgerClient(ledger_server.channel)
    defaults = InvoicingSettings.model_fields  # the accounts the tie-out reads by default
    accounts = LedgerAccounts(
        frozenset(defaults["revenue_accounts"].default), frozenset(defaults["tax_accounts"].default)
    )
    service = TieOutService(
        runner,
        lambda t, md: (StaticPayments(views, t), GrpcLedgerView(ledger_client, t, accounts, md)),
    )
    # Three checkouts captured by payments (one authorized then captured through a hold).
    events = []
    for i in range(3):
        event = checkout_completed(tenant, f"order-{i}")
        payment_id = event.payment.rsplit("/", 1)[-1]
        amount = PaymentsMoney(4758, "EUR")
        if i == 0:
            hold = await payments_ledger.hold(tenant, payment_id, 1, amount, "a")
            await payments_ledger.post_hold(tenant, payment_id, hold, amount, "c")
        else:
            await payments_ledger.captured_at_once(tenant, payment_id, amount, "c")
        await runner.run(
            tenant, lambda uow, e=event: usecases.invoice_checkout(uow, checkout_invoice(e))
        )
        views.captures.append(CapturedPayment(event.payment, event.order, "EUR", 4758, now))
        events.append(event)
    # A partial refund of order-1 (payments refunds it, invoicing credits exactly that).
    event = events[1]
    refund_name = f"{event.payment}/refunds/r-1"
    await payments_ledger.refunded(
        tenant, event.payment.rsplit("/", 1)[-1], "r-1", PaymentsMoney(1190, "EUR"), "r"
    )
    note = await runner.run(
        tenant,
        lambda uow: usecases.credit_refund(
            uow, Refund(event.payment, event.order, refund_name, 1190, "EUR", now)
        ),
    )
    assert note is not None
    views.refund_records.append(RefundRecord(refund_name, event.payment, "EUR", 1190, now))
    # A manual invoice, unpaid (receivable), and a price adjustment credited on it.
    invoicing = client_for(tenant)
    manual = await invoicing.issued(invoicing.line("Consulting", 2, 10000, invoicing.vat()))
    adjustment = (
        await invoicing.call(
            "CreateCreditNote",
            pb.CreateCreditNoteRequest(
                parent=manual.name,
                credit_note=cn.CreditNote(
                    reason=cn.CREDIT_NOTE_REASON_PRICE_ADJUSTMENT, amount=invoicing.money(2380)
                ),
                request_id=invoicing.rid(),
            ),
        )
    ).credit_note
    # A manual invoice paid by bank transfer (no payments payment): bank, not customer funds.
    wired = await invoicing.issued(invoicing.line("Support plan", 1, 5000, invoicing.vat()))
    await invoicing.call(
        "MarkInvoicePaid",
        pb.MarkInvoicePaidRequest(
            name=wired.name, external_reference="SEPA-42", request_id=invoicing.rid()
        ),
    )
    await worker.drain()

    # The credit note reversed exactly its share, the books balance, customer funds net out.
    assert (note.subtotal, note.tax_total) == (1000, 190)
    assert await ledger_server.balance(tenant, REVENUE) == -(3 * 3998 - 1000 + 20000 - 2000 + 5000)
    assert await ledger_server.balance(tenant, VAT_19) == -(3 * 760 - 190 + 3800 - 380 + 950)
    assert await ledger_server.balance(tenant, "payments-bank-eur") == 5950
    assert await ledger_server.balance(tenant, CUSTOMER_FUNDS) == 0
    assert await ledger_server.balance(tenant, CLEARING) == 3 * 4758 - 1190
    assert await ledger_server.balance(tenant, RECEIVABLE) == 23800 - 2380
    assert await _sum_of_balances(ledger_server, tenant) == 0

    clean = await _report(service, tenant)
    assert clean.tied_out, [
        (tpb.TieOutDifferenceKind.Name(d.kind), d.detail) for d in clean.differences
    ]
    assert clean.difference_count == 0
    assert (clean.invoice_count, clean.matched_invoice_count) == (5, 5)
    assert (clean.credit_note_count, clean.matched_credit_note_count) == (2, 2)
    (totals,) = clean.totals
    assert totals.ledger_revenue_amount.amount_minor == 3 * 3998 - 1000 + 20000 - 2000 + 5000
    assert totals.ledger_tax_amount.amount_minor == 3 * 760 - 190 + 3800 - 380 + 950
    assert adjustment.total.amount_minor == 2380

    # Plant one deletion: order-2's invoice disappears from invoicing's database.
    victim = (
        f"tenants/{tenant}/invoices/"
        + (await runner.run(tenant, lambda uow: uow.invoices.by_order(events[2].order))).invoice_id
    )
    await owner_sql("ALTER TABLE invoices DISABLE TRIGGER invoices_guard", tenant=tenant)
    try:
        await owner_sql(
            "DELETE FROM invoices WHERE invoice_id = %s",
            (victim.rsplit("/", 1)[-1],),
            tenant=tenant,
        )
    finally:
        await owner_sql("ALTER TABLE invoices ENABLE TRIGGER invoices_guard", tenant=tenant)

    report = await _report(service, tenant)
    assert not report.tied_out
    found = sorted(
        (
            tpb.TieOutDifferenceKind.Name(d.kind),
            d.invoice,
            d.payment,
            d.counterpart_amount.amount_minor,
            d.difference_amount.amount_minor,
        )
        for d in report.differences
    )
    assert found == sorted(
        [
            (
                "TIE_OUT_DIFFERENCE_KIND_PAYMENT_NOT_INVOICED",
                "",
                events[2].payment,
                4758,
                4758,
            ),
            ("TIE_OUT_DIFFERENCE_KIND_LEDGER_REVENUE_MISMATCH", victim, "", 3998, 3998),
            ("TIE_OUT_DIFFERENCE_KIND_LEDGER_TAX_MISMATCH", victim, "", 760, 760),
        ]
    )
    ledger_entries = {d.ledger_entry for d in report.differences if d.ledger_entry}
    (entries,) = ledger_entries  # both ledger differences name the victim's issue entry
    assert entries.startswith(f"tenants/{tenant}/")


async def test_concurrent_posters_post_each_journal_once(
    client_for, app_db, ledger_server, owner_sql
):
    tenant = _tenant()
    invoicing = client_for(tenant)
    names = {(await invoicing.issued()).name for _ in range(20)}
    workers = [
        PostingWorker(app_db, LedgerPoster(ledger_server.client("service:invoicing")))
        for _ in range(3)
    ]
    await asyncio.gather(*(w.drain() for w in workers))
    entries = await ledger_server.entries(tenant)
    assert sorted(e.metadata["invoice"] for e in entries) == sorted(names)
    assert sum(w.posted for w in workers) >= len(names)
    rows = await _due_rows(owner_sql, tenant)
    assert len(rows) == len(names)
    assert all(row[5] is not None for row in rows)
    assert await ledger_server.balance(tenant, REVENUE) == -2000 * len(names)


async def test_pruning_deletes_only_posted_journals_past_retention(
    client_for, app_db, worker, owner_sql
):
    tenant = _tenant()
    invoicing = client_for(tenant)
    await invoicing.issued()
    await worker.drain()
    await invoicing.issued()  # still due
    async with app_db.transaction() as session:
        assert await ledger_queue.prune_posted(session, timedelta(days=1)) == 0
    async with app_db.transaction() as session:
        await ledger_queue.prune_posted(session, timedelta(0))
    (row,) = await _due_rows(owner_sql, tenant)
    assert row[5] is None  # the due journal stays whatever its age
    async with app_db.transaction() as session:
        assert await ledger_queue.backlog(session) >= (1, 0.0)


async def test_the_running_worker_posts_new_journals_and_stops_when_asked(
    client_for, app_db, ledger_server
):
    tenant = _tenant()
    invoicing = client_for(tenant)
    worker = PostingWorker(
        app_db,
        LedgerPoster(ledger_server.client("service:invoicing")),
        PosterSettings(idle_seconds=0.05),
    )
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        invoice = await invoicing.issued()
        entries = await ledger_server.entries(tenant)
        for _ in range(100):
            if entries:
                break
            await asyncio.sleep(0.05)
            entries = await ledger_server.entries(tenant)
        assert [e.metadata["invoice"] for e in entries] == [invoice.name]
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=5)
    assert worker.metrics.backlog == 0  # measured while idle
