"""Two-phase holds: reserve, post fully or partly, void, expire — each exactly once."""

import asyncio

import pytest
from google.protobuf.duration_pb2 import Duration
from sqlalchemy import text

from commerce.ledger.v1 import ledger_service_pb2 as pb
from commerce.ledger.v1 import resources_pb2 as res
from services.ledger.messages import timestamp
from services.ledger.sweeper import HoldExpirySweeper

pytestmark = pytest.mark.integration


@pytest.fixture
async def funded(ledger):
    await ledger.open("wallet", res.ACCOUNT_TYPE_LIABILITY, debits_must_not_exceed_credits=True)
    await ledger.open("merchant", res.ACCOUNT_TYPE_LIABILITY)
    await ledger.open("bank")
    await ledger.post(("bank", 1000), ("wallet", -1000))
    return ledger


async def create_hold(ledger, amount, **hold):
    reply = await ledger.call(
        "CreateHold",
        pb.CreateHoldRequest(
            parent=ledger.parent,
            hold=res.Hold(
                debit_account=ledger.account("wallet"),
                credit_account=ledger.account("merchant"),
                amount=ledger.usd(amount),
                **hold,
            ),
            request_id=ledger.new_request_id(),
        ),
    )
    return reply.hold


async def test_a_hold_reserves_funds_and_a_partial_post_releases_the_rest(funded):
    hold = await create_hold(funded, 600, description="authorization")
    assert hold.state == res.HOLD_STATE_PENDING
    wallet = await funded.balance("wallet")
    assert (wallet.posted.amount_minor, wallet.pending.amount_minor) == (1000, -600)
    assert wallet.available.amount_minor == 400
    reply = await funded.call(
        "PostHold",
        pb.PostHoldRequest(
            name=hold.name, amount=funded.usd(450), request_id=funded.new_request_id()
        ),
    )
    assert reply.hold.state == res.HOLD_STATE_POSTED
    assert reply.hold.posted_amount.amount_minor == 450
    assert reply.hold.journal_entry == reply.journal_entry.name
    assert reply.journal_entry.hold == hold.name
    wallet = await funded.balance("wallet")
    assert (wallet.posted.amount_minor, wallet.pending.amount_minor) == (550, 0)
    merchant = await funded.balance("merchant")
    assert merchant.posted.amount_minor == 450


async def test_a_voided_hold_releases_everything_and_moves_nothing(funded):
    hold = await create_hold(funded, 300)
    reply = await funded.call(
        "VoidHold",
        pb.VoidHoldRequest(name=hold.name, reason="declined", request_id=funded.new_request_id()),
    )
    assert reply.hold.state == res.HOLD_STATE_VOIDED
    wallet = await funded.balance("wallet")
    assert (wallet.posted.amount_minor, wallet.pending.amount_minor) == (1000, 0)


async def test_concurrent_post_and_void_finalize_a_hold_exactly_once(funded):
    hold = await create_hold(funded, 200)
    calls = [
        funded.call(
            "PostHold", pb.PostHoldRequest(name=hold.name, request_id=funded.new_request_id())
        )
        for _ in range(5)
    ] + [
        funded.call(
            "VoidHold", pb.VoidHoldRequest(name=hold.name, request_id=funded.new_request_id())
        )
        for _ in range(5)
    ]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert sum(not isinstance(r, Exception) for r in results) == 1
    wallet = await funded.balance("wallet")
    assert wallet.pending.amount_minor == 0
    assert wallet.posted.amount_minor in (800, 1000)


async def test_the_sweeper_expires_due_holds_and_releases_them(funded, runner):
    hold = await create_hold(funded, 100, ttl=Duration(nanos=50_000_000))
    await asyncio.sleep(0.1)
    assert await HoldExpirySweeper(runner, interval=1, batch=10).sweep_once() >= 1
    reply = await funded.call("GetHold", pb.GetHoldRequest(name=hold.name))
    assert reply.hold.state == res.HOLD_STATE_EXPIRED
    assert (await funded.balance("wallet")).pending.amount_minor == 0


async def test_holds_list_newest_first_filtered_by_state(funded):
    first = await create_hold(funded, 1)
    second = await create_hold(funded, 2)
    await funded.call(
        "VoidHold", pb.VoidHoldRequest(name=first.name, request_id=funded.new_request_id())
    )
    listed = await funded.call("ListHolds", pb.ListHoldsRequest(parent=funded.parent, page_size=1))
    assert [h.name for h in listed.holds] == [second.name]
    rest = await funded.call(
        "ListHolds",
        pb.ListHoldsRequest(parent=funded.parent, page_size=1, page_token=listed.next_page_token),
    )
    assert [h.name for h in rest.holds] == [first.name]
    pending = await funded.call(
        "ListHolds", pb.ListHoldsRequest(parent=funded.parent, state=res.HOLD_STATE_PENDING)
    )
    assert [h.name for h in pending.holds] == [second.name]


async def test_a_balance_as_of_before_a_hold_was_posted_shows_it_pending(funded, ledger_database):
    hold = await create_hold(funded, 70)
    async with ledger_database.transaction() as session:
        between = (await session.execute(text("SELECT clock_timestamp()"))).scalar_one()
    await funded.call(
        "PostHold", pb.PostHoldRequest(name=hold.name, request_id=funded.new_request_id())
    )
    then = await funded.balance("wallet", as_of=timestamp(between))
    assert (then.posted.amount_minor, then.pending.amount_minor) == (1000, -70)
