"""Renders a topology as Config Connector resources (PubSubTopic, PubSubSubscription) for GKE.

The k8s issue writes these into `k8s/`; `python -m services.chassis.events.cli topology export`
prints them as a JSON list (valid YAML too). Granting the Pub/Sub service agent publish on each
dead-letter topic and subscribe on each subscription (IAMPolicyMember) belongs there too.
"""

from __future__ import annotations

from typing import Any

from services.chassis.events.topology import Subscription, Topology

API_VERSION = "pubsub.cnrm.cloud.google.com/v1beta1"


def resources(topology: Topology, namespace: str | None = None) -> list[dict[str, Any]]:
    """One PubSubTopic per topic (dead-letter topics included), then the subscriptions."""
    rendered = [_topic(topic.name, namespace) for topic in topology.all_topics()]
    for subscription in topology.subscriptions:
        rendered.append(_subscription(subscription, namespace))
        rendered.append(_dead_letter_subscription(subscription, namespace))
    return rendered


def _metadata(name: str, namespace: str | None) -> dict[str, str]:
    metadata = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return metadata


def _topic(name: str, namespace: str | None) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "PubSubTopic",
        "metadata": _metadata(name, namespace),
    }


def _subscription(subscription: Subscription, namespace: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "topicRef": {"name": subscription.topic},
        "ackDeadlineSeconds": subscription.ack_deadline_s,
        "enableMessageOrdering": subscription.enable_ordering,
        "deadLetterPolicy": {
            "deadLetterTopicRef": {"name": subscription.dead_letter_topic},
            "maxDeliveryAttempts": subscription.max_delivery_attempts,
        },
        "retryPolicy": {
            "minimumBackoff": _duration(subscription.retry.minimum_backoff_s),
            "maximumBackoff": _duration(subscription.retry.maximum_backoff_s),
        },
    }
    if subscription.filter:
        spec["filter"] = subscription.filter
    return {
        "apiVersion": API_VERSION,
        "kind": "PubSubSubscription",
        "metadata": _metadata(subscription.name, namespace),
        "spec": spec,
    }


def _dead_letter_subscription(subscription: Subscription, namespace: str | None) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "PubSubSubscription",
        "metadata": _metadata(subscription.dead_letter_subscription, namespace),
        "spec": {
            "topicRef": {"name": subscription.dead_letter_topic},
            "ackDeadlineSeconds": 60,
            # Dead letters wait for an operator: keep them as long as Pub/Sub allows.
            "messageRetentionDuration": "604800s",
        },
    }


def _duration(seconds: float) -> str:
    return f"{seconds:g}s"
