"""Idempotency: replays return the first response; 50 identical submissions record once."""

import asyncio

import pytest

from commerce.ledger.v1 import ledger_service_pb2 as pb
from commerce.ledger.v1 import resources_pb2 as res

pytestmark = pytest.mark.integration


@pytest.fixture
async def books(ledger):
    await ledger.open("cash")
    await ledger.open("sales", res.ACCOUNT_TYPE_REVENUE)
    return ledger


async def test_a_replayed_entry_returns_the_first_response_and_posts_nothing(books):
    request = books.entry_request(("cash", 42), ("sales", -42))
    first = await books.call("CreateJournalEntry", request)
    again = await books.call("CreateJournalEntry", request)
    assert again == first
    assert (await books.balance("cash")).posted.amount_minor == 42


async def test_fifty_concurrent_identical_submissions_are_recorded_once(books):
    request = books.entry_request(("cash", 5), ("sales", -5))
    replies = await asyncio.gather(*(books.call("CreateJournalEntry", request) for _ in range(50)))
    assert len({r.journal_entry.name for r in replies}) == 1
    assert len({r.journal_entry.sequence for r in replies}) == 1
    assert (await books.balance("cash")).posted.amount_minor == 5
    listed = await books.call(
        "ListJournalEntries", pb.ListJournalEntriesRequest(parent=books.parent)
    )
    assert len(listed.journal_entries) == 1


async def test_fifty_concurrent_identical_holds_reserve_once(books):
    request = pb.CreateHoldRequest(
        parent=books.parent,
        hold=res.Hold(
            debit_account=books.account("cash"),
            credit_account=books.account("sales"),
            amount=res.Posting().amount.__class__(currency_code="USD", amount_minor=9),
        ),
        request_id=books.new_request_id(),
    )
    replies = await asyncio.gather(*(books.call("CreateHold", request) for _ in range(50)))
    assert len({r.hold.name for r in replies}) == 1
    assert (await books.balance("cash")).debits_pending.amount_minor == 9


async def test_a_replayed_batch_returns_the_same_entries(books):
    batch = pb.BatchCreateJournalEntriesRequest(
        parent=books.parent,
        requests=[books.entry_request(("cash", i), ("sales", -i)) for i in (1, 2, 3)],
        request_id=books.new_request_id(),
    )
    first = await books.call("BatchCreateJournalEntries", batch)
    again = await books.call("BatchCreateJournalEntries", batch)
    assert again == first
    # Each item's request id is that entry's key: a single create replays the batch's entry.
    single = await books.call("CreateJournalEntry", batch.requests[1])
    assert single.journal_entry == first.journal_entries[1]
    assert (await books.balance("cash")).posted.amount_minor == 6


async def test_replays_of_account_hold_and_close_requests_answer_as_the_first_did(books):
    open_request = pb.CreateAccountRequest(
        parent=books.parent,
        account=res.Account(
            code="X1", display_name="x", currency_code="USD", type=res.ACCOUNT_TYPE_ASSET
        ),
        request_id=books.new_request_id(),
    )
    first = await books.call("CreateAccount", open_request)
    assert (await books.call("CreateAccount", open_request)).account.name == first.account.name
    close = pb.CloseAccountRequest(name=first.account.name, request_id=books.new_request_id())
    closed = await books.call("CloseAccount", close)
    assert (await books.call("CloseAccount", close)) == closed
    other = pb.CloseAccountRequest(name=books.account("cash"), request_id=close.request_id)
    status, info = await books.fails("CloseAccount", other)
    assert (status.name, info.reason) == ("ALREADY_EXISTS", "IDEMPOTENCY_KEY_REUSED")
