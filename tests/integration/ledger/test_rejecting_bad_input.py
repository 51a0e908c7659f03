"""Every bad input gets its status and ErrorInfo reason, and changes nothing."""

import pytest
from google.protobuf.duration_pb2 import Duration

from commerce.ledger.v1 import ledger_service_pb2 as pb
from commerce.ledger.v1 import resources_pb2 as res

pytestmark = pytest.mark.integration

INT64_MAX = 2**63 - 1


@pytest.fixture
async def books(ledger):
    await ledger.open("cash")
    await ledger.open("sales", res.ACCOUNT_TYPE_REVENUE)
    await ledger.open("eur-cash", currency="EUR")
    await ledger.open("wallet", res.ACCOUNT_TYPE_LIABILITY, debits_must_not_exceed_credits=True)
    return ledger


async def expect(ledger, method, request, code, reason):
    status, info = await ledger.fails(method, request)
    assert (status.name, info.reason) == (code, reason)
    return info


async def test_unbalanced_postings_are_rejected_with_the_imbalance(books):
    info = await expect(
        books,
        "CreateJournalEntry",
        books.entry_request(("cash", 100), ("sales", -90)),
        "INVALID_ARGUMENT",
        "ENTRY_UNBALANCED",
    )
    assert (info.metadata["currency_code"], info.metadata["imbalance_minor"]) == ("USD", "10")


async def test_a_posting_in_another_currency_than_its_account_is_a_currency_mismatch(books):
    info = await expect(
        books,
        "CreateJournalEntry",
        books.entry_request(("cash", 100), ("eur-cash", -100), currency="EUR"),
        "INVALID_ARGUMENT",
        "CURRENCY_MISMATCH",
    )
    assert info.metadata["account"] == books.account("cash")


async def test_an_unknown_account_is_not_found(books):
    info = await expect(
        books,
        "CreateJournalEntry",
        books.entry_request(("cash", 100), ("nowhere", -100)),
        "NOT_FOUND",
        "ACCOUNT_NOT_FOUND",
    )
    assert info.metadata["resource"] == books.account("nowhere")


async def test_a_closed_account_takes_no_postings(books):
    await books.open("old")
    await books.call(
        "CloseAccount",
        pb.CloseAccountRequest(name=books.account("old"), request_id=books.new_request_id()),
    )
    await expect(
        books,
        "CreateJournalEntry",
        books.entry_request(("cash", 100), ("old", -100)),
        "FAILED_PRECONDITION",
        "ACCOUNT_CLOSED",
    )


async def test_amounts_overflowing_int64_within_a_request_are_rejected(books):
    await expect(
        books,
        "CreateJournalEntry",
        books.entry_request(
            ("cash", INT64_MAX), ("cash", INT64_MAX), ("sales", -INT64_MAX), ("sales", -INT64_MAX)
        ),
        "INVALID_ARGUMENT",
        "AMOUNT_OVERFLOW",
    )
    await expect(
        books,
        "CreateJournalEntry",
        books.entry_request(("cash", -(2**63)), ("sales", 2**63 - 1), ("sales", 1)),
        "INVALID_ARGUMENT",
        "AMOUNT_OVERFLOW",
    )


async def test_a_balance_pushed_past_int64_is_out_of_range_and_nothing_moves(books):
    await books.post(("cash", INT64_MAX), ("sales", -INT64_MAX))
    await expect(
        books,
        "CreateJournalEntry",
        books.entry_request(("cash", 1), ("sales", -1)),
        "OUT_OF_RANGE",
        "BALANCE_OVERFLOW",
    )
    assert (await books.balance("cash")).posted.amount_minor == INT64_MAX


async def test_spending_more_than_a_limited_account_holds_is_insufficient_funds(books):
    info = await expect(
        books,
        "CreateJournalEntry",
        books.entry_request(("wallet", 1), ("cash", -1)),
        "FAILED_PRECONDITION",
        "INSUFFICIENT_FUNDS",
    )
    assert info.metadata["account"] == books.account("wallet")


async def test_a_taken_entry_id_is_entry_already_exists_naming_it(books):
    await books.post(("cash", 5), ("sales", -5), entry_id="once")
    info = await expect(
        books,
        "CreateJournalEntry",
        books.entry_request(("cash", 5), ("sales", -5), entry_id="once"),
        "ALREADY_EXISTS",
        "ENTRY_ALREADY_EXISTS",
    )
    assert info.metadata["entry"] == f"{books.parent}/entries/once"


