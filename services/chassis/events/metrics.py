"""OpenTelemetry instruments of the events backbone (outbox lag and backlog, consumer outcomes).

Instruments come from the meter provider passed in, else the global one (a no-op until the
process installs an SDK), so libraries never configure exporters themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

METER_NAME = "commerce.events"


@dataclass(slots=True)
class BacklogReading:
    """The relay's latest backlog reading, reported by the observable gauges."""

    count: int = 0
    oldest_age_s: float = 0.0


class RelayMetrics:
    """`outbox.backlog`, `outbox.oldest_age`, `outbox.lag` (commit → published) and counters."""

    def __init__(self, topic: str, meter_provider: MeterProvider | None = None) -> None:
        meter = metrics.get_meter(METER_NAME, meter_provider=meter_provider)
        self.reading = BacklogReading()
        self._attributes = {"messaging.destination.name": topic}
        self.lag = meter.create_histogram(
            "outbox.lag",
            unit="s",
            description="Time from staging an event to Pub/Sub accepting it",
        )
        self.published = meter.create_counter(
            "outbox.published", unit="{event}", description="Events published by the relay"
        )
        self.publish_failures = meter.create_counter(
            "outbox.publish.failures",
            unit="{event}",
            description="Events whose publish failed (their ordering key was resumed)",
        )
        self.pruned = meter.create_counter(
            "outbox.pruned",
            unit="{event}",
            description="Published outbox rows deleted after the retention period",
        )
        meter.create_observable_gauge(
            "outbox.backlog",
            callbacks=[self._observe_count],
            unit="{event}",
            description="Unpublished outbox rows",
        )
        meter.create_observable_gauge(
            "outbox.oldest_age",
            callbacks=[self._observe_age],
            unit="s",
            description="Age of the oldest unpublished outbox row",
        )

    @property
    def attributes(self) -> dict[str, str]:
        return dict(self._attributes)

    def _observe_count(self, _options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(self.reading.count, self._attributes)

    def _observe_age(self, _options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(self.reading.oldest_age_s, self._attributes)


class ConsumerMetrics:
    """`events.consumed` by outcome and `events.lag` (ce-time → effect committed)."""

    def __init__(self, consumer: str, meter_provider: MeterProvider | None = None) -> None:
        meter = metrics.get_meter(METER_NAME, meter_provider=meter_provider)
        self._consumer = consumer
        self._consumed = meter.create_counter(
            "events.consumed",
            unit="{event}",
            description=(
                "Deliveries by outcome (applied, duplicate, ignored, retried, dead_lettered)"
            ),
        )
        self.lag = meter.create_histogram(
            "events.lag", unit="s", description="Time from the event to its committed effect"
        )

    def consumed(self, outcome: str, event_type: str) -> None:
        self._consumed.add(
            1, {"consumer": self._consumer, "outcome": outcome, "event.type": event_type}
        )

    def observe_lag(self, seconds: float, event_type: str) -> None:
        self.lag.record(seconds, {"consumer": self._consumer, "event.type": event_type})


class DeadLetterMetrics:
    """`events.dead_letter.depth`: messages waiting on each consumer's dead-letter subscription.

    Readings are set by `dead_letter.DeadLetterMonitor`; a subscription not read yet reports
    nothing rather than a made-up zero.
    """

    def __init__(self, meter_provider: MeterProvider | None = None) -> None:
        meter = metrics.get_meter(METER_NAME, meter_provider=meter_provider)
        self.depth: dict[str, int] = {}
        meter.create_observable_gauge(
            "events.dead_letter.depth",
            callbacks=[self._observe_depth],
            unit="{message}",
            description=(
                "Dead letters waiting per consumer subscription (counted up to the monitor's limit)"
            ),
        )

    def _observe_depth(self, _options: CallbackOptions) -> Iterable[Observation]:
        for subscription, depth in sorted(self.depth.items()):
            yield Observation(depth, {"messaging.destination.subscription.name": subscription})
