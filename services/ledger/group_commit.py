"""Group commit for single-entry requests: concurrent CreateJournalEntry calls share a transaction.

Every entry of a tenant extends one hash chain, so a tenant's entry transactions commit one
after another anyway (the chain head is locked from the append to the commit). Rather than
queue on that lock, requests that arrive while one of the tenant's entry transactions is in
flight wait here, and when it ends they go together in the next transaction
(`entries.post_entry_group`): one claim, one account lock, one insert, one chain append, one
outbox write and one commit for all of them. A request that arrives when nothing is in flight
runs at once, alone, in the ordinary path — one client sees no extra latency.

Grouping never changes an answer: a request that would not simply succeed in the group (a
replay, a reused id, a failed check, a taken entry id) is taken out and run alone, and when
the group transaction fails for any other reason every request of it runs alone. See ADR 0016.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from dataclasses import dataclass, field

from services.ledger.domain.commands import PostEntries
from services.ledger.domain.entries import JournalEntry
from services.ledger.domain.ports import TransactionRunner
from services.ledger.domain.usecases import entries

log = logging.getLogger(__name__)

MAX_GROUP = 100  # the entries a batch request may carry


@dataclass
class _Waiting:
    command: PostEntries
    result: asyncio.Future[JournalEntry] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    context: contextvars.Context = field(default_factory=contextvars.copy_context)


@dataclass
class GroupStats:
    """How requests went (for tests and the benchmark)."""

    alone: int = 0  # requests run in the ordinary path
    grouped: int = 0  # requests committed as part of a group
    groups: int = 0  # group transactions committed


class GroupCommitter:
    """Posts single-entry commands, grouping the ones that arrive while a tenant is busy."""

    def __init__(self, runner: TransactionRunner, *, max_group: int = MAX_GROUP) -> None:
        self._runner = runner
        self._max_group = max_group
        self._busy: set[str] = set()
        self._waiting: dict[str, list[_Waiting]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats = GroupStats()

    async def post(self, tenant: str, command: PostEntries) -> JournalEntry:
        """Post one CreateJournalEntry command; the answer is the ordinary path's answer."""
        if len(command.items) != 1 or command.batch:
            raise ValueError("only single-entry commands are grouped")
        if tenant not in self._busy:
            self._busy.add(tenant)
            try:
                return await self._alone(tenant, command)
            finally:
                self._next(tenant)
        waiting = _Waiting(command)
        self._waiting.setdefault(tenant, []).append(waiting)
        return await waiting.result

    async def _alone(self, tenant: str, command: PostEntries) -> JournalEntry:
        self.stats.alone += 1
        (entry,) = await self._runner.run(tenant, lambda uow: entries.post_entries(uow, command))
        return entry

    def _next(self, tenant: str) -> None:
        """The tenant's transaction ended: start the next group, or mark the tenant idle."""
        queue = self._waiting.get(tenant, [])
        live = [w for w in queue if not w.result.done()]  # callers gone: never posted
        group, rest = live[: self._max_group], live[self._max_group :]
        if rest:
            self._waiting[tenant] = rest
        else:
            self._waiting.pop(tenant, None)
        if not group:
            self._busy.discard(tenant)
            return
        # A fresh context: the group belongs to no one request's span; each entry still
        # records its own request's trace and span, and its event carries that trace.
        task = asyncio.get_running_loop().create_task(
            self._run_group(tenant, group), context=contextvars.Context()
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_group(self, tenant: str, group: list[_Waiting]) -> None:
        try:
            await self._settle(tenant, group)
        finally:
            for waiting in group:  # only when the group task itself was cancelled (shutdown)
                if not waiting.result.done():
                    waiting.result.cancel()
            self._next(tenant)

    async def _settle(self, tenant: str, group: list[_Waiting]) -> None:
        alone: list[_Waiting] = []
        pending = _distinct(group, alone)
        while len(pending) > 1:
            pending = await self._try_group(tenant, pending, alone)
        alone.extend(pending)
        loop = asyncio.get_running_loop()
        for waiting in alone:
            if not waiting.result.done():  # in its caller's context, as if never queued
                await loop.create_task(self._settle_alone(tenant, waiting), context=waiting.context)

    async def _try_group(
        self, tenant: str, pending: list[_Waiting], alone: list[_Waiting]
    ) -> list[_Waiting]:
        """Commit `pending` as one group; return the requests to group again (if any)."""
        commands = [w.command for w in pending]
        try:
            posted = await self._runner.run(
                tenant, lambda uow: entries.post_entry_group(uow, commands)
            )
        except entries.RunAlone as signal:
            alone.extend(pending[i] for i in sorted(signal.indexes))
            return [w for i, w in enumerate(pending) if i not in signal.indexes]
        except Exception:  # noqa: BLE001 - whatever it was, each request runs alone
            log.info("a group of %d entries failed; posting them one by one", len(pending))
            alone.extend(pending)
            return []
        self.stats.groups += 1
        self.stats.grouped += len(pending)
        for waiting, entry in zip(pending, posted, strict=True):
            if not waiting.result.done():
                waiting.result.set_result(entry)
        return []

    async def _settle_alone(self, tenant: str, waiting: _Waiting) -> None:
        try:
            entry = await self._alone(tenant, waiting.command)
        except Exception as error:  # noqa: BLE001 - handed to the caller, who raises it
            if not waiting.result.done():
                waiting.result.set_exception(error)
        else:
            if not waiting.result.done():
                waiting.result.set_result(entry)


def _distinct(group: list[_Waiting], alone: list[_Waiting]) -> list[_Waiting]:
    """The requests with a request id and entry id not seen earlier in the group; the others
    go to `alone` (they run after the group, and see what it committed)."""
    request_ids: set[str] = set()
    entry_ids: set[str] = set()
    distinct: list[_Waiting] = []
    for waiting in group:
        request_id = waiting.command.key.request_id.lower()
        entry_id = waiting.command.items[0].draft.entry_id
        if request_id in request_ids or (entry_id and entry_id in entry_ids):
            alone.append(waiting)
            continue
        request_ids.add(request_id)
        if entry_id:
            entry_ids.add(entry_id)
        distinct.append(waiting)
    return distinct