async def test_a_replay_with_different_content_is_idempotency_key_reused(books):
    request = books.entry_request(("cash", 7), ("sales", -7))
    await books.call("CreateJournalEntry", request)
    changed = pb.CreateJournalEntryRequest()
    changed.CopyFrom(request)
    changed.journal_entry.postings[0].amount.amount_minor = 8
    changed.journal_entry.postings[1].amount.amount_minor = -8
    await expect(books, "CreateJournalEntry", changed, "ALREADY_EXISTS", "IDEMPOTENCY_KEY_REUSED")
    assert (await books.balance("cash")).posted.amount_minor == 7


async def test_reversing_twice_or_reversing_a_reversal_is_refused(books):
    original = await books.post(("cash", 3), ("sales", -3))
    reversal = (
        await books.call(
            "ReverseJournalEntry",
            pb.ReverseJournalEntryRequest(
                name=original.name, description="x", request_id=books.new_request_id()
            ),
        )
    ).journal_entry
    info = await expect(
        books,
        "ReverseJournalEntry",
        pb.ReverseJournalEntryRequest(
            name=original.name, description="x", request_id=books.new_request_id()
        ),
        "FAILED_PRECONDITION",
        "ENTRY_ALREADY_REVERSED",
    )
    assert info.metadata["reversed_by"] == reversal.name
    await expect(
        books,
        "ReverseJournalEntry",
        pb.ReverseJournalEntryRequest(
            name=reversal.name, description="x", request_id=books.new_request_id()
        ),
        "FAILED_PRECONDITION",
        "ENTRY_IS_REVERSAL",
    )
    await expect(
        books,
        "ReverseJournalEntry",
        pb.ReverseJournalEntryRequest(
            name=f"{books.parent}/entries/missing",
            description="x",
            request_id=books.new_request_id(),
        ),
        "NOT_FOUND",
        "ENTRY_NOT_FOUND",
    )


def hold_request(ledger, amount=500, hold_id="", **hold):
    return pb.CreateHoldRequest(
        parent=ledger.parent,
        hold_id=hold_id,
        hold=res.Hold(
            debit_account=ledger.account("wallet"),
            credit_account=ledger.account("cash"),
            amount=ledger.usd(amount),
            **hold,
        ),
        request_id=ledger.new_request_id(),
    )


async def test_posting_a_voided_hold_is_hold_already_finalized(books):
    await books.post(("cash", 1000), ("wallet", -1000))
    hold = (await books.call("CreateHold", hold_request(books, 400))).hold
    await books.call(
        "VoidHold", pb.VoidHoldRequest(name=hold.name, request_id=books.new_request_id())
    )
    info = await expect(
        books,
        "PostHold",
        pb.PostHoldRequest(name=hold.name, request_id=books.new_request_id()),
        "FAILED_PRECONDITION",
        "HOLD_ALREADY_FINALIZED",
    )
    assert info.metadata["state"] == "HOLD_STATE_VOIDED"


async def test_hold_errors_name_the_rule_they_break(books):
    await books.post(("cash", 1000), ("wallet", -1000))
    # Holds count against limits: 1000 held, nothing left for a second one.
    hold = (await books.call("CreateHold", hold_request(books, 1000, hold_id="h1"))).hold
    await expect(
        books, "CreateHold", hold_request(books, 1), "FAILED_PRECONDITION", "INSUFFICIENT_FUNDS"
    )
    await expect(
        books,
        "CreateHold",
        hold_request(books, 1, hold_id="h1"),
        "ALREADY_EXISTS",
        "HOLD_ALREADY_EXISTS",
    )
    await expect(
        books,
        "PostHold",
        pb.PostHoldRequest(
            name=hold.name, amount=books.usd(1001), request_id=books.new_request_id()
        ),
        "INVALID_ARGUMENT",
        "HOLD_AMOUNT_EXCEEDED",
    )
    await expect(
        books,
        "PostHold",
        pb.PostHoldRequest(
            name=hold.name, amount=books.usd(10, "EUR"), request_id=books.new_request_id()
        ),
        "INVALID_ARGUMENT",
        "CURRENCY_MISMATCH",
    )
    await expect(
        books,
        "VoidHold",
        pb.VoidHoldRequest(name=f"{books.parent}/holds/nope", request_id=books.new_request_id()),
        "NOT_FOUND",
        "HOLD_NOT_FOUND",
    )
    request = hold_request(books, 5)
    request.hold.amount.currency_code = "EUR"
    await expect(books, "CreateHold", request, "INVALID_ARGUMENT", "CURRENCY_MISMATCH")


