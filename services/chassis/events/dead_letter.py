"""Dead letters: how a consumer files one, and how an operator lists and replays them.

A dead letter keeps the original data and attributes and adds why it was filed:
`dead-letter-subscription`, `dead-letter-attempts`, `dead-letter-error`, `dead-letter-time`,
`dead-letter-ordering-key`. Replay republishes it, without those, to the topic it came from,
with its original ordering key; consumers that applied it already drop it through their inbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opentelemetry.metrics import MeterProvider

from services.chassis.events import pubsub
from services.chassis.events.envelope import format_time
from services.chassis.events.metrics import DeadLetterMetrics
from services.chassis.events.topology import DEAD_LETTER_SUFFIX

_log = logging.getLogger(__name__)

PREFIX = "dead-letter-"
_ERROR_LIMIT = 500
_PULL_BATCH = 100
_PULL_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A dead-lettered message as the operator sees it."""

    message_id: str
    event_id: str
    event_type: str
    subject: str
    subscription: str
    attempts: str
    error: str
    dead_lettered_at: str


async def publish(
    publisher: Any,
    topic_path: str,
    message: Any,
    *,
    subscription: str,
    attempts: int,
    error: BaseException,
) -> str:
    """File `message` (as received) on the dead-letter topic; returns the new message id."""
    attributes = dict(message.attributes)
    attributes.update(
        {
            f"{PREFIX}subscription": subscription,
            f"{PREFIX}attempts": str(attempts),
            f"{PREFIX}error": f"{type(error).__name__}: {error}"[:_ERROR_LIMIT],
            f"{PREFIX}time": format_time(datetime.now(UTC)),
            f"{PREFIX}ordering-key": message.ordering_key or "",
        }
    )
    # No ordering key: a failed dead-letter publish must not pause other subjects.
    return await pubsub.wait_published(publisher.publish(topic_path, message.data, **attributes))


def describe(received: Any) -> DeadLetter:
    """An operator's view of one pulled dead letter."""
    message = received.message
    attributes: Mapping[str, str] = message.attributes
    return DeadLetter(
        message_id=message.message_id,
        event_id=attributes.get("ce-id", ""),
        event_type=attributes.get("ce-type", ""),
        subject=attributes.get("ce-subject", ""),
        subscription=attributes.get(f"{PREFIX}subscription", ""),
        attempts=attributes.get(f"{PREFIX}attempts", ""),
        error=attributes.get(f"{PREFIX}error", ""),
        dead_lettered_at=attributes.get(f"{PREFIX}time", ""),
    )


def list_dead_letters(subscriber: Any, subscription_path: str, limit: int) -> list[DeadLetter]:
    """Pull up to `limit` dead letters, then hand them straight back (nothing is removed)."""
    received = _pull(subscriber, subscription_path, limit)
    _release(subscriber, subscription_path, [r.ack_id for r in received])
    return [describe(r) for r in received]


def count_dead_letters(subscriber: Any, subscription_path: str, limit: int) -> int:
    """How many dead letters wait (at most `limit`); they are handed straight back."""
    received = _pull(subscriber, subscription_path, limit)
    _release(subscriber, subscription_path, [r.ack_id for r in received])
    return len(received)


class DeadLetterMonitor:
    """Reads the depth of consumers' dead-letter subscriptions into `events.dead_letter.depth`.

    Pub/Sub has no "count" call, so the monitor pulls (up to `limit`) and hands the messages
    straight back; on GCP, Cloud Monitoring's `num_undelivered_messages` of the same
    subscriptions is the cheaper source and needs no monitor (ADR 0017).
    """

    def __init__(
        self,
        subscriber: Any,
        project: str,
        consumers: list[str],
        *,
        limit: int = 1000,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self._subscriber = subscriber
        self._paths = {
            name: pubsub.subscription_path(project, f"{name}{DEAD_LETTER_SUFFIX}")
            for name in consumers
        }
        self._limit = limit
        self.metrics = DeadLetterMetrics(meter_provider)

    def refresh(self) -> dict[str, int]:
        """Count every consumer's dead letters now (blocking); returns the readings."""
        for name, path in self._paths.items():
            self.metrics.depth[name] = count_dead_letters(self._subscriber, path, self._limit)
        return dict(self.metrics.depth)

    async def run(self, stop: asyncio.Event, interval_s: float = 60.0) -> None:
        """Refresh every `interval_s` until `stop` is set."""
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.refresh)
            except Exception:  # noqa: BLE001 - a missed reading is not worth a crash
                _log.warning("reading dead-letter depth failed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)


def replay(
    subscriber: Any,
    publisher: Any,
    subscription_path: str,
    topic_path: str,
    *,
    limit: int,
    progress: Callable[[int], object] | None = None,
) -> int:
    """Republish up to `limit` dead letters to `topic_path`, acking each once republished.

    A crash between republish and ack replays that message again later: harmless, consumers
    apply each `ce-id` once. Returns how many were replayed.
    """
    replayed = 0
    while replayed < limit:
        batch = _pull(subscriber, subscription_path, min(_PULL_BATCH, limit - replayed))
        if not batch:
            break
        futures = [_republish(publisher, topic_path, received.message) for received in batch]
        for future in futures:
            future.result(timeout=_PULL_TIMEOUT_S * 3)
        subscriber.acknowledge(
            request={"subscription": subscription_path, "ack_ids": [r.ack_id for r in batch]}
        )
        replayed += len(batch)
        if progress is not None:
            progress(len(batch))
    return replayed


def _republish(publisher: Any, topic_path: str, message: Any) -> Any:
    attributes = {
        key: value for key, value in message.attributes.items() if not key.startswith(PREFIX)
    }
    ordering_key = message.attributes.get(f"{PREFIX}ordering-key", "")
    return publisher.publish(topic_path, message.data, ordering_key=ordering_key, **attributes)


def _pull(subscriber: Any, subscription_path: str, limit: int) -> list[Any]:
    received: list[Any] = []
    while len(received) < limit:
        response = subscriber.pull(
            request={
                "subscription": subscription_path,
                "max_messages": min(_PULL_BATCH, limit - len(received)),
            },
            timeout=_PULL_TIMEOUT_S,
        )
        if not response.received_messages:
            break
        received.extend(response.received_messages)
    return received


def _release(subscriber: Any, subscription_path: str, ack_ids: list[str]) -> None:
    if ack_ids:
        subscriber.modify_ack_deadline(
            request={
                "subscription": subscription_path,
                "ack_ids": ack_ids,
                "ack_deadline_seconds": 0,
            }
        )
