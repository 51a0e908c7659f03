"""Posting entries through the real server: balances, chain fields, batches, reversals."""

import pytest

from commerce.ledger.v1 import ledger_service_pb2 as pb
from commerce.ledger.v1 import resources_pb2 as res

pytestmark = pytest.mark.integration


async def test_an_entry_moves_money_and_is_chained(ledger):
    await ledger.open("cash")
    await ledger.open("sales", res.ACCOUNT_TYPE_REVENUE)
    first = await ledger.post(("cash", 1500), ("sales", -1500), entry_id="sale-1")
    second = await ledger.post(("cash", 250), ("sales", -250))
    assert first.name == f"{ledger.parent}/entries/sale-1"
    assert (first.sequence, second.sequence) == (1, 2)
    assert first.previous_hash == bytes(32)
    assert second.previous_hash == first.hash
    assert len(first.hash) == 32
    cash = await ledger.balance("cash")
    sales = await ledger.balance("sales")
    assert cash.posted.amount_minor == 1750
    assert sales.posted.amount_minor == 1750  # credit-normal: shown positive
    assert cash.last_sequence == 2


async def test_a_batch_is_posted_in_order_with_consecutive_sequences(ledger):
    await ledger.open("wallet", res.ACCOUNT_TYPE_LIABILITY, debits_must_not_exceed_credits=True)
    await ledger.open("bank")
    requests = [
        ledger.entry_request(("bank", 100), ("wallet", -100)),
        # Spends what the first entry credited: checked after each entry, in order.
        ledger.entry_request(("wallet", 100), ("bank", -100)),
    ]
    reply = await ledger.call(
        "BatchCreateJournalEntries",
        pb.BatchCreateJournalEntriesRequest(
            parent=ledger.parent, requests=requests, request_id=ledger.new_request_id()
        ),
    )
    assert [e.sequence for e in reply.journal_entries] == [1, 2]
    assert (await ledger.balance("wallet")).posted.amount_minor == 0


async def test_a_failing_entry_in_a_batch_posts_nothing_and_names_its_index(ledger):
    await ledger.open("wallet", res.ACCOUNT_TYPE_LIABILITY, debits_must_not_exceed_credits=True)
    await ledger.open("bank")
    requests = [
        ledger.entry_request(("bank", 100), ("wallet", -100)),
        ledger.entry_request(("wallet", 101), ("bank", -101)),
    ]
    code, info = await ledger.fails(
        "BatchCreateJournalEntries",
        pb.BatchCreateJournalEntriesRequest(
            parent=ledger.parent, requests=requests, request_id=ledger.new_request_id()
        ),
    )
    assert (code.name, info.reason, info.metadata["index"]) == (
        "FAILED_PRECONDITION",
        "INSUFFICIENT_FUNDS",
        "1",
    )
    assert (await ledger.balance("bank")).posted.amount_minor == 0


async def test_a_reversal_negates_the_original_which_then_names_it(ledger):
    await ledger.open("cash")
    await ledger.open("sales", res.ACCOUNT_TYPE_REVENUE)
    original = await ledger.post(("cash", 900), ("sales", -900), entry_id="oops")
    reply = await ledger.call(
        "ReverseJournalEntry",
        pb.ReverseJournalEntryRequest(
            name=original.name, description="typo", request_id=ledger.new_request_id()
        ),
    )
    reversal = reply.journal_entry
    assert reversal.reverses == original.name
    assert [p.amount.amount_minor for p in reversal.postings] == [-900, 900]
    again = await ledger.call("GetJournalEntry", pb.GetJournalEntryRequest(name=original.name))
    assert again.journal_entry.reversed_by == reversal.name
    assert (await ledger.balance("cash")).posted.amount_minor == 0


async def test_entries_list_in_chain_order_across_pages_with_filters(ledger):
    await ledger.open("cash")
    await ledger.open("fees", res.ACCOUNT_TYPE_EXPENSE)
    await ledger.open("sales", res.ACCOUNT_TYPE_REVENUE)
    for i in range(5):
        await ledger.post(("cash", 10 + i), ("sales", -10 - i), metadata={"batch": "a"})
    await ledger.post(("fees", 3), ("cash", -3))
    seen, token = [], ""
    while True:
        page = await ledger.call(
            "ListJournalEntries",
            pb.ListJournalEntriesRequest(parent=ledger.parent, page_size=2, page_token=token),
        )
        seen += [e.sequence for e in page.journal_entries]
        token = page.next_page_token
        if not token:
            break
    assert seen == [1, 2, 3, 4, 5, 6]
    fees = await ledger.call(
        "ListJournalEntries",
        pb.ListJournalEntriesRequest(parent=ledger.parent, account=ledger.account("fees")),
    )
    assert [e.sequence for e in fees.journal_entries] == [6]
    tagged = await ledger.call(
        "ListJournalEntries",
        pb.ListJournalEntriesRequest(parent=ledger.parent, metadata={"batch": "a"}),
    )
    assert len(tagged.journal_entries) == 5


async def test_a_statement_replays_from_opening_to_closing_balance(ledger):
    await ledger.open("cash")
    await ledger.open("sales", res.ACCOUNT_TYPE_REVENUE)
    for amount in (100, 250, -50, 75):
        await ledger.post(("cash", amount), ("sales", -amount))
    statement = (
        await ledger.call(
            "GetAccountStatement", pb.GetAccountStatementRequest(account=ledger.account("cash"))
        )
    ).statement
    assert statement.line_count == 4
    assert statement.total_debits.amount_minor == 425
    assert statement.total_credits.amount_minor == 50
    assert statement.closing_balance.amount_minor == 375
    running, token, lines = None, "", []
    while True:
        page = await ledger.call(
            "ListAccountStatementLines",
            pb.ListAccountStatementLinesRequest(
                account=ledger.account("cash"), page_size=3, page_token=token
            ),
        )
        balance = page.page_opening_balance.amount_minor
        assert running is None or balance == running
        for line in page.lines:
            balance += line.amount.amount_minor
            assert line.running_balance.amount_minor == balance
        running = balance
        lines += page.lines
        token = page.next_page_token
        if not token:
            break
    assert len(lines) == 4
    assert running == statement.closing_balance.amount_minor


async def test_a_balance_as_of_a_past_time_ignores_later_entries(ledger):
    await ledger.open("cash")
    await ledger.open("sales", res.ACCOUNT_TYPE_REVENUE)
    first = await ledger.post(("cash", 100), ("sales", -100))
    await ledger.post(("cash", 50), ("sales", -50))
    past = await ledger.balance("cash", as_of=first.create_time)
    assert (past.posted.amount_minor, past.last_sequence) == (100, 1)


async def test_the_chain_verifies_ok_with_the_head_hash(ledger):
    await ledger.open("cash")
    await ledger.open("sales", res.ACCOUNT_TYPE_REVENUE)
    posted = [await ledger.post(("cash", i + 1), ("sales", -(i + 1))) for i in range(3)]
    reply = await ledger.call("VerifyChain", pb.VerifyChainRequest(parent=ledger.parent))
    assert reply.result == pb.CHAIN_VERIFICATION_RESULT_OK
    assert (reply.entries_checked, reply.first_sequence, reply.last_sequence) == (3, 1, 3)
    assert reply.head_hash == posted[-1].hash
