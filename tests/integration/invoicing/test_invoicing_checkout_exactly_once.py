"""Exactly one invoice per order from CheckoutCompleted through the real Pub/Sub API server and
the chassis consumer + inbox: replayed 10 times (same and new event ids), and delivered
concurrently to 4 consumers with their own pools, it yields one ISSUED+PAID invoice, one number
and one InvoiceIssued; a refund then issues one credit note."""

import asyncio
import secrets
import time
import uuid
from datetime import UTC, datetime

import pytest

from commerce.payments.v1 import events_pb2 as payment_events
from commerce.payments.v1 import resources_pb2 as pay
from commerce.type.v1.money_pb2 import Money
from services.chassis.db.database import Database
from services.chassis.events import pubsub
from services.chassis.events.apply import apply_topology
from services.chassis.events.backoff import Backoff
from services.chassis.events.consumer import ConsumerSettings
from services.chassis.events.envelope import Envelope
from services.chassis.events.topology import RetryPolicy, Subscription, Topic, Topology
from services.invoicing.consumer import (
    CHECKOUT_SUBSCRIPTION,
    checkout_consumer,
    payments_consumer,
)
from services.invoicing.domain import usecases
from services.invoicing.domain.commands import Capture
from services.invoicing.messages import checkout_invoice

pytestmark = pytest.mark.integration
PROJECT = "commerce-test"


def envelope(event, subject: str, event_id: str | None = None) -> Envelope:
    return Envelope(
        id=event_id or str(uuid.uuid4()),
        type=str(event.DESCRIPTOR.full_name),
        source="//commerce-mesh/checkout",
        subject=subject,
        time=datetime.now(UTC),
        data=event.SerializeToString(deterministic=True),
    )


def publish(publisher, topic_path, env: Envelope):
    return publisher.publish(topic_path, env.data, ordering_key=env.subject, **env.attributes())


@pytest.fixture
def clients(pubsub_emulator):
    publisher, subscriber = pubsub.ordered_publisher(), pubsub.subscriber()
    yield publisher, subscriber
    publisher.stop()
    subscriber.close()


def _topology(clients, subscriptions: int):
    publisher, subscriber = clients
    stem = f"t{secrets.token_hex(4)}"
    topic = f"{stem}-checkout-events"
    subs = tuple(
        Subscription(
            name=f"{stem}-invoicing-{i}",
            topic=topic,
            ack_deadline_s=10,
            retry=RetryPolicy(minimum_backoff_s=0.02, maximum_backoff_s=0.1),
        )
        for i in range(subscriptions)
    )
    apply_topology(
        Topology(topics=(Topic(topic),), subscriptions=subs), PROJECT, publisher, subscriber
    )
    return pubsub.topic_path(PROJECT, topic), subs


def _settings(sub: Subscription, name: str) -> ConsumerSettings:
    # Every consumer is "invoicing-from-checkout" (one inbox), whichever subscription feeds it.
    return ConsumerSettings(
        name=name,
        subscription_path=pubsub.subscription_path(PROJECT, sub.name),
        dead_letter_topic_path=pubsub.topic_path(PROJECT, sub.dead_letter_topic),
        backoff=Backoff(minimum_s=0.02, maximum_s=0.1),
        streams=2,
    )


async def wait_until(predicate, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout_s}s (last value: {value!r})")
        await asyncio.sleep(0.05)


async def _state(owner_sql, tenant):
    invoices = await owner_sql(
        "SELECT invoice_id, order_name, number, sequence, state FROM invoices", tenant=tenant
    )
    # The event tables are shared by every tenant's relay: filter them by tenant explicitly.
    issued = await owner_sql(
        "SELECT count(*) FROM outbox WHERE tenant_id = %s"
        " AND type = 'commerce.invoicing.v1.InvoiceIssued'",
        (tenant,),
        tenant=tenant,
    )
    inbox = await owner_sql(
        "SELECT count(*) FROM inbox WHERE tenant_id = %s", (tenant,), tenant=tenant
    )
    return invoices, issued[0][0], inbox[0][0]


async def test_replaying_checkout_completed_10_times_yields_one_invoice(
    clients, invoicing_db, owner_sql, checkout_completed
):
    publisher, _ = clients
    topic_path, (sub,) = _topology(clients, 1)
    tenant = f"t{secrets.token_hex(4)}"
    event = checkout_completed(tenant, "o-replay")
    database = Database.connect(invoicing_db.app_url, pool_size=4, max_overflow=2)
    consumer = checkout_consumer(database, _settings(sub, CHECKOUT_SUBSCRIPTION))
    await consumer.start()
    try:
        first_id = str(uuid.uuid4())
        # 5 redeliveries of one event id, then 5 republications under new ids.
        envelopes = [envelope(event, event.order, first_id) for _ in range(5)]
        envelopes += [envelope(event, event.order) for _ in range(5)]
        for env in envelopes:
            await pubsub.wait_published(publish(publisher, topic_path, env))

        async def all_applied_or_skipped():
            _, _, inbox = await _state(owner_sql, tenant)
            return inbox == 6  # distinct event ids; the repeated id is recorded once

        await wait_until(all_applied_or_skipped)
        await asyncio.sleep(0.5)  # let any stray redelivery land before counting
    finally:
        await consumer.stop()
        await database.dispose()
    invoices, issued_events, _ = await _state(owner_sql, tenant)
    assert len(invoices) == 1
    _, order, number, sequence, state = invoices[0]
    assert (order, sequence, state) == (event.order, 1, "PAID")
    assert number.endswith("-000001")
    assert issued_events == 1
    payments = await owner_sql("SELECT payment, amount_minor FROM invoice_payments", tenant=tenant)
    assert payments == [(event.payment, 4758)]


