"""Rows → domain objects, and the JSON the tables store for maps."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from services.ledger.domain.accounts import Account, AccountSpec, AccountState, AccountType, Balance
from services.ledger.domain.entries import ChainLink, EntryDraft, JournalEntry, Posting, TraceLink
from services.ledger.domain.holds import Hold, HoldState

ACCOUNT_COLUMNS = (
    "account_id, code, display_name, currency_code, account_type, "
    "debits_must_not_exceed_credits, credits_must_not_exceed_debits, metadata, state, "
    "debits_posted, credits_posted, debits_pending, credits_pending, version, "
    "create_time, update_time, close_time"
)

HOLD_COLUMNS = (
    "hold_id, debit_account_id, credit_account_id, currency_code, amount_minor, "
    "posted_amount_minor, state, description, metadata, expire_time, journal_entry_id, "
    "void_reason, trace_id, span_id, create_time, update_time, finalize_time"
)

# An entry with its chain link, the entry reversing it, and its postings in order.
ENTRY_SELECT = """
SELECT e.entry_id, e.description, e.metadata, e.effective_time, e.reverses_entry_id,
       e.hold_id, e.trace_id, e.span_id, c.sequence, c.previous_hash, c.hash, c.create_time,
       (SELECT r.entry_id FROM journal_entries r
         WHERE r.tenant_id = e.tenant_id AND r.reverses_entry_id = e.entry_id) AS reversed_by,
       (SELECT jsonb_agg(jsonb_build_array(p.account_id, p.currency_code, p.amount_minor, p.memo)
                         ORDER BY p.posting_index)
          FROM postings p
         WHERE p.tenant_id = e.tenant_id AND p.entry_id = e.entry_id) AS postings
  FROM journal_entries e
  JOIN entry_chain c ON c.tenant_id = e.tenant_id AND c.entry_id = e.entry_id
"""


# What `json.dumps(value, sort_keys=True)` writes, without building an encoder per call.
_JSON = json.JSONEncoder(sort_keys=True)


def to_json(mapping: Mapping[str, str]) -> str:
    if not mapping:  # most entries: what json.dumps({}) writes, without the encoder
        return "{}"
    return _JSON.encode(dict(mapping))


def account(tenant: str, row: Any) -> Account:
    return Account(
        tenant=tenant,
        account_id=row.account_id,
        spec=AccountSpec(
            code=row.code,
            display_name=row.display_name,
            currency=row.currency_code,
            type=AccountType(row.account_type),
            debits_must_not_exceed_credits=row.debits_must_not_exceed_credits,
            credits_must_not_exceed_debits=row.credits_must_not_exceed_debits,
            metadata=dict(row.metadata),
        ),
        create_time=row.create_time,
        update_time=row.update_time,
        state=AccountState(row.state),
        close_time=row.close_time,
        version=row.version,
        balance=Balance(
            row.debits_posted, row.credits_posted, row.debits_pending, row.credits_pending
        ),
    )


def hold(tenant: str, row: Any) -> Hold:
    return Hold(
        tenant=tenant,
        hold_id=row.hold_id,
        debit_account_id=row.debit_account_id,
        credit_account_id=row.credit_account_id,
        currency=row.currency_code,
        amount=row.amount_minor,
        expire_time=row.expire_time,
        create_time=row.create_time,
        update_time=row.update_time,
        description=row.description,
        metadata=dict(row.metadata),
        trace=TraceLink(row.trace_id, row.span_id),
        state=HoldState(row.state),
        posted_amount=row.posted_amount_minor,
        journal_entry_id=row.journal_entry_id,
        finalize_time=row.finalize_time,
        void_reason=row.void_reason,
    )


def draft(row: Any) -> EntryDraft:
    return EntryDraft(
        entry_id=row.entry_id,
        postings=tuple(
            Posting(account_id, currency, int(amount), memo)
            for account_id, currency, amount, memo in (row.postings or [])
        ),
        description=row.description,
        metadata=dict(row.metadata),
        effective_time=row.effective_time,
        reverses=row.reverses_entry_id,
        hold=row.hold_id,
        trace=TraceLink(row.trace_id, row.span_id),
    )


def link(row: Any) -> ChainLink:
    return ChainLink(row.sequence, bytes(row.previous_hash), bytes(row.hash), row.create_time)


def entry(tenant: str, row: Any) -> JournalEntry:
    return JournalEntry(tenant, draft(row), link(row), row.reversed_by)
