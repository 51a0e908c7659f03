"""Topology as code: topics and subscriptions (ordering, dead letters, retry, ack deadline).

Declared once as data; `apply.py` creates it on a Pub/Sub API server (the emulator at start-up)
and `config_connector.py` renders the same declaration as Config Connector resources for GKE.
Every subscription gets its own dead-letter topic and a subscription on it that keeps the
dead letters until an operator lists or replays them (a topic alone would drop them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Pub/Sub resource ids: 3-255 characters, start with a letter, no `goog` prefix.
_RESOURCE_ID = re.compile(r"[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}")
# Pub/Sub's own limits for dead-letter policies and ack deadlines.
MIN_DELIVERY_ATTEMPTS, MAX_DELIVERY_ATTEMPTS = 5, 100
MIN_ACK_DEADLINE_S, MAX_ACK_DEADLINE_S = 10, 600
MAX_BACKOFF_S = 600.0
DEAD_LETTER_SUFFIX = "-dead-letter"


class TopologyError(ValueError):
    """A declaration Pub/Sub would refuse (bad id, out-of-range policy, unknown topic)."""


def _resource_id(kind: str, value: str) -> str:
    if _RESOURCE_ID.fullmatch(value) is None or value.startswith("goog"):
        raise TopologyError(f"invalid {kind} id {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Delay before redelivering a nacked message, growing from minimum to maximum."""

    minimum_backoff_s: float = 1.0
    maximum_backoff_s: float = 60.0

    def __post_init__(self) -> None:
        if not 0 <= self.minimum_backoff_s <= self.maximum_backoff_s <= MAX_BACKOFF_S:
            raise TopologyError("retry policy needs 0 <= minimum <= maximum <= 600 s")


@dataclass(frozen=True, slots=True)
class Topic:
    """A topic; one per producing service (`<service>-events`), so one aggregate's events
    of every type share an ordering key on one topic."""

    name: str

    def __post_init__(self) -> None:
        _resource_id("topic", self.name)


@dataclass(frozen=True, slots=True)
class Subscription:
    """A consumer's subscription: ordered, with a dead-letter topic after N attempts."""

    name: str
    topic: str
    ack_deadline_s: int = 60
    max_delivery_attempts: int = 5
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    enable_ordering: bool = True
    filter: str = ""

    def __post_init__(self) -> None:
        _resource_id("subscription", self.name)
        _resource_id("topic", self.topic)
        _resource_id("topic", self.dead_letter_topic)
        if not MIN_DELIVERY_ATTEMPTS <= self.max_delivery_attempts <= MAX_DELIVERY_ATTEMPTS:
            raise TopologyError(
                f"max_delivery_attempts must be {MIN_DELIVERY_ATTEMPTS}..{MAX_DELIVERY_ATTEMPTS}"
            )
        if not MIN_ACK_DEADLINE_S <= self.ack_deadline_s <= MAX_ACK_DEADLINE_S:
            raise TopologyError(f"ack deadline must be {MIN_ACK_DEADLINE_S}..600 s")

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.name}{DEAD_LETTER_SUFFIX}"

    @property
    def dead_letter_subscription(self) -> str:
        """Where dead letters wait for the operator (same id as the topic; ids are per kind)."""
        return f"{self.name}{DEAD_LETTER_SUFFIX}"


@dataclass(frozen=True, slots=True)
class Topology:
    """Every topic and subscription of a deployment."""

    topics: tuple[Topic, ...]
    subscriptions: tuple[Subscription, ...] = ()

    def __post_init__(self) -> None:
        names = [topic.name for topic in self.all_topics()]
        if len(names) != len(set(names)):
            raise TopologyError("topic ids must be unique (dead-letter topics included)")
        subscriptions = [sub.name for sub in self.subscriptions]
        if len(subscriptions) != len(set(subscriptions)):
            raise TopologyError("subscription ids must be unique")
        declared = {topic.name for topic in self.topics}
        for subscription in self.subscriptions:
            if subscription.topic not in declared:
                raise TopologyError(
                    f"subscription {subscription.name!r} reads undeclared topic "
                    f"{subscription.topic!r}"
                )

    def all_topics(self) -> tuple[Topic, ...]:
        """Declared topics plus one dead-letter topic per subscription."""
        dead_letters = tuple(Topic(sub.dead_letter_topic) for sub in self.subscriptions)
        return self.topics + dead_letters

    def subscription(self, name: str) -> Subscription:
        """The subscription called `name`; TopologyError if none."""
        for candidate in self.subscriptions:
            if candidate.name == name:
                return candidate
        raise TopologyError(f"no subscription {name!r} in the topology")


def events_topic(service: str) -> str:
    """The topic a service's relay publishes to: `<service>-events`."""
    return f"{service}-events"
