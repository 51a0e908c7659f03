"""Events fixtures: the real Pub/Sub API server (pstest build), a migrated service database,
a fresh topology per test, and a consumer that records its effects in a tenant table."""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from google.protobuf.wrappers_pb2 import Int64Value
from opentelemetry import trace

from services.chassis.db.database import Database
from services.chassis.db.migrations import upgrade
from services.chassis.db.settings import libpq_conninfo
from services.chassis.events import pubsub
from services.chassis.events.apply import apply_topology
from services.chassis.events.backoff import Backoff
from services.chassis.events.consumer import Consumer, ConsumerSettings
from services.chassis.events.emulator import EMULATOR_HOST_ENV, PubSubEmulator
from services.chassis.events.outbox import stage
from services.chassis.events.relay import Relay
from services.chassis.events.topology import RetryPolicy, Subscription, Topic, Topology

MIGRATIONS = Path(__file__).parent / "migrations"
PROJECT = "commerce-test"
SOURCE = "//commerce-mesh/tests"
TENANT = "acme"


@pytest.fixture(scope="session")
def pubsub_emulator():
    """One emulator process for the session; clients find it through PUBSUB_EMULATOR_HOST."""
    previous = os.environ.get(EMULATOR_HOST_ENV)
    with PubSubEmulator() as emulator:
        os.environ[EMULATOR_HOST_ENV] = emulator.host
        try:
            yield emulator
        finally:
            if previous is None:
                os.environ.pop(EMULATOR_HOST_ENV, None)
            else:
                os.environ[EMULATOR_HOST_ENV] = previous


@pytest.fixture(scope="module")
async def events_db(service_database):
    """The module's service database with the outbox, inbox and `effects` tables."""
    await upgrade(service_database.owner_url, MIGRATIONS)
    return service_database


@pytest.fixture(autouse=True)
async def _empty_event_tables(request):
    """Tests of one module share its database; each starts with empty tables."""
    if "events_db" not in request.fixturenames:
        yield
        return
    db = request.getfixturevalue("events_db")
    async with await psycopg.AsyncConnection.connect(
        libpq_conninfo(db.owner_url), autocommit=True
    ) as conn:
        await conn.execute("TRUNCATE outbox, inbox, effects RESTART IDENTITY")
    yield


@pytest.fixture
async def relay_db(events_db):
    """A second pool on the service database, as a separate relay process would have."""
    database = Database.connect(events_db.app_url, pool_size=4, max_overflow=4)
    yield database
    await database.dispose()


@pytest.fixture
async def writers_db(events_db):
    """A pool for concurrent writers (the module's own pool has two connections)."""
    database = Database.connect(events_db.app_url, pool_size=20, max_overflow=10)
    yield database
    await database.dispose()


class Relays:
    """Relays running on the test topic as tasks of the test's event loop."""

    def __init__(self, database, topic_path):
        self._database, self._topic_path = database, topic_path
        self._running = []
        self._stop = asyncio.Event()

    def __call__(self, *, database=None, **options):
        relay = Relay(database or self._database, topic_path=self._topic_path, **options)
        self._running.append((relay, asyncio.create_task(relay.run(self._stop))))
        return relay

    async def stop(self):
        """Stop every relay (each flushes its outbox first) and close its publisher."""
        self._stop.set()
        running, self._running = self._running, []
        for relay, task in running:
            await task
            await relay.aclose()


@pytest.fixture
async def running_relay(relay_db, topology):
    """`running_relay(**options)` starts a relay; all are stopped after the test."""
    relays = Relays(relay_db, topology.topic_path)
    yield relays
    await relays.stop()


@dataclass(frozen=True)
class TopologyUnderTest:
    topology: Topology
    topic: str
    subscription: Subscription

    @property
    def topic_path(self) -> str:
        return pubsub.topic_path(PROJECT, self.topic)

    @property
    def subscription_path(self) -> str:
        return pubsub.subscription_path(PROJECT, self.subscription.name)

    @property
    def dead_letter_subscription_path(self) -> str:
        return pubsub.subscription_path(PROJECT, self.subscription.dead_letter_subscription)

    def consumer_settings(self, *, streams: int = 4) -> ConsumerSettings:
        settings = ConsumerSettings.from_topology(self.subscription, PROJECT, streams=streams)
        # Short backoffs keep the tests fast; the policy itself is what the tests prove.
        return ConsumerSettings(
            name=settings.name,
            subscription_path=settings.subscription_path,
            dead_letter_topic_path=settings.dead_letter_topic_path,
            max_delivery_attempts=settings.max_delivery_attempts,
            backoff=Backoff(minimum_s=0.02, maximum_s=0.1),
            streams=streams,
        )


@pytest.fixture
def clients(pubsub_emulator):
    publisher, subscriber = pubsub.ordered_publisher(), pubsub.subscriber()
    yield publisher, subscriber
    publisher.stop()
    subscriber.close()