async def test_a_hold_past_its_expiry_cannot_be_posted_even_before_the_sweep(books):
    await books.post(("cash", 1000), ("wallet", -1000))
    hold = (
        await books.call("CreateHold", hold_request(books, 10, ttl=Duration(nanos=1_000_000)))
    ).hold
    info = await expect(
        books,
        "PostHold",
        pb.PostHoldRequest(name=hold.name, request_id=books.new_request_id()),
        "FAILED_PRECONDITION",
        "HOLD_ALREADY_FINALIZED",
    )
    assert info.metadata["state"] == "HOLD_STATE_EXPIRED"


async def test_closing_an_account_with_money_or_holds_is_refused(books):
    await books.post(("cash", 10), ("wallet", -10))
    await expect(
        books,
        "CloseAccount",
        pb.CloseAccountRequest(name=books.account("cash"), request_id=books.new_request_id()),
        "FAILED_PRECONDITION",
        "ACCOUNT_BALANCE_NOT_ZERO",
    )
    await books.open("a")
    await books.open("b", res.ACCOUNT_TYPE_LIABILITY)
    await books.call(
        "CreateHold",
        pb.CreateHoldRequest(
            parent=books.parent,
            hold=res.Hold(
                debit_account=books.account("a"),
                credit_account=books.account("b"),
                amount=books.usd(1),
            ),
            request_id=books.new_request_id(),
        ),
    )
    await expect(
        books,
        "CloseAccount",
        pb.CloseAccountRequest(name=books.account("a"), request_id=books.new_request_id()),
        "FAILED_PRECONDITION",
        "ACCOUNT_HAS_PENDING_HOLDS",
    )
    await expect(
        books,
        "CloseAccount",
        pb.CloseAccountRequest(
            name=books.account("sales"), etag="v999", request_id=books.new_request_id()
        ),
        "ABORTED",
        "ETAG_MISMATCH",
    )


async def test_account_ids_and_codes_are_unique_per_tenant(books):
    await expect(
        books,
        "CreateAccount",
        pb.CreateAccountRequest(
            parent=books.parent,
            account_id="cash",
            account=res.Account(
                code="OTHER", display_name="x", currency_code="USD", type=res.ACCOUNT_TYPE_ASSET
            ),
            request_id=books.new_request_id(),
        ),
        "ALREADY_EXISTS",
        "ACCOUNT_ALREADY_EXISTS",
    )
    await expect(
        books,
        "CreateAccount",
        pb.CreateAccountRequest(
            parent=books.parent,
            account_id="fresh",
            account=res.Account(
                code="CASH", display_name="x", currency_code="USD", type=res.ACCOUNT_TYPE_ASSET
            ),
            request_id=books.new_request_id(),
        ),
        "ALREADY_EXISTS",
        "ACCOUNT_CODE_TAKEN",
    )


async def test_a_malformed_page_token_is_invalid_page_token(books):
    await expect(
        books,
        "ListAccounts",
        pb.ListAccountsRequest(parent=books.parent, page_token="not-a-token"),
        "INVALID_ARGUMENT",
        "INVALID_PAGE_TOKEN",
    )


async def test_a_zero_posting_fails_validation_naming_the_rule(books):
    status, info = await books.fails(
        "CreateJournalEntry", books.entry_request(("cash", 0), ("sales", 0))
    )
    assert (status.name, info.reason) == ("INVALID_ARGUMENT", "VALIDATION_FAILED")
    assert info.metadata["rule"] == "posting.amount_non_zero"


async def test_a_taken_entry_id_inside_a_batch_names_its_index(books):
    await books.post(("cash", 5), ("sales", -5), entry_id="taken")
    info = await expect(
        books,
        "BatchCreateJournalEntries",
        pb.BatchCreateJournalEntriesRequest(
            parent=books.parent,
            requests=[
                books.entry_request(("cash", 1), ("sales", -1)),
                books.entry_request(("cash", 1), ("sales", -1), entry_id="taken"),
            ],
            request_id=books.new_request_id(),
        ),
        "ALREADY_EXISTS",
        "ENTRY_ALREADY_EXISTS",
    )
    assert info.metadata["index"] == "1"
