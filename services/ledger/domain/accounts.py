"""Ledger accounts: type and normal side, flags (limits), state, and the balance counters."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from services.ledger.domain import errors
from services.ledger.domain.money import INT64_MAX
from services.ledger.domain.names import account_name


class AccountType(enum.StrEnum):
    """Accounting type; decides the normal balance direction."""

    ASSET = "asset"
    LIABILITY = "liability"
    EQUITY = "equity"
    REVENUE = "revenue"
    EXPENSE = "expense"

    @property
    def debit_normal(self) -> bool:
        return self in (AccountType.ASSET, AccountType.EXPENSE)


class AccountState(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Balance:
    """The four counters of an account; each is a non-negative sum of magnitudes."""

    debits_posted: int = 0
    credits_posted: int = 0
    debits_pending: int = 0
    credits_pending: int = 0

    def posted(self, *, debit_normal: bool) -> int:
        net = self.debits_posted - self.credits_posted
        return net if debit_normal else -net

    def pending(self, *, debit_normal: bool) -> int:
        net = self.debits_pending - self.credits_pending
        return net if debit_normal else -net

    def available(self, *, debit_normal: bool) -> int:
        against = self.credits_pending if debit_normal else self.debits_pending
        return self.posted(debit_normal=debit_normal) - against

    # The counters are rebuilt with the constructor, not `dataclasses.replace` (which
    # introspects the fields on every call: the ledger posts twice per entry).

    def post(self, amount: int) -> Balance:
        """Posted by a signed amount: positive debits, negative credits."""
        dp, cp, dpe, cpe = (
            self.debits_posted,
            self.credits_posted,
            self.debits_pending,
            self.credits_pending,
        )
        if amount > 0:
            return Balance(dp + amount, cp, dpe, cpe)
        return Balance(dp, cp - amount, dpe, cpe)

    def reserve(self, amount: int) -> Balance:
        """Pending by a signed amount (a hold); negative `amount` releases is not allowed."""
        dp, cp, dpe, cpe = (
            self.debits_posted,
            self.credits_posted,
            self.debits_pending,
            self.credits_pending,
        )
        if amount > 0:
            return Balance(dp, cp, dpe + amount, cpe)
        return Balance(dp, cp, dpe, cpe - amount)

    def release(self, amount: int) -> Balance:
        """Undo `reserve(amount)`."""
        dp, cp, dpe, cpe = (
            self.debits_posted,
            self.credits_posted,
            self.debits_pending,
            self.credits_pending,
        )
        if amount > 0:
            return Balance(dp, cp, dpe - amount, cpe)
        return Balance(dp, cp, dpe, cpe + amount)

    def fits(self) -> bool:
        """Every counter, and each side's posted + pending, is in [0, INT64_MAX]."""
        dp, cp, dpe, cpe = (
            self.debits_posted,
            self.credits_posted,
            self.debits_pending,
            self.credits_pending,
        )
        return (
            0 <= dp <= INT64_MAX
            and 0 <= cp <= INT64_MAX
            and 0 <= dpe <= INT64_MAX
            and 0 <= cpe <= INT64_MAX
            and dp + dpe <= INT64_MAX
            and cp + cpe <= INT64_MAX
        )


@dataclass(frozen=True, slots=True)
class AccountSpec:
    """What a client chooses when opening an account."""

    code: str
    display_name: str
    currency: str
    type: AccountType
    debits_must_not_exceed_credits: bool = False
    credits_must_not_exceed_debits: bool = False
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Account:
    """An account of a tenant with its current counters."""

    tenant: str
    account_id: str
    spec: AccountSpec
    create_time: datetime
    update_time: datetime
    state: AccountState = AccountState.OPEN
    close_time: datetime | None = None
    version: int = 1
    balance: Balance = field(default_factory=Balance)

    @property
    def name(self) -> str:
        return account_name(self.tenant, self.account_id)

    @property
    def currency(self) -> str:
        return self.spec.currency

    @property
    def debit_normal(self) -> bool:
        return self.spec.type.debit_normal

    @property
    def etag(self) -> str:
        return f"v{self.version}"

    def require_usable(self, currency: str) -> None:
        """Raise unless the account takes postings or holds in `currency`."""
        if currency != self.currency:
            raise errors.currency_mismatch(self.name, self.currency, currency)
        if self.state is AccountState.CLOSED:
            raise errors.account_closed(self.name)

    def check_limits(self) -> None:
        """Raise if the counters break the int64 range or the account's flags."""
        b = self.balance
        if not b.fits():
            raise errors.balance_overflow(self.name)
        if self.spec.debits_must_not_exceed_credits and (
            b.debits_posted + b.debits_pending > b.credits_posted
        ):
            raise errors.insufficient_funds(self.name)
        if self.spec.credits_must_not_exceed_debits and (
            b.credits_posted + b.credits_pending > b.debits_posted
        ):
            raise errors.insufficient_funds(self.name)

    def close(self, now: datetime, etag: str = "") -> bool:
        """Close the account; False when it was closed already (no change)."""
        if etag and etag != self.etag:
            raise errors.etag_mismatch(self.name)
        if self.state is AccountState.CLOSED:
            return False
        if self.balance.debits_posted != self.balance.credits_posted:
            raise errors.account_balance_not_zero(self.name)
        if self.balance.debits_pending or self.balance.credits_pending:
            raise errors.account_has_pending_holds(self.name)
        self.state = AccountState.CLOSED
        self.close_time = now
        self.update_time = now
        self.version += 1
        return True


def require_account(accounts: Mapping[str, Account], tenant: str, account_id: str) -> Account:
    """The locked account `account_id`, or ACCOUNT_NOT_FOUND."""
    account = accounts.get(account_id)
    if account is None:
        raise errors.account_not_found(account_name(tenant, account_id))
    return account
