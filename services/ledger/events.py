"""What the ledger publishes: each domain event as its contract message, subject and source."""

from __future__ import annotations

from google.protobuf.message import Message

from commerce.ledger.v1 import events_pb2 as ev
from services.ledger import messages
from services.ledger.domain import events

SOURCE = "//commerce-mesh/ledger"


def outgoing(event: events.LedgerEvent) -> tuple[Message, str]:  # noqa: PLR0911 - one per event
    """The event's proto message and its subject (the aggregate's resource name)."""
    match event:
        case events.AccountOpened(account=account):
            return ev.AccountOpened(
                account=messages.account(account),
                event_time=messages.timestamp(account.create_time),
            ), account.name
        case events.AccountClosed(account=account):
            return ev.AccountClosed(
                account=messages.account(account),
                event_time=messages.timestamp(account.update_time),
            ), account.name
        case events.EntryPosted(entry=entry):
            return ev.JournalEntryPosted(
                journal_entry=messages.staged_journal_entry(entry),
                event_time=messages.shared_timestamp(entry.link.create_time),
            ), entry.name
        case events.HoldCreated(hold=hold):
            return ev.HoldCreated(
                hold=messages.hold(hold), event_time=messages.timestamp(hold.create_time)
            ), hold.name
        case events.HoldPosted(hold=hold, entry=entry):
            return ev.HoldPosted(
                hold=messages.hold(hold),
                journal_entry=messages.journal_entry(entry),
                event_time=messages.timestamp(hold.update_time),
            ), hold.name
        case events.HoldVoided(hold=hold):
            return ev.HoldVoided(
                hold=messages.hold(hold),
                reason=hold.void_reason,
                event_time=messages.timestamp(hold.update_time),
            ), hold.name
        case events.HoldExpired(hold=hold, event_time=event_time):
            return ev.HoldExpired(
                hold=messages.hold(hold), event_time=messages.timestamp(event_time)
            ), hold.name
