"""A transaction cancelled at any point (a caller's deadline) leaves neither a broken pooled
connection nor a broken ledger: the next transaction on the pool's only connection works,
and every entry that did commit is whole (balances, chain)."""

import asyncio
import random
import uuid
from functools import partial

import pytest

from services.chassis.db.database import Database
from services.ledger.domain import commands
from services.ledger.domain.accounts import AccountSpec, AccountType
from services.ledger.domain.entries import EntryDraft, Posting
from services.ledger.domain.ports import IdempotencyKey
from services.ledger.domain.usecases import accounts, entries, reads
from services.ledger.storage.unit_of_work import SqlTransactionRunner

pytestmark = pytest.mark.integration
TENANT = "cancelled-transactions"


def key() -> IdempotencyKey:
    return IdempotencyKey(str(uuid.uuid4()), "test", uuid.uuid4().bytes * 2)


async def test_cancelled_transactions_leave_the_pool_and_the_books_whole(
    ledger_database, service_database
):
    database = Database.connect(service_database.app_url, pool_size=1, max_overflow=0)
    runner = SqlTransactionRunner(database)
    try:
        for account_id in ("from", "to"):
            spec = AccountSpec(account_id.upper(), account_id, "USD", AccountType.ASSET)
            command = commands.OpenAccount(key(), account_id, spec)
            await runner.run(TENANT, partial(accounts.open_account, command=command))

        async def post(size: int) -> None:
            draft = EntryDraft("", (Posting("from", "USD", -5), Posting("to", "USD", 5)))
            items = tuple(
                commands.EntryRequest(draft, key() if size > 1 else None) for _ in range(size)
            )
            command = commands.PostEntries(key(), items, batch=size > 1)
            await runner.run(TENANT, lambda uow: entries.post_entries(uow, command))

        rng = random.Random(7)  # noqa: S311 - timing of the cancellations, not security
        cancelled = 0
        for _ in range(60):
            task = asyncio.create_task(post(rng.choice([1, 20])))
            await asyncio.sleep(rng.uniform(0, 0.008))
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                cancelled += 1
            await post(1)  # on the pool's only connection
        assert cancelled > 10  # the cancellations did land mid-transaction

        source = await runner.run(TENANT, lambda uow: reads.account(uow, "from"))
        target = await runner.run(TENANT, lambda uow: reads.account(uow, "to"))
        chain = await runner.run(TENANT, lambda uow: reads.verify_chain(uow, 1, 1_000_000))
        assert chain.first_break is None
        assert source.balance.credits_posted == target.balance.debits_posted
        assert target.balance.debits_posted == 5 * chain.last_sequence
    finally:
        await database.dispose()
