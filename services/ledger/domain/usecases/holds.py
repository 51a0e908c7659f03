"""Two-phase holds: create (reserve), post (move), void and expire (release)."""

from __future__ import annotations

from services.ledger.domain import errors
from services.ledger.domain.accounts import Account, require_account
from services.ledger.domain.commands import DEFAULT_HOLD_TTL, CreateHold, PostHold, VoidHold, new_id
from services.ledger.domain.entries import JournalEntry, apply_entry
from services.ledger.domain.events import HoldCreated, HoldExpired, HoldPosted, HoldVoided
from services.ledger.domain.holds import Hold
from services.ledger.domain.names import hold_name
from services.ledger.domain.ports import UnitOfWork
from services.ledger.domain.usecases.entries import commit_entries
from services.ledger.domain.usecases.idempotency import claim


async def create_hold(uow: UnitOfWork, command: CreateHold) -> Hold:
    hold_id = command.hold_id or new_id()
    replay = await claim(uow, command.key, {"hold": hold_id})
    if replay is not None:
        return await require(uow, str(replay["hold"]))
    if command.hold_id and await uow.holds.get(hold_id) is not None:
        raise errors.hold_already_exists(hold_name(uow.tenant, hold_id))
    accounts = await uow.accounts.lock([command.debit_account_id, command.credit_account_id])
    debit = require_account(accounts, uow.tenant, command.debit_account_id)
    credit = require_account(accounts, uow.tenant, command.credit_account_id)
    now = uow.now()
    expire_time = command.expire_time or now + (command.ttl or DEFAULT_HOLD_TTL)
    hold = Hold(
        tenant=uow.tenant,
        hold_id=hold_id,
        debit_account_id=debit.account_id,
        credit_account_id=credit.account_id,
        currency=command.currency,
        amount=command.amount,
        expire_time=expire_time,
        create_time=now,
        update_time=now,
        description=command.description,
        metadata=dict(command.metadata),
        trace=command.trace,
    )
    hold.reserve(debit, credit)
    if not await uow.holds.add(hold):
        raise errors.hold_already_exists(hold.name)
    await uow.accounts.save([debit, credit])
    await uow.outbox.stage([HoldCreated(hold)])
    return hold


async def post_hold(uow: UnitOfWork, command: PostHold) -> tuple[Hold, JournalEntry]:
    entry_id = command.entry_id or new_id()
    replay = await claim(uow, command.key, {"hold": command.hold_id, "entry": entry_id})
    if replay is not None:
        hold = await require(uow, command.hold_id)
        (entry,) = await uow.journal.get_many([str(replay["entry"])])
        return hold, entry
    hold = await require(uow, command.hold_id, lock=True)
    if command.currency is not None and command.currency != hold.currency:
        raise errors.currency_mismatch(hold.name, hold.currency, command.currency)
    now = uow.now()
    hold.require_pending(now)
    debit, credit = await _accounts(uow, hold)
    accounts = {debit.account_id: debit, credit.account_id: credit}
    draft = hold.post(
        debit,
        credit,
        command.amount,
        entry_id=entry_id,
        description=command.description,
        now=now,
        trace=command.trace,
    )
    apply_entry(uow.tenant, accounts, draft)
    (entry,) = await commit_entries(uow, [draft], accounts)
    # One clock for "as of" balances: the hold stops being pending when its entry is posted,
    # by the database clock that stamps the entry, not the app server's.
    hold.finalize_time = hold.update_time = entry.link.create_time
    await uow.holds.save(hold)
    await uow.outbox.stage([HoldPosted(hold, entry)])
    return hold, entry


async def void_hold(uow: UnitOfWork, command: VoidHold) -> Hold:
    replay = await claim(uow, command.key, {"hold": command.hold_id})
    if replay is not None:
        return await require(uow, command.hold_id)
    hold = await require(uow, command.hold_id, lock=True)
    now = uow.now()
    hold.require_pending(now)
    debit, credit = await _accounts(uow, hold)
    hold.void(debit, credit, command.reason, now)
    await uow.accounts.save([debit, credit])
    await uow.holds.save(hold)
    await uow.outbox.stage([HoldVoided(hold)])
    return hold


async def expire_holds(uow: UnitOfWork, limit: int = 100) -> list[Hold]:
    """Expire up to `limit` pending holds whose time has come; returns them."""
    now = uow.now()
    due = await uow.holds.due(now, limit)
    if not due:
        return []
    ids = {a for h in due for a in (h.debit_account_id, h.credit_account_id)}
    accounts = await uow.accounts.lock(ids)
    for hold in due:
        hold.expire(accounts[hold.debit_account_id], accounts[hold.credit_account_id], now)
    await uow.accounts.save(accounts.values())
    for hold in due:
        await uow.holds.save(hold)
    await uow.outbox.stage([HoldExpired(hold, now) for hold in due])
    return due


async def require(uow: UnitOfWork, hold_id: str, *, lock: bool = False) -> Hold:
    hold = await uow.holds.get(hold_id, lock=lock)
    if hold is None:
        raise errors.hold_not_found(hold_name(uow.tenant, hold_id))
    return hold


async def _accounts(uow: UnitOfWork, hold: Hold) -> tuple[Account, Account]:
    accounts = await uow.accounts.lock([hold.debit_account_id, hold.credit_account_id])
    return accounts[hold.debit_account_id], accounts[hold.credit_account_id]
