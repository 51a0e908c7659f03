"""Creates a declared topology on a Pub/Sub API server (the emulator at start-up), idempotently."""

from __future__ import annotations

import contextlib
from typing import Any

from google.api_core import exceptions

from services.chassis.events import pubsub
from services.chassis.events.topology import Subscription, Topology

_DEAD_LETTER_ACK_DEADLINE_S = 60


def apply_topology(topology: Topology, project: str, publisher: Any, subscriber: Any) -> None:
    """Create missing topics and subscriptions; bring existing subscriptions' policies up to date.

    Ordering cannot be changed on an existing subscription (Pub/Sub refuses it); a mismatch is
    reported rather than silently ignored.
    """
    for topic in topology.all_topics():
        with contextlib.suppress(exceptions.AlreadyExists):
            publisher.create_topic(name=pubsub.topic_path(project, topic.name))
    for subscription in topology.subscriptions:
        _ensure(subscriber, _subscription_request(subscription, project))
        _ensure(subscriber, _dead_letter_request(subscription, project))


def _ensure(subscriber: Any, request: dict[str, Any]) -> None:
    try:
        subscriber.create_subscription(request=request)
    except exceptions.AlreadyExists:
        _update(subscriber, request)


def _update(subscriber: Any, request: dict[str, Any]) -> None:
    existing = subscriber.get_subscription(request={"subscription": request["name"]})
    if bool(existing.enable_message_ordering) != bool(request["enable_message_ordering"]):
        raise RuntimeError(
            f"{request['name']} exists with message ordering "
            f"{'on' if existing.enable_message_ordering else 'off'}; recreate it"
        )
    # Filter and ordering are fixed at creation; these may change in place.
    mutable = [
        key
        for key in ("ack_deadline_seconds", "dead_letter_policy", "retry_policy")
        if key in request
    ]
    subscriber.update_subscription(
        request={"subscription": request, "update_mask": {"paths": mutable}}
    )


def _subscription_request(subscription: Subscription, project: str) -> dict[str, Any]:
    return {
        "name": pubsub.subscription_path(project, subscription.name),
        "topic": pubsub.topic_path(project, subscription.topic),
        "ack_deadline_seconds": subscription.ack_deadline_s,
        "enable_message_ordering": subscription.enable_ordering,
        "dead_letter_policy": {
            "dead_letter_topic": pubsub.topic_path(project, subscription.dead_letter_topic),
            "max_delivery_attempts": subscription.max_delivery_attempts,
        },
        "retry_policy": {
            "minimum_backoff": _duration(subscription.retry.minimum_backoff_s),
            "maximum_backoff": _duration(subscription.retry.maximum_backoff_s),
        },
        "filter": subscription.filter,
    }


def _dead_letter_request(subscription: Subscription, project: str) -> dict[str, Any]:
    return {
        "name": pubsub.subscription_path(project, subscription.dead_letter_subscription),
        "topic": pubsub.topic_path(project, subscription.dead_letter_topic),
        "ack_deadline_seconds": _DEAD_LETTER_ACK_DEADLINE_S,
        "enable_message_ordering": False,
    }


def _duration(seconds: float) -> dict[str, int]:
    whole = int(seconds)
    return {"seconds": whole, "nanos": round((seconds - whole) * 1e9)}
