"""Consumers: subscribe handlers to event types; effect + inbox in one tenant transaction.

For each delivery: parse the CloudEvents envelope, continue the producer's trace in a CONSUMER
span, open a transaction for the subject's tenant (so RLS applies), record `ce-id` in the inbox
and, the first time only, run the handler; commit, then ack. A failure is nacked after a backoff
(exponential, full jitter); the attempt that reaches `max_delivery_attempts` publishes the
message to the subscription's dead-letter topic and acks it (see ADR 0006 for why the consumer
does this rather than relying on the server alone). With ordering on, Pub/Sub hands over one
message per ordering key at a time, and the next only after this one is acked or nacked.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from google.protobuf.message import Message
from opentelemetry import trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider
from sqlalchemy.ext.asyncio import AsyncSession

from services.chassis.db.database import Database
from services.chassis.events import dead_letter, inbox, pubsub, tracecontext
from services.chassis.events.backoff import Backoff
from services.chassis.events.envelope import Envelope, MalformedEnvelopeError
from services.chassis.events.metrics import ConsumerMetrics
from services.chassis.events.subject import tenant_of_subject
from services.chassis.events.topology import Subscription

_log = logging.getLogger(__name__)
TRACER_NAME = "commerce.events"

EventT = TypeVar("EventT", bound=Message)
Handler = Callable[[AsyncSession, Any, Envelope], Awaitable[None]]
BeforeAck = Callable[[Envelope], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ConsumerSettings:
    """Where a consumer reads, where its dead letters go, and how it retries."""

    name: str
    subscription_path: str
    dead_letter_topic_path: str
    max_delivery_attempts: int = 5
    backoff: Backoff = field(default_factory=Backoff)
    streams: int = 1
    max_outstanding: int = 100

    @classmethod
    def from_topology(
        cls, subscription: Subscription, project: str, *, streams: int = 1
    ) -> ConsumerSettings:
        """Settings for a declared subscription (its retry policy becomes the backoff)."""
        return cls(
            name=subscription.name,
            subscription_path=pubsub.subscription_path(project, subscription.name),
            dead_letter_topic_path=pubsub.topic_path(project, subscription.dead_letter_topic),
            max_delivery_attempts=subscription.max_delivery_attempts,
            backoff=Backoff(
                minimum_s=subscription.retry.minimum_backoff_s,
                maximum_s=subscription.retry.maximum_backoff_s,
            ),
            streams=streams,
        )


@dataclass(frozen=True, slots=True)
class _Route:
    event_type: type[Message]
    handler: Handler


class Consumer:
    """One subscription's handlers. `start()` opens the streams; `stop()` drains them."""

    def __init__(
        self,
        database: Database,
        settings: ConsumerSettings,
        *,
        subscriber: Any | None = None,
        publisher: Any | None = None,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        before_ack: BeforeAck | None = None,
    ) -> None:
        self._database = database
        self._settings = settings
        self._owns_subscriber = subscriber is None
        self._subscriber = subscriber if subscriber is not None else pubsub.subscriber()
        self._owns_publisher = publisher is None
        self._publisher = publisher if publisher is not None else pubsub.ordered_publisher()
        self._tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)
        self.metrics = ConsumerMetrics(settings.name, meter_provider)
        self._before_ack = before_ack
        self._routes: dict[str, _Route] = {}
        self._streams: list[Any] = []
        # Added on the client's threads, removed on the loop's: guarded by a lock.
        self._inflight: set[concurrent.futures.Future[None]] = set()
        self._inflight_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._order_guard = _OrderGuard()

    def handle(
        self,
        event_type: type[EventT],
        handler: Callable[[AsyncSession, EventT, Envelope], Awaitable[None]],
    ) -> None:
        """Apply `handler(session, event, envelope)` to every event of `event_type`."""
        name = str(event_type.DESCRIPTOR.full_name)
        if name in self._routes:
            raise ValueError(f"{name} already has a handler on {self._settings.name}")
        self._routes[name] = _Route(event_type, handler)

    async def start(self) -> None:
        """Open `settings.streams` streaming pulls; messages are handled on this event loop."""
        if not self._routes:
            raise ValueError(f"consumer {self._settings.name} has no handlers")
        self._loop = asyncio.get_running_loop()
        control = pubsub.flow_control(self._settings.max_outstanding)
        for _ in range(self._settings.streams):
            self._streams.append(
                self._subscriber.subscribe(
                    self._settings.subscription_path, self._on_message, flow_control=control
                )
            )

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Stop pulling, let in-flight messages finish, and close the clients it created."""
        streams, self._streams = self._streams, []
        for stream in streams:
            stream.cancel()
        for stream in streams:
            await asyncio.to_thread(stream.result, timeout_s)
        with self._inflight_lock:
            inflight = [asyncio.wrap_future(future) for future in self._inflight]
        if inflight:
            await asyncio.wait(inflight, timeout=timeout_s)
        if self._owns_subscriber:
            self._subscriber.close()
        if self._owns_publisher:
            self._publisher.stop()

    def _on_message(self, message: Any) -> None:
        # Called on the client's threads: hand the message to the event loop and return.
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(self._process_safely(message), self._loop)
        with self._inflight_lock:
            self._inflight.add(future)
        future.add_done_callback(self._forget)

    def _forget(self, future: concurrent.futures.Future[None]) -> None:
        with self._inflight_lock:
            self._inflight.discard(future)

    async def _process_safely(self, message: Any) -> None:
        try:
            await self._process(message)
        except Exception:  # noqa: BLE001 - whatever it is, hand the message back
            # A bug here, not in a handler: never leave the message leased until it expires.
            _log.exception("%s: processing a message failed", self._settings.name)
            message.nack()

    async def _process(self, message: Any) -> None:
        attempt = int(message.delivery_attempt or 1)
        try:
            envelope = Envelope.from_message(message.data, dict(message.attributes))
        except MalformedEnvelopeError as error:
            # Never becomes valid: straight to the dead letters.
            await self._dead_letter(message, None, attempt, error)
            return
        route = self._routes.get(envelope.type)
        if route is None:
            self.metrics.consumed("ignored", envelope.type)
            message.ack()
            return
        if self._order_guard.blocks(envelope.subject, message.message_id):
            message.nack()
            return
        await self._deliver(message, envelope, route, attempt)

    async def _deliver(self, message: Any, envelope: Envelope, route: _Route, attempt: int) -> None:
        parent = tracecontext.extract(envelope.trace_carrier())
        with self._tracer.start_as_current_span(
            f"{envelope.type} process",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "gcp_pubsub",
                "messaging.operation.type": "process",
                "messaging.destination.subscription.name": self._settings.name,
                "messaging.message.id": envelope.id,
                "messaging.gcp_pubsub.message.delivery_attempt": attempt,
                "cloudevents.event_type": envelope.type,
                "cloudevents.event_subject": envelope.subject,
            },
        ) as span:
            try:
                applied = await self._apply(route, envelope)
                if self._before_ack is not None:
                    await self._before_ack(envelope)
            except Exception as error:  # noqa: BLE001 - any handler failure is retried
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                await self._retry_or_dead_letter(message, envelope, attempt, error)
                return
        self._order_guard.clear(envelope.subject)
        message.ack()
        self.metrics.consumed("applied" if applied else "duplicate", envelope.type)
        if applied:
            lag = (datetime.now(UTC) - envelope.time).total_seconds()
            self.metrics.observe_lag(lag, envelope.type)

    async def _apply(self, route: _Route, envelope: Envelope) -> bool:
        async with self._database.tenant_transaction(tenant_of_subject(envelope.subject)) as tx:
            if not await inbox.record(tx, self._settings.name, envelope):
                return False
            await route.handler(tx, route.event_type.FromString(envelope.data), envelope)
        return True

    async def _retry_or_dead_letter(
        self, message: Any, envelope: Envelope, attempt: int, error: BaseException
    ) -> None:
        if attempt >= self._settings.max_delivery_attempts:
            await self._dead_letter(message, envelope, attempt, error)
            return
        _log.warning(
            "%s: %s %s failed (attempt %d): %r",
            self._settings.name,
            envelope.type,
            envelope.id,
            attempt,
            error,
        )
        self._order_guard.hold(envelope.subject, message.message_id, self._settings.backoff)
        await asyncio.sleep(self._settings.backoff.delay(attempt))
        message.nack()
        self.metrics.consumed("retried", envelope.type)

    async def _dead_letter(
        self, message: Any, envelope: Envelope | None, attempt: int, error: BaseException
    ) -> None:
        event_type = envelope.type if envelope else "unknown"
        try:
            await dead_letter.publish(
                self._publisher,
                self._settings.dead_letter_topic_path,
                message,
                subscription=self._settings.name,
                attempts=attempt,
                error=error,
            )
        except Exception:  # noqa: BLE001 - not dead-lettered: Pub/Sub redelivers it
            _log.exception("%s: dead-lettering %s failed", self._settings.name, event_type)
            message.nack()
            return
        _log.error(
            "%s: dead-lettered %s after %d attempts: %r",
            self._settings.name,
            event_type,
            attempt,
            error,
        )
        if envelope is not None:
            self._order_guard.clear(envelope.subject)
        message.ack()
        self.metrics.consumed("dead_lettered", event_type)


class _OrderGuard:
    """Keeps a subject's later messages back while an earlier one waits for redelivery.

    Real Pub/Sub may already have handed this client later messages of an ordering key when an
    earlier one is nacked; the client would then release them before the redelivery. They are
    nacked here instead (Pub/Sub redelivers them after the failed one). A hold expires after
    the longest backoff, in case the redelivery goes to another process.
    """

    def __init__(self) -> None:
        self._held: dict[str, tuple[str, float]] = {}

    def hold(self, subject: str, message_id: str, backoff: Backoff) -> None:
        self._held[subject] = (message_id, time.monotonic() + 2 * backoff.maximum_s)

    def clear(self, subject: str) -> None:
        self._held.pop(subject, None)

    def blocks(self, subject: str, message_id: str) -> bool:
        held = self._held.get(subject)
        if held is None or held[0] == message_id:
            return False
        if time.monotonic() > held[1]:
            del self._held[subject]
            return False
        return True
