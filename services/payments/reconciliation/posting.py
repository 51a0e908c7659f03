"""Posts planned settlement and fee entries to the ledger, idempotently, over LedgerClient.

Each entry goes with its deterministic `entry_id` and `request_id`: a rerun replays (same
request id) or is refused as ENTRY_ALREADY_EXISTS (same entry id); either way the ledger holds
one entry per settled line. A refusal with IDEMPOTENCY_KEY_REUSED means the line changed since
it was posted: that is raised, for a person to resolve with a reversal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time

from google.protobuf.timestamp_pb2 import Timestamp

from clients.errors import AlreadyExists, IdempotencyKeyReused
from clients.services import LedgerClient
from commerce.ledger.v1 import ledger_service_pb2 as lpb
from commerce.ledger.v1 import resources_pb2 as lres
from commerce.type.v1.money_pb2 import Money
from services.payments.domain.reconciliation_postings import (
    SettlementAccounts,
    SettlementJournalEntry,
)

ENTRY_ALREADY_EXISTS = "ENTRY_ALREADY_EXISTS"
BANK_ACCOUNT_PREFIX = "payments-bank-"


def payments_settlement_accounts(
    tenant: str, currencies: Sequence[str]
) -> Mapping[str, SettlementAccounts]:
    """The payments service's accounts per currency (ids as services/payments/ledger.py opens
    them), with `payments-bank-<ccy>` as the payout bank account."""
    base = f"tenants/{tenant}/accounts"
    return {
        c: SettlementAccounts(
            psp_clearing=f"{base}/payments-psp-clearing-{c.lower()}",
            bank=f"{base}/{BANK_ACCOUNT_PREFIX}{c.lower()}",
            psp_fees=f"{base}/payments-psp-fees-{c.lower()}",
        )
        for c in currencies
    }


@dataclass(frozen=True, slots=True)
class PostingOutcome:
    posted: tuple[str, ...]
    """Entry names the ledger answered with (first post or replay of one)."""
    already_posted: tuple[str, ...]
    """Entry ids the ledger already held under another request id."""


def create_request(tenant: str, entry: SettlementJournalEntry) -> lpb.CreateJournalEntryRequest:
    effective = Timestamp()
    effective.FromDatetime(datetime.combine(entry.settlement_date, time(), tzinfo=UTC))
    return lpb.CreateJournalEntryRequest(
        parent=f"tenants/{tenant}",
        entry_id=entry.entry_id,
        request_id=entry.request_id,
        journal_entry=lres.JournalEntry(
            description=entry.description,
            metadata=dict(entry.metadata),
            effective_time=effective,
            postings=[
                lres.Posting(
                    account=p.account,
                    amount=Money(currency_code=p.currency, amount_minor=p.amount_minor),
                    memo=p.memo,
                )
                for p in entry.postings
            ],
        ),
    )


async def post_settlement_entries(
    ledger: LedgerClient, tenant: str, entries: Sequence[SettlementJournalEntry]
) -> PostingOutcome:
    """Post `entries` one by one, in order; safe to call again with the same entries."""
    posted: list[str] = []
    already: list[str] = []
    for entry in entries:
        try:
            reply = await ledger.call(ledger.stub.CreateJournalEntry, create_request(tenant, entry))
        except IdempotencyKeyReused:
            raise
        except AlreadyExists as error:
            if error.reason != ENTRY_ALREADY_EXISTS:
                raise
            already.append(entry.entry_id)
            continue
        posted.append(reply.journal_entry.name)
    return PostingOutcome(tuple(posted), tuple(already))
