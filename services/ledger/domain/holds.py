"""Two-phase holds: reserve funds, then post (fully or partly), void, or expire — once."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from services.ledger.domain import errors
from services.ledger.domain.accounts import Account
from services.ledger.domain.entries import EntryDraft, Posting, TraceLink
from services.ledger.domain.names import hold_name


class HoldState(enum.StrEnum):
    PENDING = "pending"
    POSTED = "posted"
    VOIDED = "voided"
    EXPIRED = "expired"


@dataclass(slots=True)
class Hold:
    """A pending transfer of `amount` from `credit_account_id` to `debit_account_id`."""

    tenant: str
    hold_id: str
    debit_account_id: str
    credit_account_id: str
    currency: str
    amount: int
    expire_time: datetime
    create_time: datetime
    update_time: datetime
    description: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    trace: TraceLink = field(default_factory=TraceLink)
    state: HoldState = HoldState.PENDING
    posted_amount: int = 0
    journal_entry_id: str | None = None
    finalize_time: datetime | None = None
    void_reason: str = ""

    @property
    def name(self) -> str:
        return hold_name(self.tenant, self.hold_id)

    def reserve(self, debit: Account, credit: Account) -> None:
        """Count the amount as pending on both accounts (checked against their limits)."""
        for account in (debit, credit):
            account.require_usable(self.currency)
        self._move_pending(debit, credit, reserve=True)

    def require_pending(self, now: datetime) -> None:
        """Raise HOLD_ALREADY_FINALIZED unless the hold may still be posted or voided."""
        if self.state is not HoldState.PENDING:
            raise errors.hold_already_finalized(self.name, self.state.value)
        if now >= self.expire_time:
            raise errors.hold_already_finalized(self.name, HoldState.EXPIRED.value)

    def post(
        self,
        debit: Account,
        credit: Account,
        amount: int | None,
        *,
        entry_id: str,
        description: str,
        now: datetime,
        trace: TraceLink,
    ) -> EntryDraft:
        """Finalize as POSTED; release the reservation and return the entry that moves `amount`."""
        self.require_pending(now)
        posted = self.amount if amount is None else amount
        if posted > self.amount:
            raise errors.hold_amount_exceeded(self.name, self.amount, posted)
        self._move_pending(debit, credit, reserve=False)
        self.state = HoldState.POSTED
        self.posted_amount = posted
        self.journal_entry_id = entry_id
        self.finalize_time = self.update_time = now
        return EntryDraft(
            entry_id=entry_id,
            postings=(
                Posting(self.debit_account_id, self.currency, posted),
                Posting(self.credit_account_id, self.currency, -posted),
            ),
            description=description or self.description,
            hold=self.hold_id,
            trace=trace,
        )

    def void(self, debit: Account, credit: Account, reason: str, now: datetime) -> None:
        self.require_pending(now)
        self._release(debit, credit, HoldState.VOIDED, now)
        self.void_reason = reason

    def expire(self, debit: Account, credit: Account, now: datetime) -> None:
        if self.state is not HoldState.PENDING:
            raise errors.hold_already_finalized(self.name, self.state.value)
        self._release(debit, credit, HoldState.EXPIRED, now)

    def _release(self, debit: Account, credit: Account, state: HoldState, now: datetime) -> None:
        self._move_pending(debit, credit, reserve=False)
        self.state = state
        self.finalize_time = self.update_time = now

    def _move_pending(self, debit: Account, credit: Account, *, reserve: bool) -> None:
        before = (debit.balance, credit.balance)
        try:
            if reserve:
                debit.balance = debit.balance.reserve(self.amount)
                credit.balance = credit.balance.reserve(-self.amount)
                debit.check_limits()
                credit.check_limits()
            else:
                debit.balance = debit.balance.release(self.amount)
                credit.balance = credit.balance.release(-self.amount)
        except Exception:
            debit.balance, credit.balance = before
            raise