@pytest.fixture
def topology(clients):
    """A topic and an ordered subscription (5 attempts, then dead letter) unique to the test."""
    publisher, subscriber = clients
    stem = f"t{secrets.token_hex(4)}"
    topic = f"{stem}-events"
    subscription = Subscription(
        name=f"{stem}-consumer",
        topic=topic,
        ack_deadline_s=10,
        max_delivery_attempts=5,
        retry=RetryPolicy(minimum_backoff_s=0.02, maximum_backoff_s=0.1),
    )
    declared = Topology(topics=(Topic(topic),), subscriptions=(subscription,))
    apply_topology(declared, PROJECT, publisher, subscriber)
    return TopologyUnderTest(declared, topic, subscription)


class EventsKit:
    """Helpers the events tests share (tests are not a package, so they come as a fixture)."""

    TENANT = TENANT
    SOURCE = SOURCE
    PROJECT = PROJECT

    def __init__(self, db):
        self.db = db

    async def stage_sequence(
        self, subject, sequences, *, tenant=TENANT, database=None, per_transaction=1
    ):
        """Stage one Int64Value event per sequence number, `per_transaction` per transaction."""
        ids, sequences = [], list(sequences)
        for start in range(0, len(sequences), per_transaction):
            async with (database or self.db.database).tenant_transaction(tenant) as session:
                for sequence in sequences[start : start + per_transaction]:
                    event = Int64Value(value=sequence)
                    ids.append(await stage(session, event, subject=subject, source=SOURCE))
        return ids

    @staticmethod
    async def stage_in(session, subject, sequence):
        """Stage one Int64Value event in an open transaction; returns [its ce-id]."""
        return [await stage(session, Int64Value(value=sequence), subject=subject, source=SOURCE)]

    @staticmethod
    async def record_effect(session, event, envelope):
        """The test consumers' effect: one `effects` row per applied event, in its transaction."""
        await record_effect(session, event, envelope)

    async def effects(self, tenant=TENANT):
        """The tenant's effects in commit (id) order: (event_id, subject, sequence, trace_id)."""
        return await self.query(
            "SELECT event_id, subject, sequence, trace_id FROM effects ORDER BY id", tenant=tenant
        )

    async def query(self, statement, params=(), *, tenant=None):
        """Run SQL as the database owner, as `tenant` if given (`effects` is under RLS)."""
        async with await psycopg.AsyncConnection.connect(libpq_conninfo(self.db.owner_url)) as conn:
            if tenant is not None:
                await conn.execute("SELECT set_config('app.tenant_id', %s, false)", [tenant])
            cursor = await conn.execute(statement, params)
            return await cursor.fetchall()

    @staticmethod
    async def wait_until(predicate, *, timeout_s=60.0, interval_s=0.05):
        """Await `predicate()` until truthy; fail with its last value after the timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = await predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"condition not met within {timeout_s}s (last value: {value!r})")
            await asyncio.sleep(interval_s)


@pytest.fixture
def kit(events_db):
    return EventsKit(events_db)


async def record_effect(session, event, envelope):
    """One `effects` row per applied event, written in the consumer's transaction."""
    span = trace.get_current_span().get_span_context()
    await session.execute(
        sa.text(
            "INSERT INTO effects (tenant_id, consumer, event_id, subject, sequence, trace_id)"
            " VALUES (current_setting('app.tenant_id'), 'c', :event_id, :subject, :sequence,"
            " :trace_id)"
        ),
        {
            "event_id": envelope.id,
            "subject": envelope.subject,
            "sequence": event.value,
            "trace_id": format(span.trace_id, "032x") if span.is_valid else None,
        },
    )


class Tap:
    """Every message published to a topic, as a plain ordered subscription receives it."""

    def __init__(self, subscriber, path):
        self._subscriber, self.path = subscriber, path
        self._lock = threading.Lock()
        self.received = []  # (ce-id, subject, ordering key)
        self._future = None

    def start(self):
        self._future = self._subscriber.subscribe(self.path, self._on_message)

    def _on_message(self, message):
        with self._lock:
            attributes = message.attributes
            self.received.append(
                (attributes["ce-id"], attributes["ce-subject"], message.ordering_key)
            )
        message.ack()

    def snapshot(self):
        with self._lock:
            return list(self.received)

    def stop(self):
        if self._future is not None:
            self._future.cancel()
            self._future.result(timeout=30)


@pytest.fixture
def tap(clients, topology):
    """A second, ordered subscription on the test topic that records every message."""
    _, subscriber = clients
    path = pubsub.subscription_path(PROJECT, f"{topology.subscription.name}-tap")
    subscriber.create_subscription(
        request={"name": path, "topic": topology.topic_path, "enable_message_ordering": True}
    )
    recorder = Tap(subscriber, path)
    recorder.start()
    yield recorder
    recorder.stop()


@pytest.fixture
async def consumer_db(events_db):
    """The consumers' pool (a consumer service would size it for its streams)."""
    database = Database.connect(events_db.app_url, pool_size=8, max_overflow=4)
    yield database
    await database.dispose()


@pytest.fixture
async def consumers(consumer_db, topology):
    """Start consumers on the test subscription (effects go to `effects`); stopped after."""
    started = []

    async def start(*, handler=record_effect, streams=4, database=None, **options):
        consumer = Consumer(
            database or consumer_db, topology.consumer_settings(streams=streams), **options
        )
        consumer.handle(Int64Value, handler)
        await consumer.start()
        started.append(consumer)
        return consumer

    yield start
    for consumer in started:
        await consumer.stop()
