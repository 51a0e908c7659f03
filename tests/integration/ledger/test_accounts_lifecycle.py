"""Accounts: open, read, list by code across pages, close (once), with their events."""

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from commerce.ledger.v1 import ledger_service_pb2 as pb
from commerce.ledger.v1 import resources_pb2 as res

pytestmark = pytest.mark.integration


async def test_an_opened_account_reads_back_with_its_definition(ledger):
    opened = await ledger.open(
        "wallet", res.ACCOUNT_TYPE_LIABILITY, debits_must_not_exceed_credits=True
    )
    got = (await ledger.call("GetAccount", pb.GetAccountRequest(name=opened.name))).account
    assert got == opened
    assert (got.state, got.currency_code, got.etag) == (res.ACCOUNT_STATE_OPEN, "USD", "v1")
    assert got.debits_must_not_exceed_credits


async def test_accounts_list_by_code_across_pages_and_by_state(ledger):
    for account_id in ("c", "a", "d", "b"):
        await ledger.open(account_id)
    await ledger.call(
        "CloseAccount",
        pb.CloseAccountRequest(name=ledger.account("d"), request_id=ledger.new_request_id()),
    )
    codes, token = [], ""
    while True:
        page = await ledger.call(
            "ListAccounts",
            pb.ListAccountsRequest(parent=ledger.parent, page_size=3, page_token=token),
        )
        codes += [a.code for a in page.accounts]
        token = page.next_page_token
        if not token:
            break
    assert codes == ["A", "B", "C", "D"]
    open_only = await ledger.call(
        "ListAccounts",
        pb.ListAccountsRequest(parent=ledger.parent, state=res.ACCOUNT_STATE_OPEN),
    )
    assert [a.code for a in open_only.accounts] == ["A", "B", "C"]


async def test_closing_is_final_conditional_on_the_etag_and_announced(ledger, ledger_database):
    opened = await ledger.open("spare")
    closed = (
        await ledger.call(
            "CloseAccount",
            pb.CloseAccountRequest(
                name=opened.name, etag=opened.etag, request_id=ledger.new_request_id()
            ),
        )
    ).account
    assert closed.state == res.ACCOUNT_STATE_CLOSED
    assert closed.HasField("close_time")
    again = (
        await ledger.call(
            "CloseAccount",
            pb.CloseAccountRequest(name=opened.name, request_id=ledger.new_request_id()),
        )
    ).account
    assert again == closed  # closing a closed account returns it unchanged
    async with ledger_database.transaction() as session:
        kinds = (
            await session.execute(
                text("SELECT type FROM outbox WHERE subject = :s ORDER BY position"),
                {"s": opened.name},
            )
        ).scalars()
        assert list(kinds) == [
            "commerce.ledger.v1.AccountOpened",
            "commerce.ledger.v1.AccountClosed",
        ]


async def test_an_unknown_account_is_not_found_on_every_read(ledger):
    missing = ledger.account("missing")
    for method, request in (
        ("GetAccount", pb.GetAccountRequest(name=missing)),
        ("GetAccountBalance", pb.GetAccountBalanceRequest(account=missing)),
        ("GetAccountStatement", pb.GetAccountStatementRequest(account=missing)),
        ("ListAccountStatementLines", pb.ListAccountStatementLinesRequest(account=missing)),
    ):
        status, info = await ledger.fails(method, request)
        assert (status.name, info.reason, info.metadata["resource"]) == (
            "NOT_FOUND",
            "ACCOUNT_NOT_FOUND",
            missing,
        ), method


async def test_a_transaction_registers_only_its_own_tenant(ledger, ledger_database):
    await ledger.open("cash")
    async with ledger_database.transaction() as session:
        tenants = (await session.execute(text("SELECT tenant_id FROM tenants"))).scalars()
        assert ledger.tenant in list(tenants)
    with pytest.raises(DBAPIError, match="row-level security"):
        async with ledger_database.tenant_transaction(ledger.tenant) as session:
            await session.execute(text("INSERT INTO tenants (tenant_id) VALUES ('intruder')"))
