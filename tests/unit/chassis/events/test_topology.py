"""Topology declarations: Pub/Sub's own limits are checked when the declaration is made."""

import pytest

from services.chassis.events.mesh import MESH_TOPOLOGY
from services.chassis.events.topology import (
    RetryPolicy,
    Subscription,
    Topic,
    Topology,
    TopologyError,
    events_topic,
)


def test_every_subscription_gets_its_own_dead_letter_topic_and_keeper_subscription():
    subscription = Subscription(name="invoicing-from-payments", topic="payments-events")
    topology = Topology(topics=(Topic("payments-events"),), subscriptions=(subscription,))

    assert [t.name for t in topology.all_topics()] == [
        "payments-events",
        "invoicing-from-payments-dead-letter",
    ]
    assert subscription.dead_letter_subscription == "invoicing-from-payments-dead-letter"
    assert topology.subscription("invoicing-from-payments") is subscription


def test_subscriptions_default_to_ordering_five_attempts_and_backoff():
    subscription = Subscription(name="sub-one", topic="top-one")
    assert subscription.enable_ordering
    assert subscription.max_delivery_attempts == 5
    assert subscription.retry == RetryPolicy(minimum_backoff_s=1.0, maximum_backoff_s=60.0)


@pytest.mark.parametrize("name", ["ab", "1abc", "goog-topic", "has space", "x" * 256])
def test_ids_pubsub_would_refuse_are_refused(name):
    with pytest.raises(TopologyError):
        Topic(name)


@pytest.mark.parametrize("attempts", [4, 101])
def test_delivery_attempts_outside_5_to_100_are_refused(attempts):
    with pytest.raises(TopologyError, match="max_delivery_attempts"):
        Subscription(name="sub-one", topic="top-one", max_delivery_attempts=attempts)


@pytest.mark.parametrize("deadline", [9, 601])
def test_ack_deadlines_outside_10_to_600_seconds_are_refused(deadline):
    with pytest.raises(TopologyError, match="ack deadline"):
        Subscription(name="sub-one", topic="top-one", ack_deadline_s=deadline)


def test_a_retry_policy_with_minimum_above_maximum_is_refused():
    with pytest.raises(TopologyError):
        RetryPolicy(minimum_backoff_s=5.0, maximum_backoff_s=1.0)


def test_a_subscription_to_an_undeclared_topic_is_refused():
    with pytest.raises(TopologyError, match="undeclared"):
        Topology(topics=(Topic("top-one"),), subscriptions=(Subscription("sub-one", "top-two"),))


def test_duplicate_subscriptions_are_refused():
    twice = (Subscription("sub-one", "top-one"), Subscription("sub-one", "top-one"))
    with pytest.raises(TopologyError, match="unique"):
        Topology(topics=(Topic("top-one"),), subscriptions=twice)


def test_a_name_clash_with_a_dead_letter_topic_is_refused():
    with pytest.raises(TopologyError, match="unique"):
        Topology(
            topics=(Topic("top-one"), Topic("sub-one-dead-letter")),
            subscriptions=(Subscription("sub-one", "top-one"),),
        )


def test_the_mesh_declares_one_events_topic_per_service():
    assert [t.name for t in MESH_TOPOLOGY.topics] == [
        events_topic(s) for s in ("checkout", "payments", "ledger", "invoicing")
    ]
    assert {s.topic for s in MESH_TOPOLOGY.subscriptions} <= {t.name for t in MESH_TOPOLOGY.topics}
