"""Topology as code on the real Pub/Sub API server: every policy, applied idempotently."""

import pytest

from services.chassis.events.apply import apply_topology

pytestmark = pytest.mark.integration


def test_applying_creates_the_subscription_with_ordering_dead_letters_retry_and_deadline(
    clients, topology
):
    _, subscriber = clients

    created = subscriber.get_subscription(request={"subscription": topology.subscription_path})

    assert created.topic == topology.topic_path
    assert created.enable_message_ordering is True
    assert created.ack_deadline_seconds == 10
    assert created.dead_letter_policy.max_delivery_attempts == 5
    assert created.dead_letter_policy.dead_letter_topic.endswith(
        f"/topics/{topology.subscription.dead_letter_topic}"
    )
    assert created.retry_policy.minimum_backoff.total_seconds() == pytest.approx(0.02)
    assert created.retry_policy.maximum_backoff.total_seconds() == pytest.approx(0.1)
    keeper = subscriber.get_subscription(
        request={"subscription": topology.dead_letter_subscription_path}
    )
    assert keeper.topic.endswith(f"/topics/{topology.subscription.dead_letter_topic}")


def test_applying_twice_changes_nothing(clients, topology):
    publisher, subscriber = clients
    before = subscriber.get_subscription(request={"subscription": topology.subscription_path})

    apply_topology(topology.topology, "commerce-test", publisher, subscriber)

    after = subscriber.get_subscription(request={"subscription": topology.subscription_path})
    assert after == before
