"""Wire ⇄ domain: request fingerprints ignore only the request id; balances read normally."""

from datetime import UTC, datetime, timedelta, timezone

from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from commerce.ledger.v1 import ledger_service_pb2 as pb
from commerce.ledger.v1 import resources_pb2 as res
from commerce.type.v1.money_pb2 import Money
from services.ledger import messages
from services.ledger.domain.accounts import Account, AccountSpec, AccountType, Balance
from services.ledger.domain.entries import ChainLink, EntryDraft, JournalEntry, Posting, TraceLink
from services.ledger.domain.usecases.reads import AccountBalance

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def request(amount=5, request_id="6f1d3c1e-8d4b-4c1a-9e7f-0b5d2c4a6e8f"):
    return pb.CreateJournalEntryRequest(
        parent="tenants/acme",
        journal_entry=res.JournalEntry(
            postings=[
                res.Posting(
                    account="tenants/acme/accounts/cash",
                    amount=Money(currency_code="USD", amount_minor=amount),
                ),
                res.Posting(
                    account="tenants/acme/accounts/sales",
                    amount=Money(currency_code="USD", amount_minor=-amount),
                ),
            ],
            metadata={"b": "2", "a": "1"},
        ),
        request_id=request_id,
    )


def test_the_fingerprint_covers_everything_but_the_request_id():
    key = messages.idempotency_key("CreateJournalEntry", request())
    assert key.request_id == "6f1d3c1e-8d4b-4c1a-9e7f-0b5d2c4a6e8f"
    same = messages.idempotency_key("CreateJournalEntry", request(request_id="other"))
    assert same.fingerprint == key.fingerprint
    assert messages.idempotency_key("CreateJournalEntry", request(6)).fingerprint != key.fingerprint
    assert messages.idempotency_key("PostHold", request()).fingerprint != key.fingerprint


def test_a_request_becomes_a_draft_with_ids_and_the_trace():
    draft = messages.entry_draft(request(), TraceLink("a" * 32, "b" * 16))
    assert [(p.account_id, p.amount) for p in draft.postings] == [("cash", 5), ("sales", -5)]
    assert draft.trace.span_id == "b" * 16
    assert draft.effective_time is None


def test_a_credit_normal_balance_reads_positive_and_available_excludes_pending_debits():
    spec = AccountSpec("W", "wallet", "USD", AccountType.LIABILITY)
    wallet = Account("acme", "wallet", spec, NOW, NOW)
    value = AccountBalance(wallet, Balance(10, 110, 30, 0), 7, NOW)
    balance = messages.account_balance(value)
    assert (balance.posted.amount_minor, balance.pending.amount_minor) == (100, -30)
    assert balance.available.amount_minor == 70
    assert (balance.last_sequence, balance.account) == (7, "tenants/acme/accounts/wallet")


@given(
    moment=st.datetimes(
        min_value=datetime(1, 1, 1),  # noqa: DTZ001 - naive bounds; timezones drawn below
        max_value=datetime(9999, 12, 30),  # noqa: DTZ001
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=-7)), timezone(timedelta(hours=5, minutes=30)), None]
        ),
    )
)
def test_timestamps_equal_protobufs_own_conversion(moment):
    expected = Timestamp()
    expected.FromDatetime(moment)
    assert messages.timestamp(moment) == expected


def _reference_journal_entry(value):
    """The message as built before ADR 0019's in-place builder: constructor arguments."""
    draft, tenant = value.draft, value.tenant
    created = messages.timestamp(value.link.create_time)
    return res.JournalEntry(
        name=value.name,
        postings=[
            res.Posting(
                account=f"tenants/{tenant}/accounts/{p.account_id}",
                amount=Money(currency_code=p.currency, amount_minor=p.amount),
                memo=p.memo,
            )
            for p in draft.postings
        ],
        description=draft.description,
        metadata=dict(draft.metadata),
        reverses=f"tenants/{tenant}/entries/{draft.reverses}" if draft.reverses else "",
        reversed_by=f"tenants/{tenant}/entries/{value.reversed_by}" if value.reversed_by else "",
        hold=f"tenants/{tenant}/holds/{draft.hold}" if draft.hold else "",
        sequence=value.link.sequence,
        previous_hash=value.link.previous_hash,
        hash=value.link.hash,
        trace_id=draft.trace.trace_id,
        span_id=draft.trace.span_id,
        create_time=created,
        effective_time=created
        if draft.effective_time is None
        else messages.timestamp(draft.effective_time),
    )


_ids = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
_times = st.datetimes(
    min_value=datetime(1970, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
    max_value=datetime(9999, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)


@st.composite
def _entries(draw):
    draft = EntryDraft(
        draw(_ids),
        tuple(
            Posting(draw(_ids), "USD", draw(st.integers(-(2**63), 2**63 - 1)), draw(st.text()))
            for _ in range(draw(st.integers(0, 3)))
        ),
        description=draw(st.text()),
        metadata=draw(st.dictionaries(st.text(), st.text(), max_size=3)),
        effective_time=draw(st.none() | _times),
        reverses=draw(st.none() | _ids),
        hold=draw(st.none() | _ids),
        trace=TraceLink(draw(st.text(max_size=4)), draw(st.text(max_size=4))),
    )
    link = ChainLink(
        draw(st.integers(1, 2**62)), draw(st.binary()), draw(st.binary()), draw(_times)
    )
    return JournalEntry(draw(_ids), draft, link, draw(st.none() | _ids))


@given(_entries())
def test_an_entry_message_is_the_one_constructor_arguments_build(entry):
    expected = _reference_journal_entry(entry).SerializeToString(deterministic=True)
    assert messages.journal_entry(entry).SerializeToString(deterministic=True) == expected
    assert messages.staged_journal_entry(entry).SerializeToString(deterministic=True) == expected
    assert messages.answered_journal_entry(entry).SerializeToString(deterministic=True) == expected


def test_the_response_takes_the_message_its_event_was_built_from_once():
    entry = JournalEntry(
        "acme",
        EntryDraft("e1", (Posting("cash", "USD", 5), Posting("sales", "USD", -5))),
        ChainLink(1, bytes(32), bytes(32), NOW),
    )
    staged = messages.staged_journal_entry(entry)
    assert messages.answered_journal_entry(entry) is staged
    again = messages.answered_journal_entry(entry)  # taken once: a new, equal message after
    assert again is not staged
    assert again == staged
    other = JournalEntry("acme", entry.draft, entry.link)  # equal, but not the same entry
    messages.staged_journal_entry(entry)
    assert messages.answered_journal_entry(other) is not staged
