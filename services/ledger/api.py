"""The LedgerService servicer: proto → command, run the use case, domain → proto. Nothing else."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from commerce.ledger.v1 import ledger_service_pb2 as pb
from commerce.ledger.v1 import ledger_service_pb2_grpc as rpc
from services.chassis import context as request_context
from services.chassis import pages
from services.ledger import messages
from services.ledger.domain import commands, errors
from services.ledger.domain.names import parse
from services.ledger.domain.ports import EntryFilter, TransactionRunner
from services.ledger.domain.usecases import accounts, entries, holds, reads
from services.ledger.group_commit import GroupCommitter
from services.ledger.metrics import ChainMetrics
from services.ledger.tracing import current_trace

Context = Any  # grpc.aio.ServicerContext; the interceptor owns status handling


def _tenant() -> str:
    tenant = request_context.current().tenant
    if tenant is None:  # the interceptor always derives one from the resource names
        raise LookupError("no tenant for this call")
    return tenant


def _id(name: str, collection: str) -> str:
    return parse(name, collection)[1]


def _stamp(message: Any, field: str) -> str:
    return getattr(message, field).ToJsonString() if message.HasField(field) else ""


class LedgerApi(rpc.LedgerServiceServicer):
    """Every RPC of commerce.ledger.v1.LedgerService."""

    def __init__(
        self, runner: TransactionRunner, chain_metrics: ChainMetrics | None = None
    ) -> None:
        self._runner = runner
        self._chain_metrics = chain_metrics or ChainMetrics()
        self._entries = GroupCommitter(runner)

    # --- accounts -------------------------------------------------------------------------

    async def CreateAccount(
        self, request: pb.CreateAccountRequest, _context: Context
    ) -> pb.CreateAccountResponse:
        command = commands.OpenAccount(
            key=messages.idempotency_key("CreateAccount", request),
            account_id=request.account_id,
            spec=messages.account_spec(request.account),
        )
        account = await self._runner.run(_tenant(), lambda uow: accounts.open_account(uow, command))
        return pb.CreateAccountResponse(account=messages.account(account))

    async def GetAccount(
        self, request: pb.GetAccountRequest, _context: Context
    ) -> pb.GetAccountResponse:
        account_id = _id(request.name, "accounts")
        account = await self._runner.run(_tenant(), lambda uow: reads.account(uow, account_id))
        return pb.GetAccountResponse(account=messages.account(account))

    async def ListAccounts(
        self, request: pb.ListAccountsRequest, _context: Context
    ) -> pb.ListAccountsResponse:
        params = {"m": "ListAccounts", "parent": request.parent, "state": request.state}
        cursor = pages.decode(request.page_token, params) or {"code": ""}
        size = pages.page_size(request.page_size)
        state = messages.account_state(request.state)
        found = await self._runner.run(
            _tenant(), lambda uow: uow.accounts.page(str(cursor.get("code", "")), size + 1, state)
        )
        token = (
            pages.encode(params, {"code": found[size - 1].spec.code}) if len(found) > size else ""
        )
        return pb.ListAccountsResponse(
            accounts=[messages.account(a) for a in found[:size]], next_page_token=token
        )

    async def CloseAccount(
        self, request: pb.CloseAccountRequest, _context: Context
    ) -> pb.CloseAccountResponse:
        command = commands.CloseAccount(
            key=messages.idempotency_key("CloseAccount", request),
            account_id=_id(request.name, "accounts"),
            etag=request.etag,
        )
        account = await self._runner.run(
            _tenant(), lambda uow: accounts.close_account(uow, command)
        )
        return pb.CloseAccountResponse(account=messages.account(account))

    # --- journal entries ------------------------------------------------------------------

    async def CreateJournalEntry(
        self, request: pb.CreateJournalEntryRequest, _context: Context
    ) -> pb.CreateJournalEntryResponse:
        command = commands.PostEntries(
            key=messages.idempotency_key("CreateJournalEntry", request),
            items=(commands.EntryRequest(messages.entry_draft(request, current_trace())),),
        )
        entry = await self._entries.post(_tenant(), command)
        return pb.CreateJournalEntryResponse(journal_entry=messages.answered_journal_entry(entry))

    async def BatchCreateJournalEntries(
        self, request: pb.BatchCreateJournalEntriesRequest, _context: Context
    ) -> pb.BatchCreateJournalEntriesResponse:
        trace = current_trace()
        command = commands.PostEntries(
            key=messages.idempotency_key("BatchCreateJournalEntries", request),
            items=tuple(
                commands.EntryRequest(
                    messages.entry_draft(item, trace),
                    messages.idempotency_key("CreateJournalEntry", item),
                )
                for item in request.requests
            ),
            batch=True,
        )
        posted = await self._runner.run(_tenant(), lambda uow: entries.post_entries(uow, command))
        return pb.BatchCreateJournalEntriesResponse(
            journal_entries=[messages.answered_journal_entry(e) for e in posted]
        )

    async def GetJournalEntry(
        self, request: pb.GetJournalEntryRequest, _context: Context
    ) -> pb.GetJournalEntryResponse:
        entry_id = _id(request.name, "entries")
        entry = await self._runner.run(_tenant(), lambda uow: reads.entry(uow, entry_id))
        return pb.GetJournalEntryResponse(journal_entry=messages.journal_entry(entry))

    async def ListJournalEntries(
        self, request: pb.ListJournalEntriesRequest, _context: Context
    ) -> pb.ListJournalEntriesResponse:
        params = {
            "m": "ListJournalEntries",
            "parent": request.parent,
            "account": request.account,
            "start": _stamp(request, "start_time"),
            "end": _stamp(request, "end_time"),
            "metadata": dict(sorted(request.metadata.items())),
        }
        cursor = pages.decode(request.page_token, params) or {"seq": 0}
        size = pages.page_size(request.page_size)
        where = EntryFilter(
            account_id=_id(request.account, "accounts") if request.account else None,
            start_time=messages.time_or_none(request, "start_time"),
            end_time=messages.time_or_none(request, "end_time"),
            metadata=dict(request.metadata) or None,
        )
        try:
            after = int(cursor.get("seq", 0))
        except (TypeError, ValueError):
            raise errors.invalid_page_token() from None
        found = await self._runner.run(
            _tenant(), lambda uow: uow.journal.page(after, size + 1, where)
        )
        token = (
            pages.encode(params, {"seq": found[size - 1].link.sequence})
            if len(found) > size
            else ""
        )
        return pb.ListJournalEntriesResponse(
            journal_entries=[messages.journal_entry(e) for e in found[:size]],
            next_page_token=token,
        )

    async def ReverseJournalEntry(
        self, request: pb.ReverseJournalEntryRequest, _context: Context
    ) -> pb.ReverseJournalEntryResponse:
        command = commands.ReverseEntry(
            key=messages.idempotency_key("ReverseJournalEntry", request),
            entry_id=_id(request.name, "entries"),
            reversal_id=request.entry_id,
            description=request.description,
            metadata=dict(request.metadata),
            trace=current_trace(),
        )
        entry = await self._runner.run(_tenant(), lambda uow: entries.reverse_entry(uow, command))
        return pb.ReverseJournalEntryResponse(journal_entry=messages.answered_journal_entry(entry))

    # --- holds ----------------------------------------------------------------------------

    async def CreateHold(
        self, request: pb.CreateHoldRequest, _context: Context
    ) -> pb.CreateHoldResponse:
        hold = request.hold
        command = commands.CreateHold(
            key=messages.idempotency_key("CreateHold", request),
            hold_id=request.hold_id,
            debit_account_id=_id(hold.debit_account, "accounts"),
            credit_account_id=_id(hold.credit_account, "accounts"),
            currency=hold.amount.currency_code,
            amount=hold.amount.amount_minor,
            expire_time=messages.time_or_none(hold, "expire_time"),
            ttl=hold.ttl.ToTimedelta() if hold.HasField("ttl") else None,
            description=hold.description,
            metadata=dict(hold.metadata),
            trace=current_trace(),
        )
        created = await self._runner.run(_tenant(), lambda uow: holds.create_hold(uow, command))
        return pb.CreateHoldResponse(hold=messages.hold(created))

    async def GetHold(self, request: pb.GetHoldRequest, _context: Context) -> pb.GetHoldResponse:
        hold_id = _id(request.name, "holds")
        found = await self._runner.run(_tenant(), lambda uow: holds.require(uow, hold_id))
        return pb.GetHoldResponse(hold=messages.hold(found))

    async def ListHolds(
        self, request: pb.ListHoldsRequest, _context: Context
    ) -> pb.ListHoldsResponse:
        params = {
            "m": "ListHolds",
            "parent": request.parent,
            "account": request.account,
            "state": request.state,
        }
        cursor = pages.decode(request.page_token, params)
        before = _hold_cursor(cursor)
        size = pages.page_size(request.page_size)
        account_id = _id(request.account, "accounts") if request.account else None
        state = messages.hold_state(request.state)
        found = await self._runner.run(
            _tenant(), lambda uow: uow.holds.page(before, size + 1, account_id, state)
        )
        token = ""
        if len(found) > size:
            last = found[size - 1]
            token = pages.encode(params, {"t": last.create_time.isoformat(), "id": last.hold_id})
        return pb.ListHoldsResponse(
            holds=[messages.hold(h) for h in found[:size]], next_page_token=token
        )

    async def PostHold(self, request: pb.PostHoldRequest, _context: Context) -> pb.PostHoldResponse:
        has_amount = request.HasField("amount")
        command = commands.PostHold(
            key=messages.idempotency_key("PostHold", request),
            hold_id=_id(request.name, "holds"),
            amount=request.amount.amount_minor if has_amount else None,
            currency=request.amount.currency_code if has_amount else None,
            entry_id=request.entry_id,
            description=request.description,
            trace=current_trace(),
        )
        hold, entry = await self._runner.run(_tenant(), lambda uow: holds.post_hold(uow, command))
        return pb.PostHoldResponse(
            hold=messages.hold(hold), journal_entry=messages.answered_journal_entry(entry)
        )

    async def VoidHold(self, request: pb.VoidHoldRequest, _context: Context) -> pb.VoidHoldResponse:
        command = commands.VoidHold(
            key=messages.idempotency_key("VoidHold", request),
            hold_id=_id(request.name, "holds"),
            reason=request.reason,
        )
        voided = await self._runner.run(_tenant(), lambda uow: holds.void_hold(uow, command))
        return pb.VoidHoldResponse(hold=messages.hold(voided))

    # --- balances, statements, chain ------------------------------------------------------

    async def GetAccountBalance(
        self, request: pb.GetAccountBalanceRequest, _context: Context
    ) -> pb.GetAccountBalanceResponse:
        account_id = _id(request.account, "accounts")
        as_of = messages.time_or_none(request, "as_of")
        found = await self._runner.run(_tenant(), lambda uow: reads.balance(uow, account_id, as_of))
        return pb.GetAccountBalanceResponse(balance=messages.account_balance(found))

    async def GetAccountStatement(
        self, request: pb.GetAccountStatementRequest, _context: Context
    ) -> pb.GetAccountStatementResponse:
        account_id = _id(request.account, "accounts")
        start = messages.time_or_none(request, "start_time")
        end = messages.time_or_none(request, "end_time")
        found = await self._runner.run(
            _tenant(), lambda uow: reads.statement(uow, account_id, start, end)
        )
        return pb.GetAccountStatementResponse(statement=messages.statement(found))

    async def ListAccountStatementLines(
        self, request: pb.ListAccountStatementLinesRequest, _context: Context
    ) -> pb.ListAccountStatementLinesResponse:
        params = {
            "m": "ListAccountStatementLines",
            "account": request.account,
            "start": _stamp(request, "start_time"),
            "end": _stamp(request, "end_time"),
        }
        cursor = pages.decode(request.page_token, params)
        account_id = _id(request.account, "accounts")
        start = messages.time_or_none(request, "start_time")
        end, after = _lines_cursor(cursor, messages.time_or_none(request, "end_time"))
        size = pages.page_size(request.page_size)
        page = await self._runner.run(
            _tenant(),
            lambda uow: reads.statement_lines(
                uow, account_id, start=start, end=end, after=after, limit=size + 1
            ),
        )
        opening, lines = messages.statement_lines(page.account, page.opening, page.lines[:size])
        token = ""
        if len(page.lines) > size:
            last = page.lines[size - 1]
            token = pages.encode(
                params,
                {"end": end.isoformat(), "seq": last.sequence, "idx": last.posting_index},
            )
        return pb.ListAccountStatementLinesResponse(
            lines=lines, page_opening_balance=opening, next_page_token=token
        )

    async def VerifyChain(
        self, request: pb.VerifyChainRequest, _context: Context
    ) -> pb.VerifyChainResponse:
        tenant = _tenant()
        start, end = request.start_sequence, request.end_sequence
        result = await self._runner.run(tenant, lambda uow: reads.verify_chain(uow, start, end))
        self._chain_metrics.verified(tenant, result)
        return messages.verification(tenant, result)


def _hold_cursor(cursor: dict[str, Any] | None) -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    try:
        return datetime.fromisoformat(str(cursor["t"])), str(cursor["id"])
    except (KeyError, ValueError):
        raise errors.invalid_page_token() from None


def _lines_cursor(
    cursor: dict[str, Any] | None, end: datetime | None
) -> tuple[datetime, tuple[int, int]]:
    if cursor is None:
        return end or datetime.now(UTC), (0, 0)
    try:
        return datetime.fromisoformat(str(cursor["end"])), (int(cursor["seq"]), int(cursor["idx"]))
    except (KeyError, ValueError, TypeError):
        raise errors.invalid_page_token() from None
