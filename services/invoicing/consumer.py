"""What invoicing does with other services' events, each in the consumer's inbox transaction:
CheckoutCompleted issues the order's invoice (once per order), PaymentCaptured records a capture
the invoice lacks, PaymentRefunded issues the refund's credit note (once per refund)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from commerce.checkout.v1 import events_pb2 as checkout_events
from commerce.payments.v1 import events_pb2 as payment_events
from services.chassis.db.database import Database
from services.chassis.events.consumer import Consumer, ConsumerSettings
from services.chassis.events.envelope import Envelope
from services.chassis.events.subject import tenant_of_subject
from services.invoicing import messages
from services.invoicing.domain import commands, usecases
from services.invoicing.storage.unit_of_work import SqlUnitOfWork

# Declared in services/chassis/events/mesh.py (MESH_TOPOLOGY).
CHECKOUT_SUBSCRIPTION = "invoicing-from-checkout"
PAYMENTS_SUBSCRIPTION = "invoicing-from-payments"


def _uow(session: AsyncSession, envelope: Envelope) -> SqlUnitOfWork:
    return SqlUnitOfWork(session, tenant_of_subject(envelope.subject))


async def on_checkout_completed(
    session: AsyncSession, event: checkout_events.CheckoutCompleted, envelope: Envelope
) -> None:
    await usecases.invoice_checkout(_uow(session, envelope), messages.checkout_invoice(event))


async def on_payment_captured(
    session: AsyncSession, event: payment_events.PaymentCaptured, envelope: Envelope
) -> None:
    capture = commands.Capture(
        payment=event.payment.name,
        order=event.payment.order,
        amount=event.amount.amount_minor,
        currency_code=event.amount.currency_code,
        capture_reference=event.psp_reference,
        capture_time=messages.when(event.event_time),
    )
    await usecases.record_capture(_uow(session, envelope), capture)


async def on_payment_refunded(
    session: AsyncSession, event: payment_events.PaymentRefunded, envelope: Envelope
) -> None:
    refund = commands.Refund(
        payment=event.payment.name,
        order=event.payment.order,
        refund=event.refund.name,
        amount=event.refund.amount.amount_minor,
        currency_code=event.refund.amount.currency_code,
        refund_time=messages.when(event.event_time),
    )
    await usecases.credit_refund(_uow(session, envelope), refund)


def checkout_consumer(database: Database, settings: ConsumerSettings, **options: Any) -> Consumer:
    consumer = Consumer(database, settings, **options)
    consumer.handle(checkout_events.CheckoutCompleted, on_checkout_completed)
    return consumer


def payments_consumer(database: Database, settings: ConsumerSettings, **options: Any) -> Consumer:
    consumer = Consumer(database, settings, **options)
    consumer.handle(payment_events.PaymentCaptured, on_payment_captured)
    consumer.handle(payment_events.PaymentRefunded, on_payment_refunded)
    return consumer
