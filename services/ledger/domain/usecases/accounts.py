"""Opening and closing accounts."""

from __future__ import annotations

from services.ledger.domain import errors
from services.ledger.domain.accounts import Account
from services.ledger.domain.commands import CloseAccount, OpenAccount, new_id
from services.ledger.domain.events import AccountClosed, AccountOpened
from services.ledger.domain.names import account_name
from services.ledger.domain.ports import AddOutcome, UnitOfWork
from services.ledger.domain.usecases.idempotency import claim


async def open_account(uow: UnitOfWork, command: OpenAccount) -> Account:
    account_id = command.account_id or new_id()
    replay = await claim(uow, command.key, {"account": account_id})
    if replay is not None:
        return await require(uow, str(replay["account"]))
    await uow.register_tenant()
    now = uow.now()
    account = Account(uow.tenant, account_id, command.spec, create_time=now, update_time=now)
    outcome = await uow.accounts.add(account)
    if outcome is AddOutcome.ID_TAKEN:
        raise errors.account_already_exists(account.name)
    if outcome is AddOutcome.CODE_TAKEN:
        raise errors.account_code_taken(command.spec.code)
    await uow.outbox.stage([AccountOpened(account)])
    return account


async def close_account(uow: UnitOfWork, command: CloseAccount) -> Account:
    replay = await claim(uow, command.key, {"account": command.account_id})
    if replay is not None:
        return await require(uow, command.account_id)
    locked = await uow.accounts.lock([command.account_id])
    account = locked.get(command.account_id)
    if account is None:
        raise errors.account_not_found(account_name(uow.tenant, command.account_id))
    if account.close(uow.now(), command.etag):
        await uow.accounts.save([account])
        await uow.outbox.stage([AccountClosed(account)])
    return account


async def require(uow: UnitOfWork, account_id: str) -> Account:
    account = await uow.accounts.get(account_id)
    if account is None:
        raise errors.account_not_found(account_name(uow.tenant, account_id))
    return account
