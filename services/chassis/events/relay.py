"""The outbox relay: claims rows, publishes them with ordering key = subject, marks them.

One claim is one transaction: lock a batch (`outbox_store.claim`), publish it, wait for Pub/Sub
to accept it, mark what was accepted, commit. A crash anywhere before the commit leaves the rows
unpublished and they are published again later: delivery is at least once, and consumers drop
the copies through their inbox. Nothing is read past a cursor, so a row committed late by a
slow transaction is simply still unpublished at the next claim (no sequence-gap trap).

Waking up: `stage()` notifies `NOTIFY_CHANNEL` when its transaction commits, and a running
relay LISTENs on a connection of its own, so it claims as soon as something committed. Polling
stays as the safety net (every `poll_interval_s`, or `listen_poll_interval_s` while listening),
so a lost notification or a dropped listener costs latency, never events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from opentelemetry import trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider

from services.chassis.db.database import Database
from services.chassis.db.settings import libpq_conninfo
from services.chassis.events import outbox_store, pubsub, retention, tracecontext
from services.chassis.events.envelope import Envelope
from services.chassis.events.metrics import RelayMetrics
from services.chassis.events.outbox import NOTIFY_CHANNEL
from services.chassis.events.outbox_store import OutboxRecord
from services.chassis.events.topology import events_topic
from services.chassis.worker import WorkerSettings, run_worker

_log = logging.getLogger(__name__)

AfterPublish = Callable[[Sequence[OutboxRecord]], Awaitable[None]]
_ERROR_PAUSE_S = 1.0


class Relay:
    """Publishes one service's outbox to its topic; run several for availability."""

    def __init__(
        self,
        database: Database,
        *,
        topic_path: str,
        publisher: Any | None = None,
        batch_size: int = 1000,
        poll_interval_s: float = 0.05,
        backlog_interval_s: float = 1.0,
        publish_timeout_s: float = 30.0,
        meter_provider: MeterProvider | None = None,
        after_publish: AfterPublish | None = None,
        listen: bool = True,
        listen_poll_interval_s: float = 1.0,
        outbox_retention: timedelta | None = None,
        prune_interval_s: float = 60.0,
        min_round_interval_s: float = 0.05,
        gather_s: float = 0.01,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        self._database = database
        self._topic = topic_path
        self._owns_publisher = publisher is None
        # A `pubsub.batch_publisher()`; the relay's own is made on the loop that runs it.
        self._publisher = publisher
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._backlog_interval_s = backlog_interval_s
        self._publish_timeout_s = publish_timeout_s
        self._after_publish = after_publish
        self._listen = listen
        self._listen_poll_interval_s = listen_poll_interval_s
        self._wake = asyncio.Event()
        self._listening = False
        self._outbox_retention = outbox_retention
        self._prune_interval_s = prune_interval_s
        self._min_round_interval_s = min_round_interval_s
        self._gather_s = gather_s
        self.metrics = RelayMetrics(topic_path, meter_provider)
        self._tracer = trace.get_tracer(tracecontext.TRACER_NAME, tracer_provider=tracer_provider)
        self._topic_id = topic_path.rsplit("/", 1)[-1]
        self.rounds = 0
        """Claims that published something (benchmarks divide CPU by it)."""

    async def publish_once(self) -> int:
        """Claim one batch, publish it and mark it; returns how many rows were claimed."""
        async with self._database.transaction() as session:
            records = await outbox_store.claim(session, self._batch_size)
            if not records:
                return 0
            published = await self._publish(records)
            if self._after_publish is not None:
                await self._after_publish(records)
            await outbox_store.mark_published(session, [r.position for r in published])
        self.rounds += 1
        self._record_lag(published)
        return len(records)

    async def drain(self) -> int:
        """Publish until nothing is left to claim; returns how many rows were published."""
        total = 0
        while claimed := await self.publish_once():
            total += claimed
        return total

    async def refresh_backlog(self) -> None:
        """Read the backlog into the `outbox.backlog` / `outbox.oldest_age` gauges."""
        async with self._database.transaction() as session:
            reading = await outbox_store.backlog(session)
        self.metrics.reading.count = reading.count
        self.metrics.reading.oldest_age_s = reading.oldest_age_s

    async def prune(self) -> int:
        """Delete rows published longer ago than `outbox_retention` (none if it is unset)."""
        if self._outbox_retention is None:
            return 0
        deleted = await retention.prune_outbox_fully(self._database, self._outbox_retention)
        if deleted:
            self.metrics.pruned.add(deleted, self.metrics.attributes)
        return deleted

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until `stop` is set, then flush what is left (graceful shutdown)."""
        listener = asyncio.create_task(self._listen_loop(stop)) if self._listen else None
        next_reading = 0.0
        next_prune = 0.0
        round_started = -self._min_round_interval_s
        try:
            while not stop.is_set():
                # A round costs several milliseconds of CPU whatever its size: under a stream
                # of small commits, let a few gather rather than claim each alone. After an
                # idle spell the first commit still goes out at once.
                spacing = round_started + self._min_round_interval_s - time.monotonic()
                if spacing > 0:
                    await _wait(stop, spacing)
                round_started = time.monotonic()
                # Cleared before the claim: a commit during the round triggers the next one.
                self._wake.clear()
                try:
                    if time.monotonic() >= next_reading:
                        await self.refresh_backlog()
                        next_reading = time.monotonic() + self._backlog_interval_s
                    if self._outbox_retention is not None and time.monotonic() >= next_prune:
                        await self.prune()
                        next_prune = time.monotonic() + self._prune_interval_s
                    claimed = await self.publish_once()
                except Exception:  # noqa: BLE001 - any failure: log, pause, retry
                    # The database or Pub/Sub is away: nothing was marked, so nothing is lost.
                    _log.exception("outbox relay round failed; retrying")
                    await _wait(stop, _ERROR_PAUSE_S)
                    continue
                if claimed < self._batch_size and await self._idle(stop):
                    # Woken by a commit: give the commits arriving with it (the other
                    # transactions of one request, other requests) a moment to share the round.
                    await _wait(stop, self._gather_s)
        finally:
            if listener is not None:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.drain()

    async def _idle(self, stop: asyncio.Event) -> bool:
        """Wait for a notification, `stop`, or the poll interval, whichever comes first;
        True if a notification came."""
        interval = self._listen_poll_interval_s if self._listening else self._poll_interval_s
        waits = [asyncio.create_task(stop.wait()), asyncio.create_task(self._wake.wait())]
        try:
            await asyncio.wait(waits, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
        return self._wake.is_set() and not stop.is_set()

    async def _listen_loop(self, stop: asyncio.Event) -> None:
        """LISTEN on a dedicated connection and wake the loop on each notification.

        On any failure, fall back to polling and reconnect after a pause.
        """
        conninfo = libpq_conninfo(self._database.engine.url)
        while not stop.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(
                    conninfo, autocommit=True
                ) as connection:
                    await connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self._listening = True
                    # Anything committed before LISTEN took effect is caught by this round.
                    self._wake.set()
                    async for _ in connection.notifies():
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - polling covers for the listener
                _log.warning("outbox relay: LISTEN failed; polling meanwhile", exc_info=True)
            finally:
                self._listening = False
            await _wait(stop, _ERROR_PAUSE_S)

    def close(self) -> None:
        """Let go of the publisher client if the relay created it (`aclose` also closes its
        channel at once; nothing is buffered in it either way)."""
        if self._owns_publisher:
            self._publisher = None

    async def aclose(self) -> None:
        """Close the publisher client's channel if the relay created it."""
        if self._owns_publisher and self._publisher is not None:
            publisher, self._publisher = self._publisher, None
            await publisher.transport.close()

    async def _publish(self, records: Sequence[OutboxRecord]) -> list[OutboxRecord]:
        """Publish every record; return those Pub/Sub accepted, as a per-subject prefix.

        One Publish request per subject (Pub/Sub takes one ordering key per request), all
        subjects at once; a subject's requests (more than one only beyond Pub/Sub's request
        limits) go one after the other, and after a failed one its later rows wait for the
        next round, so a subject that cannot be published holds back only itself.
        """
        by_subject: dict[str, list[_Outgoing]] = {}
        for record in records:
            by_subject.setdefault(record.envelope.subject, []).append(self._outgoing(record))
        if len(by_subject) == 1:
            [(subject, outgoing)] = by_subject.items()
            published = await self._publish_subject(subject, outgoing)
        else:
            accepted = await asyncio.gather(
                *(self._publish_subject(subject, items) for subject, items in by_subject.items())
            )
            published = [record for records in accepted for record in records]
            published.sort(key=lambda record: record.position)
        return published

    async def _publish_subject(
        self, subject: str, outgoing: Sequence[_Outgoing]
    ) -> list[OutboxRecord]:
        """One subject's rows, in order; stop at the first failed request (its prefix counts)."""
        published: list[OutboxRecord] = []
        for first, last in _chunks(outgoing):
            chunk = outgoing[first:last]
            try:
                ids = await self._request(chunk)
            except Exception as error:  # noqa: BLE001 - the rows stay unmarked, retried later
                self._on_failure(subject, outgoing[first:], error)
                break
            published += _accepted(chunk, ids)
        return published

    async def _request(self, chunk: Sequence[_Outgoing]) -> list[str]:
        if self._publisher is None:
            self._publisher = pubsub.batch_publisher()
        messages = [item.message for item in chunk]
        return await pubsub.publish_request(
            self._publisher, self._topic, messages, self._publish_timeout_s
        )

    def _outgoing(self, record: OutboxRecord) -> _Outgoing:
        envelope = record.envelope
        attributes = envelope.attributes()
        span = self._producer_span(envelope, attributes)
        raw = pubsub.message(envelope.data, envelope.subject, attributes)
        return _Outgoing(record, raw, pubsub.message_size(raw), span)

    def _producer_span(self, envelope: Envelope, attributes: dict[str, str]) -> Span | None:
        """A PRODUCER span under the staging RPC's span (the outbox row's traceparent), whose
        context replaces it in the message: the consumer's span becomes its child. Events
        staged outside any trace are published without one."""
        if not envelope.traceparent:
            return None
        span = self._tracer.start_span(
            f"{self._topic_id} publish",
            context=tracecontext.extract(envelope.trace_carrier()),
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "gcp_pubsub",
                "messaging.operation.type": "send",
                "messaging.destination.name": self._topic_id,
                "messaging.gcp_pubsub.message.ordering_key": envelope.subject,
                "cloudevents.event_id": envelope.id,
                "cloudevents.event_type": envelope.type,
            },
        )
        attributes.update(tracecontext.capture(trace.set_span_in_context(span)))
        return span

    def _on_failure(
        self, subject: str, unpublished: Sequence[_Outgoing], error: BaseException
    ) -> None:
        # The rows stay unmarked and go out, in order, in a later round.
        _log.warning("publish failed for %s (%d rows left): %s", subject, len(unpublished), error)
        self.metrics.publish_failures.add(len(unpublished), self.metrics.attributes)
        for item in unpublished:
            if item.span is not None:
                item.span.record_exception(error)
                item.span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                item.span.end()

    def _record_lag(self, published: Sequence[OutboxRecord]) -> None:
        if not published:
            return
        now = datetime.now(UTC)
        attributes = self.metrics.attributes
        for record in published:
            self.metrics.lag.record((now - record.created_at).total_seconds(), attributes)
        self.metrics.published.add(len(published), attributes)


