"""Posting entries (one or a batch, all or none) and reversing them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from services.chassis.errors import DomainError
from services.ledger.domain import chain, errors
from services.ledger.domain.accounts import Account
from services.ledger.domain.commands import PostEntries, ReverseEntry, new_id
from services.ledger.domain.entries import EntryDraft, JournalEntry, apply_entry, reversal_of
from services.ledger.domain.events import EntryPosted
from services.ledger.domain.names import entry_name
from services.ledger.domain.ports import UnitOfWork
from services.ledger.domain.usecases.idempotency import claim, claim_each


async def post_entries(uow: UnitOfWork, command: PostEntries) -> list[JournalEntry]:
    drafts = [
        item.draft if item.draft.entry_id else item.draft.with_id(new_id())
        for item in command.items
    ]
    ids = [d.entry_id for d in drafts]
    replay = await claim(uow, command.key, {"entries": ids})
    if replay is not None:
        return await uow.journal.get_many([str(i) for i in replay["entries"]])
    keyed = [
        (item.key, {"entries": [d.entry_id]})
        for item, d in zip(command.items, drafts, strict=True)
        if item.key
    ]
    await claim_each(uow, [k for k, _ in keyed], [r for _, r in keyed])
    accounts = await uow.accounts.lock(set().union(*(d.account_ids() for d in drafts)))
    for index, draft in enumerate(drafts):
        try:
            apply_entry(uow.tenant, accounts, draft)
        except DomainError as error:
            if command.batch:
                error.metadata["index"] = str(index)
            raise
    try:
        return await commit_entries(uow, drafts, accounts)
    except DomainError as error:
        taken = error.metadata.get("entry", "").rsplit("/", 1)[-1]
        if command.batch and taken in ids:
            error.metadata["index"] = str(ids.index(taken))
        raise


class RunAlone(Exception):
    """Some requests of a group must run on their own: the group's transaction rolls back.

    Raised for a request whose id was used before (a replay or a reuse), whose entry fails
    the domain checks, or whose entry id is taken: run alone, in the ordinary path, it gets
    exactly the answer it would have had without grouping.
    """

    def __init__(self, indexes: set[int]) -> None:
        super().__init__(f"requests {sorted(indexes)} must run alone")
        self.indexes = indexes


async def post_entry_group(uow: UnitOfWork, group: Sequence[PostEntries]) -> list[JournalEntry]:
    """Independent single-entry requests in one transaction (group commit, ADR 0016).

    Each command is a CreateJournalEntry (one item, no batch): the group claims all request
    ids in one statement, locks the union of the accounts, checks every entry in order, then
    records, chains and announces all of them in the statements a batch uses. Unlike a batch,
    the requests are not all-or-none: any request that would not simply succeed here makes
    the transaction roll back with RunAlone, naming it, and the caller runs the rest again.
    The caller guarantees distinct request ids and distinct client-chosen entry ids.
    """
    drafts = [
        c.items[0].draft if c.items[0].draft.entry_id else c.items[0].draft.with_id(new_id())
        for c in group
    ]
    stored = await uow.idempotency.claim(
        [c.key for c in group], [{"entries": [d.entry_id]} for d in drafts]
    )
    alone = {index for index, found in enumerate(stored) if found is not None}
    if alone:
        raise RunAlone(alone)
    accounts = await uow.accounts.lock(set().union(*(d.account_ids() for d in drafts)))
    for index, draft in enumerate(drafts):
        try:
            apply_entry(uow.tenant, accounts, draft)  # leaves the accounts unchanged if it fails
        except DomainError:
            alone.add(index)
    if alone:
        raise RunAlone(alone)
    try:
        return await commit_entries(uow, drafts, accounts)
    except DomainError as error:
        taken = error.metadata.get("entry", "").rsplit("/", 1)[-1]
        ids = [d.entry_id for d in drafts]
        if taken in ids:
            raise RunAlone({ids.index(taken)}) from error
        raise


async def reverse_entry(uow: UnitOfWork, command: ReverseEntry) -> JournalEntry:
    reversal_id = command.reversal_id or new_id()
    replay = await claim(uow, command.key, {"entries": [reversal_id]})
    if replay is not None:
        (entry,) = await uow.journal.get_many([str(i) for i in replay["entries"]])
        return entry
    original = (
        await uow.journal.get(command.entry_id)
        if await uow.journal.lock(command.entry_id)
        else None
    )
    if original is None:
        raise errors.entry_not_found(entry_name(uow.tenant, command.entry_id))
    draft = reversal_of(original, reversal_id, command.description, command.metadata, command.trace)
    accounts = await uow.accounts.lock(draft.account_ids())
    apply_entry(uow.tenant, accounts, draft)
    (entry,) = await commit_entries(uow, [draft], accounts)
    return entry


async def commit_entries(
    uow: UnitOfWork, drafts: Sequence[EntryDraft], accounts: Mapping[str, Account]
) -> list[JournalEntry]:
    """Record applied drafts, chain them (the last write), and stage their events."""
    touched = set().union(*(d.account_ids() for d in drafts))
    taken = await uow.journal.record(drafts, [accounts[a] for a in sorted(touched)])
    if taken is not None:
        raise errors.entry_already_exists(entry_name(uow.tenant, taken))
    contents = [chain.content(uow.tenant, d) for d in drafts]
    links = await uow.chain.append(drafts, contents)
    entries = [JournalEntry(uow.tenant, d, link) for d, link in zip(drafts, links, strict=True)]
    await uow.outbox.stage([EntryPosted(e) for e in entries])
    return entries