async def test_concurrent_delivery_to_4_consumers_yields_one_invoice(
    clients, invoicing_db, owner_sql, checkout_completed
):
    publisher, _ = clients
    topic_path, subs = _topology(clients, 4)
    tenant = f"t{secrets.token_hex(4)}"
    event = checkout_completed(tenant, "o-race")
    pools = [Database.connect(invoicing_db.app_url, pool_size=2, max_overflow=1) for _ in subs]
    consumers = [
        checkout_consumer(db, _settings(s, CHECKOUT_SUBSCRIPTION))
        for db, s in zip(pools, subs, strict=True)
    ]
    for consumer in consumers:
        await consumer.start()
    try:
        # Every consumer receives both copies (fan-out): 8 deliveries race for one order.
        copies = [envelope(event, event.order), envelope(event, event.order)]
        for env in copies:
            await pubsub.wait_published(publish(publisher, topic_path, env))

        async def both_ids_recorded():
            _, _, inbox = await _state(owner_sql, tenant)
            return inbox == 2

        await wait_until(both_ids_recorded)
        await asyncio.sleep(0.5)
    finally:
        for consumer in consumers:
            await consumer.stop()
        for db in pools:
            await db.dispose()
    invoices, issued_events, _ = await _state(owner_sql, tenant)
    assert [(i[1], i[3], i[4]) for i in invoices] == [(event.order, 1, "PAID")]
    assert issued_events == 1


async def test_checkouts_raced_in_16_transactions_get_one_invoice_and_consecutive_numbers(
    runner, owner_sql, checkout_completed
):
    tenant = f"t{secrets.token_hex(4)}"
    orders = [checkout_completed(tenant, f"o-{i}") for i in range(4)]
    await asyncio.gather(
        *(
            runner.run(tenant, lambda uow, e=e: usecases.invoice_checkout(uow, checkout_invoice(e)))
            for e in orders
            for _ in range(4)
        )
    )
    rows = await owner_sql(
        "SELECT order_name, sequence FROM invoices ORDER BY sequence", tenant=tenant
    )
    assert sorted(r[0] for r in rows) == sorted(e.order for e in orders)
    assert [r[1] for r in rows] == [1, 2, 3, 4]


async def test_a_refund_event_issues_one_credit_note_once(
    clients, invoicing_db, owner_sql, runner, checkout_completed
):
    publisher, _ = clients
    topic_path, (sub,) = _topology(clients, 1)
    tenant = f"t{secrets.token_hex(4)}"
    order = checkout_completed(tenant, "o-refund")
    invoice = await runner.run(
        tenant, lambda uow: usecases.invoice_checkout(uow, checkout_invoice(order))
    )
    payment = pay.Payment(name=order.payment, order=order.order)
    refund = pay.Refund(
        name=f"{order.payment}/refunds/r-1",
        amount=Money(currency_code="EUR", amount_minor=1000),
        state=pay.REFUND_STATE_SUCCEEDED,
    )
    refunded = payment_events.PaymentRefunded(
        payment=payment,
        refund=refund,
        amount_refunded=Money(currency_code="EUR", amount_minor=1000),
    )
    refunded.event_time.FromDatetime(datetime.now(UTC))
    database = Database.connect(invoicing_db.app_url, pool_size=4, max_overflow=2)
    consumer = payments_consumer(database, _settings(sub, "invoicing-from-payments"))
    await consumer.start()
    try:
        for env in [envelope(refunded, order.payment) for _ in range(3)]:
            await pubsub.wait_published(publish(publisher, topic_path, env))

        async def three_recorded():
            rows = await owner_sql(
                "SELECT count(*) FROM inbox WHERE tenant_id = %s",
                (tenant,),
                tenant=tenant,
            )
            return rows[0][0] == 3

        await wait_until(three_recorded)
    finally:
        await consumer.stop()
        await database.dispose()
    notes = await owner_sql(
        "SELECT invoice_id, refund, total_minor, number FROM credit_notes", tenant=tenant
    )
    assert len(notes) == 1
    assert notes[0][:3] == (invoice.invoice_id, refund.name, 1000)
    assert notes[0][3].endswith("-000001")
    credited = await owner_sql(
        "SELECT document->>'amount_credited' FROM invoices WHERE invoice_id = %s",
        (invoice.invoice_id,),
        tenant=tenant,
    )
    assert credited == [("1000",)]


async def test_a_capture_event_pays_an_invoice_that_lacks_it_once(runner, checkout_completed):
    tenant = f"t{secrets.token_hex(4)}"
    event = checkout_completed(tenant, "o-capture")
    event.ClearField("payment")  # the capture arrives on its own, from payments' topic
    event.ClearField("captured_amount")
    invoice = await runner.run(
        tenant, lambda uow: usecases.invoice_checkout(uow, checkout_invoice(event))
    )
    assert invoice.state.value == "ISSUED"
    capture = Capture(
        payment=f"tenants/{tenant}/payments/pay-late",
        order=event.order,
        amount=4758,
        currency_code="EUR",
        capture_reference="psp-late",
        capture_time=datetime.now(UTC),
    )
    for _ in range(3):
        paid = await runner.run(tenant, lambda uow: usecases.record_capture(uow, capture))
    assert paid is None  # the later deliveries find the payment recorded and do nothing
    final = await runner.run(tenant, lambda uow: usecases.require_invoice(uow, invoice.invoice_id))
    assert final.state.value == "PAID"
    assert [(p.payment, p.amount) for p in final.payments] == [(capture.payment, 4758)]
