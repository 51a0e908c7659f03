"""Consumers: subscribe handlers to event types; effect + inbox in one tenant transaction.

For each delivery: parse the CloudEvents envelope, continue the producer's trace in a CONSUMER
span, open a transaction for the subject's tenant (so RLS applies), record `ce-id` in the inbox
and, the first time only, run the handler; commit, then ack. A failure is nacked after a backoff
(exponential, full jitter); the attempt that reaches `max_delivery_attempts` publishes the
message to the subscription's dead-letter topic and acks it (see ADR 0006 for why the consumer
does this rather than relying on the server alone). With ordering on, Pub/Sub hands over one
message per ordering key at a time, and the next only after this one is acked or nacked.

Batching (ADR 0017): messages handed over by the client's threads wait in a queue; a few worker
tasks each take what is queued (up to `batch_max`) and apply it in one transaction per tenant,
with one multi-row inbox insert. Under light load a batch is a single message, so batching adds
no wait; under load it amortises the transaction. If anything in a batch fails, the batch is
rolled back and its messages are applied one transaction each, so a failing handler only ever
retries its own message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
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
from services.chassis.events.subject import InvalidSubjectError, tenant_of_subject
from services.chassis.events.topology import Subscription

_log = logging.getLogger(__name__)
TRACER_NAME = tracecontext.TRACER_NAME

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
    # Messages applied in one transaction (per tenant); 1 = one transaction per message.
    batch_max: int = 100
    # Worker tasks applying batches concurrently (each holds one connection while it works).
    workers: int = 4

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


@dataclass(slots=True)
class _Delivery:
    """A message ready for its handler, with the span that covers its processing."""

    message: Any
    envelope: Envelope
    route: _Route
    attempt: int
    span: trace.Span
    tenant: str


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
        self._queue: asyncio.Queue[Any] | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._retries: set[asyncio.Task[None]] = set()
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
        if self._settings.batch_max < 1 or self._settings.workers < 1:
            raise ValueError("batch_max and workers must be positive")
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._workers = [
            asyncio.create_task(self._work(), name=f"{self._settings.name}-worker-{index}")
            for index in range(self._settings.workers)
        ]
        control = pubsub.flow_control(self._settings.max_outstanding)
        for _ in range(self._settings.streams):
            self._streams.append(
                self._subscriber.subscribe(
                    self._settings.subscription_path,
                    self._on_message,
                    flow_control=control,
                    # `_on_message` only queues the message: no thread pool needed.
                    scheduler=pubsub.inline_scheduler(),
                )
            )

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Stop pulling, let in-flight messages finish, and close the clients it created."""
        streams, self._streams = self._streams, []
        for stream in streams:
            stream.cancel()
        for stream in streams:
            await asyncio.to_thread(stream.result, timeout_s)
        if self._queue is not None:
            # Messages already handed over are finished (applied and acked, or nacked).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), timeout_s)
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        if self._retries:
            await asyncio.wait(list(self._retries), timeout=timeout_s)
        if self._owns_subscriber:
            self._subscriber.close()
        if self._owns_publisher:
            self._publisher.stop()

    def _on_message(self, message: Any) -> None:
        # Called on the client's threads: hand the message to the event loop and return.
        assert self._loop is not None
        assert self._queue is not None
        self._loop.call_soon_threadsafe(self._queue.put_nowait, message)

    async def _work(self) -> None:
        """Take what is queued (up to `batch_max`), apply it, repeat."""
        assert self._queue is not None
        queue = self._queue
        while True:
            messages = [await queue.get()]
            while len(messages) < self._settings.batch_max and not queue.empty():
                messages.append(queue.get_nowait())
            try:
                await self._process_batch(messages)
            except Exception:  # noqa: BLE001 - whatever it is, hand the messages back
                # A bug here, not in a handler: never leave messages leased until they expire.
                # (Nacking one that was acked already is harmless: the ack stands.)
                _log.exception("%s: processing a batch failed", self._settings.name)
                for message in messages:
                    message.nack()
            finally:
                for _ in messages:
                    queue.task_done()

    async def _process_batch(self, messages: list[Any]) -> None:
        ready: list[_Delivery] = []
        for message in messages:
            delivery = await self._prepare(message)
            if delivery is not None:
                ready.append(delivery)
        by_tenant: dict[str, list[_Delivery]] = {}
        for delivery in ready:
            by_tenant.setdefault(delivery.tenant, []).append(delivery)
        for tenant, deliveries in by_tenant.items():
            if len(deliveries) == 1:
                await self._deliver(deliveries[0])
            else:
                await self._deliver_batch(tenant, deliveries)

    async def _prepare(self, message: Any) -> _Delivery | None:
        """Parse and route `message`; None if it was settled here (ignored, held, malformed)."""
        attempt = int(message.delivery_attempt or 1)
        try:
            envelope = Envelope.from_message(message.data, dict(message.attributes))
        except MalformedEnvelopeError as error:
            # Never becomes valid: straight to the dead letters.
            await self._dead_letter(message, None, attempt, error)
            return None
        route = self._routes.get(envelope.type)
        if route is None:
            self.metrics.consumed("ignored", envelope.type)
            message.ack()
            return None
        try:
            tenant = tenant_of_subject(envelope.subject)
        except InvalidSubjectError as error:
            # No tenant to apply it for, now or later: straight to the dead letters.
            await self._dead_letter(message, envelope, attempt, error)
            return None
        if self._order_guard.blocks(envelope.subject, message.message_id):
            message.nack()
            return None
        span = self._start_span(envelope, attempt)
        return _Delivery(message, envelope, route, attempt, span, tenant)

    def _start_span(self, envelope: Envelope, attempt: int) -> trace.Span:
        return self._tracer.start_span(
            f"{envelope.type} process",
            context=tracecontext.extract(envelope.trace_carrier()),
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
        )

    async def _deliver(self, delivery: _Delivery) -> None:
        """Apply one message in its own transaction; ack, or retry / dead-letter it."""
        with trace.use_span(delivery.span, end_on_exit=True) as span:
            try:
                applied = await self._apply(delivery.route, delivery.envelope)
                if self._before_ack is not None:
                    await self._before_ack(delivery.envelope)
            except Exception as error:  # noqa: BLE001 - any handler failure is retried
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                await self._retry_or_dead_letter(
                    delivery.message, delivery.envelope, delivery.attempt, error
                )
                return
        self._settle(delivery, applied=applied)

    async def _deliver_batch(self, tenant: str, deliveries: list[_Delivery]) -> None:
        """Apply several messages of one tenant in one transaction; on any failure, one by one."""
        # A stable order of inbox keys, so concurrent batches never deadlock on them.
        deliveries.sort(key=lambda delivery: delivery.envelope.id)
        culprit: _Delivery | None = None
        try:
            async with self._database.tenant_transaction(tenant) as tx:
                fresh = await inbox.record_many(
                    tx, self._settings.name, [delivery.envelope for delivery in deliveries]
                )
                for delivery in deliveries:
                    if delivery.envelope.id in fresh:
                        culprit = delivery
                        with trace.use_span(delivery.span, end_on_exit=False):
                            event = delivery.route.event_type.FromString(delivery.envelope.data)
                            await delivery.route.handler(tx, event, delivery.envelope)
                culprit = None
        except Exception as error:  # noqa: BLE001 - rolled back: retry each on its own
            _log.info(
                "%s: a batch of %d failed (%r); applying its messages one by one",
                self._settings.name,
                len(deliveries),
                error,
            )
            for delivery in deliveries:
                if delivery is culprit:
                    # Its handler failed: that was this delivery's attempt (one per attempt).
                    with trace.use_span(delivery.span, end_on_exit=True) as span:
                        span.record_exception(error)
                        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                        await self._retry_or_dead_letter(
                            delivery.message, delivery.envelope, delivery.attempt, error
                        )
                else:
                    await self._deliver(delivery)
            return
        for delivery in deliveries:
            applied = delivery.envelope.id in fresh
            fresh.discard(delivery.envelope.id)  # a second copy in the batch is a duplicate
            with trace.use_span(delivery.span, end_on_exit=True) as span:
                if self._before_ack is not None:
                    try:
                        await self._before_ack(delivery.envelope)
                    except Exception as error:  # noqa: BLE001 - the effect is committed
                        span.record_exception(error)
                        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                        await self._retry_or_dead_letter(
                            delivery.message, delivery.envelope, delivery.attempt, error
                        )
                        continue
            self._settle(delivery, applied=applied)

    def _settle(self, delivery: _Delivery, *, applied: bool) -> None:
        envelope = delivery.envelope
        self._order_guard.clear(envelope.subject)
        delivery.message.ack()
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
        # The backoff runs in a task of its own: a worker goes on with other messages.
        retry = asyncio.create_task(
            self._nack_after(message, envelope, self._settings.backoff.delay(attempt))
        )
        self._retries.add(retry)
        retry.add_done_callback(self._retries.discard)

    async def _nack_after(self, message: Any, envelope: Envelope, delay_s: float) -> None:
        try:
            await asyncio.sleep(delay_s)
        finally:
            # Also when stopping: hand it back at once rather than leave it leased.
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
