"""What invoicing records in the ledger for each document change (ADR 0015, chart of accounts).

Accounts, per tenant and currency (ids lower case, opened on first use):
- `invoicing-receivable-<ccy>` (asset): what customers owe on issued invoices.
- `invoicing-revenue-<ccy>` (revenue): net amounts invoiced.
- `invoicing-tax-payable-<jurisdiction>-<tax>-<rate ppm>-<ccy>` (liability): tax collected
  per rate, owed to that jurisdiction.
- `payments-customer-funds-<ccy>` (liability, payments' account, ADR 0012): captured customer
  money waiting to be applied; refunds are paid out of it.
- `payments-bank-<ccy>` (asset, payments' payout bank account, ADR 0013): where money paid
  outside payments (a bank transfer recorded with MarkInvoicePaid and no payment) lands.

Movements (debits +, credits -, every journal balances in its one currency):
- invoice issued: debit receivable (total) / credit revenue (net), tax payable (per rate);
- payments-service payment applied to an invoice: debit customer funds / credit receivable;
  a payment recorded without a payments payment: debit bank / credit receivable;
- invoice voided: the issue journal reversed;
- credit note issued: debit revenue (its net), tax payable (its tax per rate) / credit customer
  funds when it credits a refund (payments debited customer funds when refunding), else
  receivable (less owed, or a credit balance owed to the customer);
- credit note voided: the credit note journal reversed.

Each journal's id is a UUIDv5 of (tenant, document, movement): the ledger request id and the
entry id derive from it, so posting a journal again is a ledger replay.
"""

from __future__ import annotations

import enum
import hashlib
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from services.chassis.ids import stable_id
from services.invoicing.domain.credit_notes import CreditNote
from services.invoicing.domain.invoices import Invoice, InvoicePayment, TaxLine

NAMESPACE = uuid.UUID("0f6a2d7e-3c51-5b8a-a1e4-6d9c2b7f4e10")
_ACCOUNT_ID_MAX = 64
_LONG_NUMBER = re.compile(r"\d{5,}")


class AccountKind(enum.StrEnum):
    ASSET = "ASSET"
    LIABILITY = "LIABILITY"
    REVENUE = "REVENUE"


@dataclass(frozen=True, slots=True)
class Account:
    """A ledger account of the tenant: id (resource id), kind, display name, owning service."""

    account_id: str
    kind: AccountKind
    display_name: str
    owner: str = "invoicing"


@dataclass(frozen=True, slots=True)
class JournalLine:
    account: Account
    amount: int  # minor units; debit +, credit -


