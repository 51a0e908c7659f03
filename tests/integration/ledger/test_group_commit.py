"""Group commit: concurrent single-entry requests share transactions, answers never change."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import pytest
from sqlalchemy import text

from commerce.ledger.v1 import ledger_service_pb2 as pb
from commerce.ledger.v1 import resources_pb2 as res
from services.chassis.errors import DomainError
from services.ledger.domain.commands import EntryRequest, PostEntries
from services.ledger.domain.entries import EntryDraft, JournalEntry, Posting, TraceLink
from services.ledger.domain.ports import IdempotencyKey
from services.ledger.group_commit import GroupCommitter

pytestmark = pytest.mark.integration


def command(
    debit: str,
    credit: str,
    amount: int,
    *,
    request_id: str | None = None,
    entry_id: str = "",
    trace: TraceLink | None = None,
) -> PostEntries:
    draft = EntryDraft(
        entry_id,
        (Posting(debit, "USD", amount), Posting(credit, "USD", -amount)),
        trace=trace or TraceLink(),
    )
    digest = hashlib.sha256(f"{debit}|{credit}|{amount}|{entry_id}".encode()).digest()
    key = IdempotencyKey(request_id or str(uuid.uuid4()), "CreateJournalEntry", digest)
    return PostEntries(key, (EntryRequest(draft),))


async def outcome(committer: GroupCommitter, tenant: str, cmd: PostEntries) -> JournalEntry | str:
    try:
        return await committer.post(tenant, cmd)
    except DomainError as error:
        return error.reason


@pytest.fixture
async def books(ledger):
    await ledger.open("cash")
    await ledger.open("wallet", res.ACCOUNT_TYPE_LIABILITY, debits_must_not_exceed_credits=True)
    await ledger.open("sales", res.ACCOUNT_TYPE_REVENUE)
    return ledger


async def test_concurrent_entries_are_committed_in_groups_and_chain_correctly(books, runner):
    committer = GroupCommitter(runner)
    posted = await asyncio.gather(
        *(committer.post(books.tenant, command("cash", "sales", i + 1)) for i in range(40))
    )
    assert committer.stats.groups >= 1
    assert committer.stats.grouped + committer.stats.alone == 40
    assert committer.stats.grouped >= 2
    assert sorted(e.link.sequence for e in posted) == list(range(1, 41))
    assert (await books.balance("cash")).posted.amount_minor == sum(range(1, 41))
    verified = await books.call("VerifyChain", pb.VerifyChainRequest(parent=books.parent))
    assert verified.result == pb.CHAIN_VERIFICATION_RESULT_OK


async def test_a_bad_request_in_a_group_gets_its_own_answer_and_fails_no_other(books, runner):
    committer = GroupCommitter(runner)
    first = command("cash", "sales", 7, entry_id="first")
    await committer.post(books.tenant, first)
    reused = command("cash", "sales", 8, request_id=first.key.request_id)
    cases = [
        command("cash", "sales", 1),
        first,  # a replay: the first answer
        command("wallet", "sales", 5),  # a wallet may not be debited beyond its credits
        reused,  # the same request id with other content
        command("cash", "sales", 2, entry_id="first"),  # a taken entry id
        command("cash", "nowhere", 3),  # an unknown account
        command("cash", "sales", 4),
    ]
    blocker = command("cash", "sales", 100)  # in flight while the cases queue up
    results = await asyncio.gather(
        outcome(committer, books.tenant, blocker),
        *(outcome(committer, books.tenant, c) for c in cases),
    )
    _, ok1, replay, funds, reuse, taken, unknown, ok2 = results
    assert isinstance(ok1, JournalEntry)
    assert isinstance(ok2, JournalEntry)
    assert isinstance(replay, JournalEntry)
    assert replay.entry_id == "first"
    assert (funds, reuse, taken, unknown) == (
        "INSUFFICIENT_FUNDS",
        "IDEMPOTENCY_KEY_REUSED",
        "ENTRY_ALREADY_EXISTS",
        "ACCOUNT_NOT_FOUND",
    )
    assert committer.stats.groups >= 1
    assert (await books.balance("cash")).posted.amount_minor == 7 + 100 + 1 + 4
    verified = await books.call("VerifyChain", pb.VerifyChainRequest(parent=books.parent))
    assert verified.result == pb.CHAIN_VERIFICATION_RESULT_OK


async def test_identical_requests_in_one_group_are_recorded_once(books, runner):
    committer = GroupCommitter(runner)
    same = command("cash", "sales", 9)
    posted = await asyncio.gather(*(committer.post(books.tenant, same) for _ in range(20)))
    assert len({e.entry_id for e in posted}) == 1
    assert (await books.balance("cash")).posted.amount_minor == 9


async def test_each_grouped_entry_announces_its_own_trace(books, runner, ledger_database):
    committer = GroupCommitter(runner)
    traces = [TraceLink(f"{i + 1:032x}", f"{i + 1:016x}") for i in range(6)]
    posted = await asyncio.gather(
        *(
            committer.post(books.tenant, command("cash", "sales", 1, trace=trace))
            for trace in traces
        )
    )
    assert committer.stats.grouped >= 2
    async with ledger_database.transaction() as session:
        rows = await session.execute(
            text("SELECT subject, traceparent FROM outbox WHERE subject = ANY(:s)"),
            {"s": [e.name for e in posted]},
        )
        found = dict(rows.all())
    for entry, trace in zip(posted, traces, strict=True):  # no current span: the recorded one
        assert entry.draft.trace == trace
        assert found[entry.name] == f"00-{trace.trace_id}-{trace.span_id}-01"


async def test_concurrent_grpc_requests_all_succeed(books):
    requests = [books.entry_request(("cash", i + 1), ("sales", -(i + 1))) for i in range(30)]
    replies = await asyncio.gather(*(books.call("CreateJournalEntry", r) for r in requests))
    assert sorted(r.journal_entry.sequence for r in replies) == list(range(1, 31))
    again = await books.call("CreateJournalEntry", requests[5])
    assert again == replies[5]
