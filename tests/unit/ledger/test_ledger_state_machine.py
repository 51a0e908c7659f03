"""Stateful property test: the use cases against a simple reference model of the books.

Random sequences of opens, entries, holds, posts, voids, reversals, closes and replays; after
every step, per currency all balances sum to zero, every balance equals the sum of its
postings (and its pending holds), holds resolve at most once, no limit is exceeded, the
chain verifies, and the system agrees with the model on every outcome.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from services.chassis.errors import DomainError
from services.ledger.domain import commands
from services.ledger.domain.accounts import AccountSpec, AccountState, AccountType
from services.ledger.domain.entries import EntryDraft, Posting
from services.ledger.domain.holds import HoldState
from services.ledger.domain.ports import IdempotencyKey
from services.ledger.domain.usecases import accounts, entries, holds, reads

TENANT = "acme"
INT64_MAX = 2**63 - 1
# Mostly everyday amounts; sometimes ones that overflow counters or sums.
AMOUNTS = st.one_of(
    st.integers(1, 1_000),
    st.integers(1, 1_000),
    st.integers(1, 1_000),
    st.integers(1, INT64_MAX),
    st.sampled_from([INT64_MAX, INT64_MAX - 1, 2**62]),
)


@dataclass
class ModelAccount:
    currency: str
    kind: AccountType
    debits_limited: bool
    credits_limited: bool
    closed: bool = False
    dp: int = 0
    cp: int = 0
    dpe: int = 0
    cpe: int = 0

    def problem(self) -> str | None:
        counters = (self.dp, self.cp, self.dpe, self.cpe, self.dp + self.dpe, self.cp + self.cpe)
        if any(c < 0 or c > INT64_MAX for c in counters):
            return "BALANCE_OVERFLOW"
        if self.debits_limited and self.dp + self.dpe > self.cp:
            return "INSUFFICIENT_FUNDS"
        if self.credits_limited and self.cp + self.cpe > self.dp:
            return "INSUFFICIENT_FUNDS"
        return None


@dataclass
class ModelHold:
    debit: str
    credit: str
    amount: int
    state: str = "pending"


def key() -> IdempotencyKey:
    return IdempotencyKey(str(uuid.uuid4()), "m", uuid.uuid4().bytes * 2)


class LedgerMachine(RuleBasedStateMachine):
    accounts = Bundle("accounts")
    entries = Bundle("entries")
    holds = Bundle("holds")

    def __init__(self, make_runner: Any) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.runner = make_runner()
        self.model: dict[str, ModelAccount] = {}
        self.model_holds: dict[str, ModelHold] = {}
        self.reversed: set[str] = set()
        self.reversals: set[str] = set()
        self.last: tuple[object, object] | None = None  # (command, result) of the last success
        self.counter = 0

    def teardown(self) -> None:
        self.loop.close()

    def run(self, work):
        """The use case's result, or the DomainError reason it failed with."""
        try:
            return self.loop.run_until_complete(self.runner.run(TENANT, work)), None
        except DomainError as error:
            return None, error.reason

    def new_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    # --- accounts ---------------------------------------------------------------------------

    @initialize(target=accounts)
    def two_usd_accounts(self):
        return multiple(
            self._open("USD", AccountType.ASSET, None),
            self._open("USD", AccountType.LIABILITY, "debits"),
            self._open("USD", AccountType.ASSET, "credits"),
        )

    @rule(
        target=accounts,
        currency=st.sampled_from(["USD", "EUR"]),
        kind=st.sampled_from(list(AccountType)),
        limit=st.sampled_from([None, "debits", "credits"]),
    )
    def open_account(self, currency, kind, limit):
        return self._open(currency, kind, limit)

    def _open(self, currency, kind, limit):
        account_id = self.new_id("a")
        spec = AccountSpec(
            account_id.upper(),
            account_id,
            currency,
            kind,
            debits_must_not_exceed_credits=limit == "debits",
            credits_must_not_exceed_debits=limit == "credits",
        )
        command = commands.OpenAccount(key(), account_id, spec)
        _, failure = self.run(lambda uow: accounts.open_account(uow, command))
        assert failure is None
        self.model[account_id] = ModelAccount(currency, kind, limit == "debits", limit == "credits")
        self.last = (command, account_id)
        return account_id

    @rule(account=accounts)
    def close_account(self, account):
        m = self.model[account]
        expected = None
        if not m.closed and m.dp != m.cp:
            expected = "ACCOUNT_BALANCE_NOT_ZERO"
        elif not m.closed and (m.dpe or m.cpe):
            expected = "ACCOUNT_HAS_PENDING_HOLDS"
        command = commands.CloseAccount(key(), account)
        _, failure = self.run(lambda uow: accounts.close_account(uow, command))
        assert failure == expected
        if expected is None:
            m.closed = True

    # --- entries ----------------------------------------------------------------------------

    @rule(
        target=entries,
        legs=st.lists(
            st.tuples(st.integers(0, 50), AMOUNTS, st.booleans()), min_size=2, max_size=3
        ),
        balance_it=st.sampled_from([True, True, True, False]),
        foreign=st.sampled_from([False, False, False, False, True]),
        ghost=st.sampled_from([False, False, False, False, True]),
    )
    def post_entry(self, legs, balance_it, foreign, ghost):
        ids = sorted(self.model)
        postings = []
        for index, (pick, amount, credit) in enumerate(legs):
            account = ids[pick % len(ids)]
            currency = self.model[account].currency
            if foreign and index == 0:
                currency = "EUR" if currency == "USD" else "USD"
            if ghost and index == 1:
                account = "ghost"
            postings.append(Posting(account, currency, -amount if credit else amount))
        if balance_it:
            rest = -sum(p.amount for p in postings[:-1])
            if rest != 0 and -INT64_MAX <= rest <= INT64_MAX:
                postings[-1] = replace(postings[-1], amount=rest)
        entry_id = self.new_id("e")
        command = commands.PostEntries(
            key(), (commands.EntryRequest(EntryDraft(entry_id, tuple(postings))),)
        )
        expected, after = self.predict(postings)
        result, failure = self.run(lambda uow: entries.post_entries(uow, command))
        assert failure == expected, (postings, failure, expected)
        if failure is not None:
            return multiple()
        self.model.update(after)
        self.last = (command, result)
        return entry_id

    def predict(self, postings):
        """The reason the model expects the entry to fail with (or None), and the accounts
        after it."""
        problem = self._request_problem(postings)
        if problem is not None:
            return problem, {}
        after = {a: replace(self.model[a]) for a in dict.fromkeys(p.account_id for p in postings)}
        for p in postings:
            m = after[p.account_id]
            if p.amount > 0:
                m.dp += p.amount
            else:
                m.cp -= p.amount
        for m in after.values():
            if (problem := m.problem()) is not None:
                return problem, {}
        return None, after

    def _request_problem(self, postings):
        magnitudes: dict[str, int] = defaultdict(int)
        sums: dict[str, int] = defaultdict(int)
        for p in postings:
            magnitudes[p.account_id] += abs(p.amount)
            sums[p.currency] += p.amount
        if any(m > INT64_MAX for m in magnitudes.values()):
            return "AMOUNT_OVERFLOW"
        if any(sums[c] for c in sums):
            return "ENTRY_UNBALANCED"
        for p in postings:
            m = self.model.get(p.account_id)
            if m is None:
                return "ACCOUNT_NOT_FOUND"
            if m.currency != p.currency:
                return "CURRENCY_MISMATCH"
            if m.closed:
                return "ACCOUNT_CLOSED"
        return None

    @rule(entry=entries)
    def reverse_entry(self, entry):
        command = commands.ReverseEntry(key(), entry, self.new_id("r"), "correction")
        result, failure = self.run(lambda uow: entries.reverse_entry(uow, command))
        if entry in self.reversals:
            assert failure == "ENTRY_IS_REVERSAL"
            return
        if entry in self.reversed:
            assert failure == "ENTRY_ALREADY_REVERSED"
            return
        original = self.loop.run_until_complete(self._entry(entry))
        negated = [replace(p, amount=-p.amount) for p in original.draft.postings]
        expected, after = self.predict(negated)
        assert failure == expected
        if failure is None:
            self.model.update(after)
            self.reversed.add(entry)
            self.reversals.add(command.reversal_id)
            self.last = (command, result)

    async def _entry(self, entry_id):
        return await self.runner.run(TENANT, lambda uow: reads.entry(uow, entry_id))

    # --- holds ------------------------------------------------------------------------------

    @rule(target=holds, debit=accounts, credit=accounts, amount=AMOUNTS)
    def create_hold(self, debit, credit, amount):
        if debit == credit:
            return multiple()
        hold_id = self.new_id("h")
        currency = self.model[debit].currency
        command = commands.CreateHold(key(), hold_id, debit, credit, currency, amount)
        expected = None
        d, c = replace(self.model[debit]), replace(self.model[credit])
        for m in (d, c):
            if expected is None and m.currency != currency:
                expected = "CURRENCY_MISMATCH"
            if expected is None and m.closed:
                expected = "ACCOUNT_CLOSED"
        if expected is None:
            d.dpe += amount
            c.cpe += amount
            expected = d.problem() or c.problem()
        result, failure = self.run(lambda uow: holds.create_hold(uow, command))
        assert failure == expected
        if failure is not None:
            return multiple()
        self.model[debit], self.model[credit] = d, c
        self.model_holds[hold_id] = ModelHold(debit, credit, amount)
        self.last = (command, result)
        return hold_id

    @rule(hold=holds, fraction=st.sampled_from([None, 1, 2, 3]), overshoot=st.booleans())
    def post_hold(self, hold, fraction, overshoot):
        h = self.model_holds[hold]
        amount = None if fraction is None else max(1, h.amount // fraction)
        if overshoot and h.amount < INT64_MAX:
            amount = h.amount + 1
        command = commands.PostHold(key(), hold, amount, entry_id=self.new_id("p"))
        expected, after = None, {}
        if h.state != "pending":
            expected = "HOLD_ALREADY_FINALIZED"
        elif amount is not None and amount > h.amount:
            expected = "HOLD_AMOUNT_EXCEEDED"
        else:
            moved = h.amount if amount is None else amount
            saved = (replace(self.model[h.debit]), replace(self.model[h.credit]))
            self.model[h.debit].dpe -= h.amount
            self.model[h.credit].cpe -= h.amount
            expected, after = self.predict(
                [
                    Posting(h.debit, saved[0].currency, moved),
                    Posting(h.credit, saved[0].currency, -moved),
                ]
            )
            self.model[h.debit], self.model[h.credit] = saved
        result, failure = self.run(lambda uow: holds.post_hold(uow, command))
        assert failure == expected
        if failure is None:
            self.model.update(after)
            h.state = "posted"
            self.last = (command, result)

    @rule(hold=holds)
    def void_hold(self, hold):
        h = self.model_holds[hold]
        command = commands.VoidHold(key(), hold, "changed mind")
        result, failure = self.run(lambda uow: holds.void_hold(uow, command))
        if h.state != "pending":
            assert failure == "HOLD_ALREADY_FINALIZED"
            return
        assert failure is None
        self.model[h.debit].dpe -= h.amount
        self.model[h.credit].cpe -= h.amount
        h.state = "voided"
        self.last = (command, result)

    # --- idempotency ------------------------------------------------------------------------

    @rule()
    def replay_last(self):
        if self.last is None:
            return
        command, first = self.last
        before = self._snapshot()
        result, failure = self.run(lambda uow: _dispatch(uow, command))
        assert failure is None
        assert _names(result) == _names(first)
        assert self._snapshot() == before

    @rule()
    def reuse_last_key_for_other_content(self):
        if self.last is None:
            return
        command: Any = self.last[0]
        changed = replace(command, key=replace(command.key, fingerprint=b"\x00" * 32))
        before = self._snapshot()
        _, failure = self.run(lambda uow: _dispatch(uow, changed))
        assert failure == "IDEMPOTENCY_KEY_REUSED"
        assert self._snapshot() == before

    def _snapshot(self):
        book = self.runner.books[TENANT]
        return (
            {i: a.balance for i, a in book.accounts.items()},
            len(book.chain),
            {i: h.state for i, h in book.holds.items()},
        )

    # --- invariants -------------------------------------------------------------------------

    @invariant()
    def every_currency_sums_to_zero(self):
        book = self.runner.books.get(TENANT)
        if book is None:
            return
        totals: dict[str, int] = defaultdict(int)
        for a in book.accounts.values():
            totals[a.currency] += a.balance.debits_posted - a.balance.credits_posted
        assert all(total == 0 for total in totals.values())

    @invariant()
    def balances_equal_their_postings_and_pending_holds_and_the_model(self):
        book = self.runner.books.get(TENANT)
        if book is None:
            return
        posted: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for entry_id in book.chain:
            for p in book.entries[entry_id][0].postings:
                posted[p.account_id][0 if p.amount > 0 else 1] += abs(p.amount)
        pending: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for h in book.holds.values():
            if h.state is HoldState.PENDING:
                pending[h.debit_account_id][0] += h.amount
                pending[h.credit_account_id][1] += h.amount
        for account_id, a in book.accounts.items():
            b = a.balance
            assert [b.debits_posted, b.credits_posted] == posted[account_id]
            assert [b.debits_pending, b.credits_pending] == pending[account_id]
            m = self.model[account_id]
            assert (b.debits_posted, b.credits_posted, b.debits_pending, b.credits_pending) == (
                m.dp,
                m.cp,
                m.dpe,
                m.cpe,
            )
            assert (a.state is AccountState.CLOSED) == m.closed

    @invariant()
    def no_limit_is_exceeded(self):
        book = self.runner.books.get(TENANT)
        if book is None:
            return
        for a in book.accounts.values():
            b = a.balance
            if a.spec.debits_must_not_exceed_credits:
                assert b.debits_posted + b.debits_pending <= b.credits_posted
            if a.spec.credits_must_not_exceed_debits:
                assert b.credits_posted + b.credits_pending <= b.debits_posted

    @invariant()
    def holds_resolve_at_most_once_as_the_model_says(self):
        book = self.runner.books.get(TENANT)
        if book is None:
            return
        for hold_id, h in book.holds.items():
            assert h.state.value == self.model_holds[hold_id].state
            posting_entries = [i for i in book.chain if book.entries[i][0].hold == hold_id]
            assert len(posting_entries) == (1 if h.state is HoldState.POSTED else 0)

    @invariant()
    def the_chain_verifies(self):
        if TENANT not in self.runner.books:
            return
        verification = self.loop.run_until_complete(
            self.runner.run(TENANT, lambda uow: reads.verify_chain(uow, 0, 0))
        )
        assert verification.first_break is None


async def _dispatch(uow, command):
    match command:
        case commands.OpenAccount():
            return (await accounts.open_account(uow, command)).account_id
        case commands.PostEntries():
            return await entries.post_entries(uow, command)
        case commands.ReverseEntry():
            return await entries.reverse_entry(uow, command)
        case commands.CreateHold():
            return await holds.create_hold(uow, command)
        case commands.PostHold():
            return await holds.post_hold(uow, command)
        case commands.VoidHold():
            return await holds.void_hold(uow, command)
    raise AssertionError(command)


def _names(result):
    if isinstance(result, str):
        return result
    if isinstance(result, list):
        return [e.name for e in result]
    if isinstance(result, tuple):
        return tuple(_names(r) for r in result)
    return result.name


def test_the_ledger_agrees_with_the_reference_model(fake_runner_factory):
    class Machine(LedgerMachine):
        def __init__(self) -> None:
            super().__init__(fake_runner_factory)

    run_state_machine_as_test(
        Machine,
        settings=settings(max_examples=80, stateful_step_count=30, deadline=None),
    )