@dataclass(slots=True)
class _Outgoing:
    """A claimed row on its way out: the message, its size, its PRODUCER span (if traced)."""

    record: OutboxRecord
    message: Any
    size: int
    span: Span | None


def _chunks(outgoing: Sequence[_Outgoing]) -> list[tuple[int, int]]:
    """`[first, last)` index ranges within Pub/Sub's per-request limits, in order."""
    ranges: list[tuple[int, int]] = []
    first, size = 0, 0
    for index, item in enumerate(outgoing):
        full = index - first >= pubsub.MAX_REQUEST_MESSAGES
        if index > first and (full or size + item.size > pubsub.MAX_REQUEST_BYTES):
            ranges.append((first, index))
            first, size = index, 0
        size += item.size
    if first < len(outgoing):
        ranges.append((first, len(outgoing)))
    return ranges


def _accepted(chunk: Sequence[_Outgoing], ids: Sequence[str]) -> list[OutboxRecord]:
    """The chunk's records, their PRODUCER spans ended with Pub/Sub's message ids."""
    for item, message_id in zip(chunk, ids, strict=True):
        if item.span is not None:
            item.span.set_attribute("messaging.message.id", message_id)
            item.span.end()
    return [item.record for item in chunk]


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def run_relay(service: str, database: Database, worker: WorkerSettings) -> None:
    """`python -m services.<service> relay`: publish the service's outbox to its events
    topic until SIGTERM, then flush (PUBSUB_EMULATOR_HOST / PUBSUB_PROJECT_ID select the
    server); health on the worker's port."""
    publisher = Relay(
        database, topic_path=pubsub.topic_path(pubsub.project_id(), events_topic(service))
    )
    try:
        await run_worker(f"{service}-relay", worker, publisher.run)
    finally:
        await publisher.aclose()
