"""GetTieOutReport after a mixed run (checkout invoices with captures, partial and full refunds
with credit notes, a manual invoice paid by bank transfer, ledger postings for each document):
it ties out; after one invoice is deliberately deleted from the database, the report lists
exactly the differences that deletion causes — the payment is on no invoice and the ledger's
postings for it name an invoice invoicing no longer has — with ids and amounts to the cent."""

import asyncio
import io
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from commerce.invoicing.v1 import invoicing_service_pb2 as pb
from commerce.invoicing.v1 import tie_out_pb2 as tpb
from services.invoicing import cli
from services.invoicing.domain import usecases
from services.invoicing.domain.commands import Refund
from services.invoicing.domain.tie_out import CapturedPayment, LedgerPosting, RefundRecord
from services.invoicing.messages import checkout_invoice

pytestmark = pytest.mark.integration
TENANT = "ttieout-acme"


def stamp(moment):
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def post(views, document, net, tax, when, *, currency="EUR"):
    views.postings.append(
        LedgerPosting(
            f"tenants/{TENANT}/journalEntries/e{len(views.postings)}",
            document,
            currency,
            net,
            tax,
            when,
        )
    )


async def _mixed_run(runner, views, completed):
    now = datetime.now(UTC)
    invoices = []
    for i in range(5):
        event = completed(TENANT, f"order-{i}")
        invoice = await runner.run(
            TENANT, lambda uow, e=event: usecases.invoice_checkout(uow, checkout_invoice(e))
        )
        invoices.append((event, invoice))
        views.captures.append(CapturedPayment(event.payment, event.order, "EUR", 4758, now))
        post(views, invoice.name, invoice.net_total, invoice.tax_total, now)
    # A partial refund of order-1, then a full refund of the rest; a full refund of order-2.
    for order_index, refund_id, amount in ((1, "r-a", 1000), (1, "r-b", 3758), (2, "r-c", 4758)):
        event, _ = invoices[order_index]
        refund = Refund(
            event.payment, event.order, f"{event.payment}/refunds/{refund_id}", amount, "EUR", now
        )
        note = await runner.run(TENANT, lambda uow, r=refund: usecases.credit_refund(uow, r))
        views.refund_records.append(RefundRecord(refund.refund, event.payment, "EUR", amount, now))
        post(views, note.name, -note.subtotal, -note.tax_total, now)
    return invoices


async def _report(invoicing):
    now = datetime.now(UTC)
    reply = await invoicing.call(
        "GetTieOutReport",
        pb.GetTieOutReportRequest(
            name=f"tenants/{TENANT}/tieOutReport",
            start_time=stamp(now - timedelta(hours=1)),
            end_time=stamp(now + timedelta(hours=1)),
            page_size=2,
        ),
    )
    report = reply.report
    token = reply.next_page_token
    while token:  # page through every difference
        more = await invoicing.call(
            "GetTieOutReport",
            pb.GetTieOutReportRequest(
                name=f"tenants/{TENANT}/tieOutReport",
                start_time=report.start_time,
                end_time=report.end_time,
                page_size=2,
                page_token=token,
            ),
        )
        report.differences.extend(more.report.differences)
        token = more.next_page_token
    return report


async def test_a_mixed_run_ties_out_and_a_deleted_invoice_is_exactly_the_difference(
    runner, views, client_for, owner_sql, checkout_completed
):
    invoicing = client_for(TENANT)
    invoices = await _mixed_run(runner, views, checkout_completed)
    clean = await _report(invoicing)
    assert clean.tied_out, [tpb.TieOutDifferenceKind.Name(d.kind) for d in clean.differences]
    assert (clean.payment_count, clean.matched_payment_count) == (5, 5)
    assert (clean.invoice_count, clean.matched_invoice_count) == (5, 5)
    assert (clean.refund_count, clean.credit_note_count, clean.matched_credit_note_count) == (
        3,
        3,
        3,
    )
    (totals,) = clean.totals
    assert totals.captured_amount.amount_minor == 5 * 4758
    assert totals.refunded_amount.amount_minor == 1000 + 3758 + 4758
    assert totals.credited_amount.amount_minor == totals.refunded_amount.amount_minor
    assert totals.ledger_revenue_amount.amount_minor == (
        totals.invoice_net_amount.amount_minor - totals.credit_note_net_amount.amount_minor
    )

    event, victim = invoices[3]
    await owner_sql("ALTER TABLE invoices DISABLE TRIGGER invoices_guard", tenant=TENANT)
    try:
        await owner_sql(
            "DELETE FROM invoices WHERE invoice_id = %s", (victim.invoice_id,), tenant=TENANT
        )
    finally:
        await owner_sql("ALTER TABLE invoices ENABLE TRIGGER invoices_guard", tenant=TENANT)

    report = await _report(invoicing)
    assert not report.tied_out
    found = sorted(
        (
            tpb.TieOutDifferenceKind.Name(d.kind),
            d.invoice,
            d.payment,
            d.order,
            d.HasField("invoicing_amount"),
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
                event.payment,
                event.order,
                False,
                4758,
                4758,
            ),
            (
                "TIE_OUT_DIFFERENCE_KIND_LEDGER_REVENUE_MISMATCH",
                victim.name,
                "",
                "",
                False,
                3998,
                3998,
            ),
            ("TIE_OUT_DIFFERENCE_KIND_LEDGER_TAX_MISMATCH", victim.name, "", "", False, 760, 760),
        ]
    )
    assert report.difference_count == 3
    assert (report.payment_count, report.matched_payment_count) == (5, 4)
    assert (report.invoice_count, report.matched_invoice_count) == (4, 4)
    assert all(
        d.ledger_entry
        for d in report.differences
        if "LEDGER" in tpb.TieOutDifferenceKind.Name(d.kind)
    )


async def test_the_cli_prints_the_report_and_exits_by_whether_it_ties_out(  # noqa: PLR0917 - fixtures
    invoicing_server, runner, views, checkout_completed, bearer_token, monkeypatch
):
    tenant = "ttieout-cli"
    monkeypatch.setenv("COMMERCE_TOKEN", bearer_token(tenant))
    now = datetime.now(UTC)
    event = checkout_completed(tenant, "o-cli")
    invoice = await runner.run(
        tenant, lambda uow: usecases.invoice_checkout(uow, checkout_invoice(event))
    )
    views.captures.append(CapturedPayment(event.payment, event.order, "EUR", 4758, now))
    views.postings.append(
        LedgerPosting(f"tenants/{tenant}/e-cli", invoice.name, "EUR", 3998, 760, now)
    )
    args = [
        "--tenant",
        tenant,
        "--start",
        (now - timedelta(hours=1)).isoformat(),
        "--end",
        (now + timedelta(hours=1)).isoformat(),
        "--target",
        f"127.0.0.1:{invoicing_server.port}",
    ]
    out = io.StringIO()
    assert await asyncio.to_thread(cli.main, args, out) == 0
    assert "TIED OUT" in out.getvalue()
    stray = f"tenants/{tenant}/payments/pay-stray"
    views.captures.append(CapturedPayment(stray, "", "EUR", 999, now))
    out = io.StringIO()
    assert await asyncio.to_thread(cli.main, args, out) == 1
    printed = out.getvalue()
    assert "1 difference(s)" in printed
    assert f"PAYMENT_NOT_INVOICED payment={stray} difference=999 EUR" in printed
