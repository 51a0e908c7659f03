"""32 concurrent workers transfer among a few limited accounts; money is never made or lost.

`make test` runs a few hundred transfers; LEDGER_SOAK=1 runs the full 10,000.
"""

import asyncio
import os
import random
import time
from datetime import UTC, datetime

import grpc
import pytest
from psycopg import errors as pg
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from commerce.ledger.v1 import ledger_service_pb2 as pb
from commerce.ledger.v1 import resources_pb2 as res
from services.ledger.messages import timestamp

pytestmark = pytest.mark.integration

WORKERS = 32
TRANSFERS = 10_000 if os.environ.get("LEDGER_SOAK") == "1" else 640
WALLETS = [f"w{i}" for i in range(4)]
FUNDING = 10_000


async def snapshot_total(database, tenant):
    """Sum and minimum of the wallets' available money, from one statement's snapshot."""
    async with database.tenant_transaction(tenant) as session:
        row = (
            await session.execute(
                text(
                    "SELECT sum(credits_posted - debits_posted),"
                    " min(credits_posted - debits_posted - debits_pending)"
                    " FROM accounts WHERE account_id LIKE 'w%'"
                )
            )
        ).one()
    return int(row[0]), int(row[1])


async def test_concurrent_transfers_keep_every_total_and_limit(ledger, ledger_database, runner):
    await ledger.open("capital", res.ACCOUNT_TYPE_EQUITY)
    for wallet in WALLETS:
        await ledger.open(wallet, res.ACCOUNT_TYPE_LIABILITY, debits_must_not_exceed_credits=True)
        await ledger.post(("capital", FUNDING), (wallet, -FUNDING))
    total = FUNDING * len(WALLETS)
    funded_at = time.time()
    outcomes: dict[str, int] = {}
    wrong_reads: list[str] = []
    done = asyncio.Event()
    queue = iter(range(TRANSFERS))
    rng = random.Random(7)  # noqa: S311 - workload shape, not security

    async def worker():
        for _ in queue:
            source, target = rng.sample(WALLETS, 2)
            amount = rng.randint(1, 3_000)
            try:
                await ledger.post((source, amount), (target, -amount))
                outcome = "OK"
            except grpc.aio.AioRpcError as error:
                outcome = f"{error.code().name}/{ledger.error_info(error).reason}"
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

    async def reader():
        while not done.is_set():
            in_db, lowest = await snapshot_total(ledger_database, ledger.tenant)
            if in_db != total or lowest < 0:
                wrong_reads.append(f"db total {in_db}, lowest {lowest}")
            # A past point (every entry up to it has committed), after the funding.
            as_of = timestamp_at(max(time.time() - 3, funded_at))
            balances = await asyncio.gather(*(ledger.balance(w, as_of=as_of) for w in WALLETS))
            seen = sum(b.posted.amount_minor for b in balances)
            if seen != total or min(b.available.amount_minor for b in balances) < 0:
                wrong_reads.append(f"api total {seen} as of {as_of.ToJsonString()}")
            await asyncio.sleep(0.05)

    reading = asyncio.create_task(reader())
    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    done.set()
    await reading

    assert set(outcomes) <= {"OK", "FAILED_PRECONDITION/INSUFFICIENT_FUNDS"}, outcomes
    assert sum(outcomes.values()) == TRANSFERS
    assert outcomes.get("OK", 0) > TRANSFERS // 4
    assert wrong_reads == []
    balances = [await ledger.balance(w) for w in WALLETS]
    assert sum(b.posted.amount_minor for b in balances) == total
    assert all(b.posted.amount_minor >= 0 for b in balances)
    assert (await ledger.balance("capital")).posted.amount_minor == -total
    verified = await ledger.call("VerifyChain", pb.VerifyChainRequest(parent=ledger.parent))
    assert verified.result == pb.CHAIN_VERIFICATION_RESULT_OK
    assert verified.last_sequence == len(WALLETS) + outcomes["OK"]


def timestamp_at(seconds):
    return timestamp(datetime.fromtimestamp(seconds, UTC))


async def test_a_serialization_failure_is_retried_not_surfaced(ledger, runner):
    await ledger.open("cash")
    attempts = []

    async def flaky(uow):
        attempts.append(1)
        if len(attempts) < 3:
            raise DBAPIError("SELECT 1", {}, pg.SerializationFailure("could not serialize"))
        return await uow.accounts.get("cash")

    account = await runner.run(ledger.tenant, flaky)
    assert account is not None
    assert len(attempts) == 3


async def test_a_deadlock_between_real_transactions_is_retried(ledger, runner):
    await ledger.open("a")
    await ledger.open("b")
    both_locked = asyncio.Barrier(2)

    def crossing(first, second):
        tries = []

        async def work(uow):
            tries.append(time.monotonic())
            await uow.accounts.lock([first])
            if len(tries) == 1:
                await both_locked.wait()
            await uow.accounts.lock([second])
            return len(tries)

        return work

    results = await asyncio.gather(
        runner.run(ledger.tenant, crossing("a", "b")),
        runner.run(ledger.tenant, crossing("b", "a")),
    )
    assert max(results) >= 2  # one side lost the deadlock and ran again
