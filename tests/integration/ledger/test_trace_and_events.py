"""Each entry records the current span's ids; every change is staged in the outbox with it."""

import pytest
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import text

from commerce.ledger.v1 import events_pb2 as ev
from commerce.ledger.v1 import ledger_service_pb2 as pb
from commerce.ledger.v1 import resources_pb2 as res
from services.chassis import context as request_context
from services.ledger.api import LedgerApi

pytestmark = pytest.mark.integration


async def test_an_entry_records_the_trace_and_span_of_the_current_span(ledger, runner):
    await ledger.open("cash")
    await ledger.open("sales", res.ACCOUNT_TYPE_REVENUE)
    tracer = TracerProvider().get_tracer("test")
    token = request_context.bind(
        request_context.RequestContext("CreateJournalEntry", None, ledger.tenant, None)
    )
    try:
        with tracer.start_as_current_span("server") as span:
            reply = await LedgerApi(runner).CreateJournalEntry(
                ledger.entry_request(("cash", 1), ("sales", -1)), None
            )
    finally:
        request_context.reset(token)
    context = span.get_span_context()
    entry = reply.journal_entry
    assert entry.trace_id == f"{context.trace_id:032x}"
    assert entry.span_id == f"{context.span_id:016x}"
    stored = await ledger.call("GetJournalEntry", pb.GetJournalEntryRequest(name=entry.name))
    assert stored.journal_entry.trace_id == entry.trace_id
    verified = await ledger.call("VerifyChain", pb.VerifyChainRequest(parent=ledger.parent))
    assert verified.result == pb.CHAIN_VERIFICATION_RESULT_OK


async def test_without_a_span_the_trace_fields_are_empty(ledger, runner):
    await ledger.open("cash")
    await ledger.open("sales", res.ACCOUNT_TYPE_REVENUE)
    token = request_context.bind(
        request_context.RequestContext("CreateJournalEntry", None, ledger.tenant, None)
    )
    try:
        reply = await LedgerApi(runner).CreateJournalEntry(
            ledger.entry_request(("cash", 1), ("sales", -1)), None
        )
    finally:
        request_context.reset(token)
    assert (reply.journal_entry.trace_id, reply.journal_entry.span_id) == ("", "")


async def outbox(database, subject):
    async with database.transaction() as session:
        rows = await session.execute(
            text("SELECT type, source, data FROM outbox WHERE subject = :s ORDER BY position"),
            {"s": subject},
        )
        return rows.all()


async def test_entries_and_holds_are_announced_in_the_outbox(ledger, ledger_database):
    account = await ledger.open("cash")
    await ledger.open("sales", res.ACCOUNT_TYPE_REVENUE)
    entry = await ledger.post(("cash", 1), ("sales", -1))
    [(kind, source, data)] = await outbox(ledger_database, entry.name)
    assert (kind, source) == ("commerce.ledger.v1.JournalEntryPosted", "//commerce-mesh/ledger")
    posted = ev.JournalEntryPosted.FromString(data)
    assert posted.journal_entry == entry
    assert [r.type for r in await outbox(ledger_database, account.name)] == [
        "commerce.ledger.v1.AccountOpened"
    ]
    hold = (
        await ledger.call(
            "CreateHold",
            pb.CreateHoldRequest(
                parent=ledger.parent,
                hold=res.Hold(
                    debit_account=ledger.account("cash"),
                    credit_account=ledger.account("sales"),
                    amount=entry.postings[0].amount,
                ),
                request_id=ledger.new_request_id(),
            ),
        )
    ).hold
    await ledger.call(
        "PostHold", pb.PostHoldRequest(name=hold.name, request_id=ledger.new_request_id())
    )
    assert [r.type for r in await outbox(ledger_database, hold.name)] == [
        "commerce.ledger.v1.HoldCreated",
        "commerce.ledger.v1.HoldPosted",
    ]


async def test_a_batch_announces_every_entry_in_chain_order(ledger, ledger_database):
    await ledger.open("cash")
    await ledger.open("sales", res.ACCOUNT_TYPE_REVENUE)
    reply = await ledger.call(
        "BatchCreateJournalEntries",
        pb.BatchCreateJournalEntriesRequest(
            parent=ledger.parent,
            requests=[ledger.entry_request(("cash", i), ("sales", -i)) for i in (1, 2, 3)],
            request_id=ledger.new_request_id(),
        ),
    )
    for entry in reply.journal_entries:
        [(kind, source, data)] = await outbox(ledger_database, entry.name)
        assert (kind, source) == ("commerce.ledger.v1.JournalEntryPosted", "//commerce-mesh/ledger")
        assert ev.JournalEntryPosted.FromString(data).journal_entry == entry
