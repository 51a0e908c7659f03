"""A real ledger for the tests: migrated PostgreSQL, the real servicer on a chassis server,
JWTs, and a tenant-bound client with shorthand for common calls."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import jwt
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from commerce.ledger.v1 import ledger_service_pb2 as pb
from commerce.ledger.v1 import ledger_service_pb2_grpc as rpc
from commerce.ledger.v1 import resources_pb2 as res
from commerce.type.v1.money_pb2 import Money
from services.chassis.config import AuthSettings, ServerSettings
from services.chassis.db.database import Database
from services.chassis.db.migrations import upgrade
from services.chassis.server import RunningServer, start_server
from services.ledger.bootstrap import MIGRATIONS, registration
from services.ledger.config import ERROR_DOMAIN
from services.ledger.storage.unit_of_work import SqlTransactionRunner

SECRET = "ledger-integration-test-hmac-secret-0123456789"


def token(tenant: str | None, *roles: str) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "tester",
        "roles": list(roles or ("tenant_admin",)),
        "iss": "commerce-mesh",
        "aud": "commerce-mesh",
        "iat": now,
        "exp": now + 3600,
    }
    if tenant is not None:
        claims["tenant"] = tenant
    return jwt.encode(claims, SECRET, algorithm="HS256")


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    infos = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            infos.append(info)
    assert len(infos) == 1
    assert infos[0].domain == ERROR_DOMAIN
    return infos[0]


def new_request_id() -> str:
    """A fresh UUID request id."""
    return str(uuid.uuid4())


def usd(amount: int, currency: str = "USD") -> Money:
    return Money(currency_code=currency, amount_minor=amount)


class LedgerClient:
    """The generated stub, bound to one tenant's token, with shorthand for common calls."""

    def __init__(self, stub: rpc.LedgerServiceStub, tenant: str) -> None:
        self.stub = stub
        self.tenant = tenant
        self.parent = f"tenants/{tenant}"
        self.metadata = (("authorization", f"Bearer {token(tenant)}"),)

    usd = staticmethod(usd)
    error_info = staticmethod(error_info)
    new_request_id = staticmethod(new_request_id)

    def account(self, account_id: str) -> str:
        return f"{self.parent}/accounts/{account_id}"

    async def call(self, method: str, request: Any) -> Any:
        return await getattr(self.stub, method)(request, metadata=self.metadata)

    async def open(
        self,
        account_id: str,
        kind: res.AccountType.ValueType = res.ACCOUNT_TYPE_ASSET,
        currency: str = "USD",
        **flags: Any,
    ) -> res.Account:
        reply = await self.call(
            "CreateAccount",
            pb.CreateAccountRequest(
                parent=self.parent,
                account_id=account_id,
                account=res.Account(
                    code=account_id.upper(),
                    display_name=account_id,
                    currency_code=currency,
                    type=kind,
                    **flags,
                ),
                request_id=new_request_id(),
            ),
        )
        account: res.Account = reply.account
        return account

    def entry_request(
        self, *legs: tuple[str, int], currency: str = "USD", entry_id: str = "", **fields: Any
    ) -> pb.CreateJournalEntryRequest:
        return pb.CreateJournalEntryRequest(
            parent=self.parent,
            entry_id=entry_id,
            journal_entry=res.JournalEntry(
                postings=[
                    res.Posting(account=self.account(a), amount=usd(amount, currency))
                    for a, amount in legs
                ],
                **fields,
            ),
            request_id=new_request_id(),
        )

    async def post(self, *legs: tuple[str, int], **kwargs: Any) -> res.JournalEntry:
        reply = await self.call("CreateJournalEntry", self.entry_request(*legs, **kwargs))
        entry: res.JournalEntry = reply.journal_entry
        return entry

    async def balance(self, account_id: str, **kwargs: Any) -> res.AccountBalance:
        reply = await self.call(
            "GetAccountBalance",
            pb.GetAccountBalanceRequest(account=self.account(account_id), **kwargs),
        )
        balance: res.AccountBalance = reply.balance
        return balance

    async def fails(
        self, method: str, request: Any
    ) -> tuple[grpc.StatusCode, error_details_pb2.ErrorInfo]:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await self.call(method, request)
        return caught.value.code(), error_info(caught.value)


@pytest.fixture(scope="module")
async def ledger_database(service_database) -> AsyncIterator[Database]:
    await upgrade(service_database.owner_url, MIGRATIONS)
    database = Database.connect(service_database.app_url, pool_size=10, max_overflow=30)
    yield database
    await database.dispose()


@pytest.fixture(scope="module")
async def runner(ledger_database) -> SqlTransactionRunner:
    return SqlTransactionRunner(ledger_database)


@pytest.fixture(scope="module")
async def ledger_server(runner) -> AsyncIterator[RunningServer]:
    settings = ServerSettings(
        port=0, grace_period_seconds=1, auth=AuthSettings(key=SECRET, algorithms=["HS256"])
    )
    running = await start_server(settings, [registration(runner)], error_domain=ERROR_DOMAIN)
    yield running
    await running.stop()


@pytest.fixture(scope="module")
async def stub(ledger_server) -> AsyncIterator[rpc.LedgerServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{ledger_server.port}") as channel:
        yield rpc.LedgerServiceStub(channel)


@pytest.fixture
def ledger(stub) -> LedgerClient:
    """A client of a fresh tenant (tenants never see each other's accounts)."""
    return LedgerClient(stub, f"t{uuid.uuid4().hex[:10]}")