@dataclass(frozen=True, slots=True)
class Journal:
    """One balanced ledger entry invoicing owes the ledger."""

    journal_id: str
    movement: str
    tenant: str
    currency_code: str
    invoice: str  # the invoice's name
    credit_note: str  # the credit note's name, or ""
    description: str
    lines: tuple[JournalLine, ...]

    @property
    def entry_id(self) -> str:
        """The ledger entry id (at most one entry per id and tenant)."""
        return "invoicing-" + stable_id(NAMESPACE, self.journal_id)

    @property
    def metadata(self) -> dict[str, str]:
        out = {"invoice": self.invoice, "movement": self.movement}
        if self.credit_note:
            out["credit_note"] = self.credit_note
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "journal_id": self.journal_id,
            "movement": self.movement,
            "tenant": self.tenant,
            "currency_code": self.currency_code,
            "invoice": self.invoice,
            "credit_note": self.credit_note,
            "description": self.description,
            "lines": [
                {
                    "account_id": line.account.account_id,
                    "kind": line.account.kind.value,
                    "display_name": line.account.display_name,
                    "owner": line.account.owner,
                    "amount": line.amount,
                }
                for line in self.lines
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Journal:
        return cls(
            journal_id=str(data["journal_id"]),
            movement=str(data["movement"]),
            tenant=str(data["tenant"]),
            currency_code=str(data["currency_code"]),
            invoice=str(data["invoice"]),
            credit_note=str(data["credit_note"]),
            description=str(data["description"]),
            lines=tuple(
                JournalLine(
                    Account(
                        str(line["account_id"]),
                        AccountKind(line["kind"]),
                        str(line["display_name"]),
                        str(line["owner"]),
                    ),
                    int(line["amount"]),
                )
                for line in data["lines"]
            ),
        )


# --- the chart ------------------------------------------------------------------------------


def receivable(currency: str) -> Account:
    return Account(
        f"invoicing-receivable-{currency.lower()}",
        AccountKind.ASSET,
        f"Accounts receivable ({currency})",
    )


def revenue(currency: str) -> Account:
    return Account(
        f"invoicing-revenue-{currency.lower()}", AccountKind.REVENUE, f"Revenue ({currency})"
    )


def customer_funds(currency: str) -> Account:
    """Payments' account (ADR 0012); opened with payments' own attributes if first used here."""
    return Account(
        f"payments-customer-funds-{currency.lower()}",
        AccountKind.LIABILITY,
        f"Customer funds received ({currency})",
        owner="payments",
    )


def bank(currency: str) -> Account:
    """Payments' payout bank account (ADR 0013), with payments' own attributes."""
    return Account(
        f"payments-bank-{currency.lower()}",
        AccountKind.ASSET,
        f"Bank, PSP payouts ({currency})",
        owner="payments",
    )


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "none"


def tax_payable(tax: TaxLine, currency: str) -> Account:
    """Tax owed to one jurisdiction at one rate. Long jurisdiction/tax names are shortened and
    long digit runs dropped (an id must never look like a card number), with a hash keeping
    the id unique and within the ledger's 64 characters."""
    rate = f"{_slug(tax.jurisdiction)}-{_slug(tax.tax_name)}"
    suffix = f"-{tax.rate_ppm}-{currency.lower()}"
    ident = f"invoicing-tax-payable-{rate}{suffix}"
    if len(ident) > _ACCOUNT_ID_MAX or _LONG_NUMBER.search(rate):
        digest = hashlib.sha256(f"{tax.jurisdiction}\x00{tax.tax_name}".encode()).hexdigest()
        digest = "".join(c for c in digest if not c.isdigit())[:10]  # letters only: a-f
        room = _ACCOUNT_ID_MAX - len("invoicing-tax-payable-") - len(suffix) - len(digest) - 1
        short = re.sub(r"-+", "-", _LONG_NUMBER.sub("", rate)).strip("-")[:room].rstrip("-")
        ident = "-".join(p for p in ("invoicing-tax-payable", short, digest) if p) + suffix
    rate_percent = f"{tax.rate_ppm / 10_000:g}%"
    label = " ".join(p for p in (tax.jurisdiction, tax.tax_name, rate_percent) if p)
    label = _LONG_NUMBER.sub("#", label)  # never a card-number-like run in what is sent
    return Account(ident, AccountKind.LIABILITY, f"Tax payable {label} ({currency})"[:200])


# --- movements ------------------------------------------------------------------------------


def journal_id(tenant: str, document: str, movement: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{tenant}/{document}/{movement}"))


def _lines(entries: Iterable[tuple[Account, int]]) -> tuple[JournalLine, ...]:
    """Sum per account (first-seen order) and drop zero lines."""
    summed: dict[Account, int] = {}
    for account, amount in entries:
        summed[account] = summed.get(account, 0) + amount
    return tuple(JournalLine(a, amount) for a, amount in summed.items() if amount)


def _journal(
    entries: Iterable[tuple[Account, int]],
    *,
    tenant: str,
    movement: str,
    currency: str,
    invoice: str,
    credit_note: str,
    description: str,
) -> list[Journal]:
    """[the journal], or [] when every amount is zero (a zero-total document)."""
    document = credit_note or invoice
    lines = _lines(entries)
    if sum(line.amount for line in lines) != 0:
        raise ValueError(f"unbalanced journal for {document} ({movement})")
    if not lines:
        return []
    return [
        Journal(
            journal_id=journal_id(tenant, document, movement),
            movement=movement,
            tenant=tenant,
            currency_code=currency,
            invoice=invoice,
            credit_note=credit_note,
            description=description,
            lines=lines,
        )
    ]


def _recognition(currency: str, net: int, taxes: Iterable[TaxLine]) -> list[tuple[Account, int]]:
    """Credits to revenue and to each rate's tax payable (negative amounts)."""
    return [(revenue(currency), -net)] + [(tax_payable(t, currency), -t.tax_amount) for t in taxes]


def _negated(entries: Iterable[tuple[Account, int]]) -> list[tuple[Account, int]]:
    return [(account, -amount) for account, amount in entries]


def _issue_entries(invoice: Invoice) -> list[tuple[Account, int]]:
    currency = invoice.currency_code
    return [
        (receivable(currency), invoice.total),
        *_recognition(currency, invoice.net_total, invoice.tax_breakdown),
    ]


def invoice_issued(invoice: Invoice) -> list[Journal]:
    number = invoice.number.number if invoice.number else invoice.name
    return _journal(
        _issue_entries(invoice),
        tenant=invoice.tenant,
        movement="issue",
        currency=invoice.currency_code,
        invoice=invoice.name,
        credit_note="",
        description=f"invoice {number} issued",
    )


def invoice_voided(invoice: Invoice) -> list[Journal]:
    number = invoice.number.number if invoice.number else invoice.name
    return _journal(
        _negated(_issue_entries(invoice)),
        tenant=invoice.tenant,
        movement="void",
        currency=invoice.currency_code,
        invoice=invoice.name,
        credit_note="",
        description=f"invoice {number} voided",
    )


def payment_applied(invoice: Invoice, payment: InvoicePayment) -> list[Journal]:
    """`payment`, just recorded on the invoice, settling (part of) it: from customer funds for
    a payments-service payment, from the bank for money received outside payments (a payment
    record without a payment name, told apart by its position on the invoice)."""
    currency = invoice.currency_code
    number = invoice.number.number if invoice.number else invoice.name
    if payment.payment:
        movement, source = f"apply/{payment.payment}", customer_funds(currency)
        what = f"payment {payment.payment}"
    else:
        position = next(i for i, p in enumerate(invoice.payments) if p is payment)
        reference = payment.external_reference or f"#{position + 1}"
        movement, source = f"apply/external/{position}", bank(currency)
        what = f"payment {reference} received outside payments"
    return _journal(
        [(source, payment.amount), (receivable(currency), -payment.amount)],
        tenant=invoice.tenant,
        movement=movement,
        currency=currency,
        invoice=invoice.name,
        credit_note="",
        description=f"{what} applied to invoice {number}",
    )


def _credit_entries(note: CreditNote) -> list[tuple[Account, int]]:
    currency = note.currency_code
    counter = customer_funds(currency) if note.refund else receivable(currency)
    return [
        *_negated(_recognition(currency, note.subtotal, note.tax_breakdown)),
        (counter, -note.total),
    ]


def credit_note_issued(note: CreditNote) -> list[Journal]:
    return _journal(
        _credit_entries(note),
        tenant=note.tenant,
        movement="credit",
        currency=note.currency_code,
        invoice=note.invoice,
        credit_note=note.name,
        description=f"credit note {note.number.number} on invoice {note.invoice_number}",
    )


def credit_note_voided(note: CreditNote) -> list[Journal]:
    return _journal(
        _negated(_credit_entries(note)),
        tenant=note.tenant,
        movement="void",
        currency=note.currency_code,
        invoice=note.invoice,
        credit_note=note.name,
        description=f"credit note {note.number.number} voided",
    )
