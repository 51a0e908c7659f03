"""Entries per second through the real server (gRPC) and through the use cases directly."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

import grpc
import jwt

from commerce.ledger.v1 import ledger_service_pb2 as pb
from commerce.ledger.v1 import ledger_service_pb2_grpc as rpc
from commerce.ledger.v1 import resources_pb2 as res
from commerce.type.v1.money_pb2 import Money
from services.chassis.card_data import looks_like_card_number
from services.ledger.domain import commands
from services.ledger.domain.accounts import AccountSpec, AccountType
from services.ledger.domain.entries import EntryDraft, Posting
from services.ledger.domain.ports import IdempotencyKey, TransactionRunner
from services.ledger.domain.usecases import accounts, entries

ACCOUNTS = 200


@dataclass(frozen=True)
class Rate:
    """How many entries were committed in how long, and the CPU this process spent on them."""

    entries: int
    seconds: float
    cpu_seconds: float = 0.0  # process CPU (client, server and use cases share the process)

    @property
    def per_second(self) -> float:
        return self.entries / self.seconds

    @property
    def cpu_ms_per_entry(self) -> float:
        """Load-independent-ish: what one entry costs in Python, whatever the wall clock."""
        return 1000 * self.cpu_seconds / self.entries if self.entries else float("nan")


def request_id() -> str:
    # The chassis card-number guard rejects a few random UUIDs; the bench must not count those.
    while True:
        candidate = str(uuid.uuid4())
        if not looks_like_card_number(candidate):
            return candidate


async def drive(
    operation: Callable[[random.Random], Awaitable[int]], concurrency: int, seconds: float
) -> Rate:
    """Run `operation` from `concurrency` loops for `seconds`; count the entries it reports."""
    deadline = time.perf_counter() + seconds
    counts = [0] * concurrency

    async def loop(index: int) -> None:
        rng = random.Random(index)  # noqa: S311 - workload shape, not security
        while time.perf_counter() < deadline:
            counts[index] += await operation(rng)

    start = time.perf_counter()
    cpu = time.process_time()
    await asyncio.gather(*(loop(i) for i in range(concurrency)))
    return Rate(sum(counts), time.perf_counter() - start, time.process_time() - cpu)


def _pair(rng: random.Random) -> tuple[str, str]:
    a, b = rng.sample(range(ACCOUNTS), 2)
    return f"a{a}", f"a{b}"


class GrpcWorkload:
    """Entries posted through the chassis server: auth, validation, the servicer, PostgreSQL."""

    def __init__(self, channel: grpc.aio.Channel, tenant: str, secret: str) -> None:
        self._stub = rpc.LedgerServiceStub(channel)
        self._parent = f"tenants/{tenant}"
        now = int(time.time())
        claims = {
            "sub": "bench",
            "tenant": tenant,
            "roles": ["tenant_admin"],
            "iss": "commerce-mesh",
            "aud": "commerce-mesh",
            "iat": now,
            "exp": now + 86_400,
        }
        self._metadata = (("authorization", f"Bearer {jwt.encode(claims, secret)}"),)

    async def open_accounts(self) -> None:
        for i in range(ACCOUNTS):
            await self._stub.CreateAccount(
                pb.CreateAccountRequest(
                    parent=self._parent,
                    account_id=f"a{i}",
                    account=res.Account(
                        code=f"A{i}",
                        display_name=f"a{i}",
                        currency_code="USD",
                        type=res.ACCOUNT_TYPE_ASSET,
                    ),
                    request_id=request_id(),
                ),
                metadata=self._metadata,
            )

    def _entry(self, rng: random.Random) -> pb.CreateJournalEntryRequest:
        debit, credit = _pair(rng)
        amount = rng.randint(1, 10_000)
        return pb.CreateJournalEntryRequest(
            parent=self._parent,
            journal_entry=res.JournalEntry(
                postings=[
                    res.Posting(
                        account=f"{self._parent}/accounts/{debit}",
                        amount=Money(currency_code="USD", amount_minor=amount),
                    ),
                    res.Posting(
                        account=f"{self._parent}/accounts/{credit}",
                        amount=Money(currency_code="USD", amount_minor=-amount),
                    ),
                ]
            ),
            request_id=request_id(),
        )

    async def single(self, rng: random.Random) -> int:
        await self._stub.CreateJournalEntry(self._entry(rng), metadata=self._metadata)
        return 1

    def batch(self, size: int) -> Callable[[random.Random], Awaitable[int]]:
        async def operation(rng: random.Random) -> int:
            request = pb.BatchCreateJournalEntriesRequest(
                parent=self._parent,
                requests=[self._entry(rng) for _ in range(size)],
                request_id=request_id(),
            )
            reply = await self._stub.BatchCreateJournalEntries(request, metadata=self._metadata)
            return len(reply.journal_entries)

        return operation


class CoreWorkload:
    """The same entries through the use cases and PostgreSQL only (no gRPC, no validation)."""

    def __init__(self, runner: TransactionRunner, tenant: str) -> None:
        self._runner = runner
        self._tenant = tenant

    async def open_accounts(self) -> None:
        for i in range(ACCOUNTS):
            command = commands.OpenAccount(
                _key(), f"a{i}", AccountSpec(f"A{i}", f"a{i}", "USD", AccountType.ASSET)
            )
            await self._runner.run(self._tenant, partial(accounts.open_account, command=command))

    async def _post(self, rng: random.Random, size: int) -> int:
        items = []
        for _ in range(size):
            debit, credit = _pair(rng)
            amount = rng.randint(1, 10_000)
            draft = EntryDraft("", (Posting(debit, "USD", amount), Posting(credit, "USD", -amount)))
            items.append(commands.EntryRequest(draft, _key() if size > 1 else None))
        command = commands.PostEntries(_key(), tuple(items), batch=size > 1)
        posted = await self._runner.run(
            self._tenant, lambda uow: entries.post_entries(uow, command)
        )
        return len(posted)

    async def single(self, rng: random.Random) -> int:
        return await self._post(rng, 1)

    def batch(self, size: int) -> Callable[[random.Random], Awaitable[int]]:
        async def operation(rng: random.Random) -> int:
            return await self._post(rng, size)

        return operation


def _key() -> IdempotencyKey:
    return IdempotencyKey(str(uuid.uuid4()), "bench", uuid.uuid4().bytes * 2)
