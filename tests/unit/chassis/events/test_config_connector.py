"""Config Connector export: the same declaration as PubSubTopic / PubSubSubscription resources."""

import io
import json

from services.chassis.events import cli
from services.chassis.events.config_connector import resources
from services.chassis.events.topology import RetryPolicy, Subscription, Topic, Topology

TOPOLOGY = Topology(
    topics=(Topic("payments-events"),),
    subscriptions=(
        Subscription(
            name="invoicing-from-payments",
            topic="payments-events",
            ack_deadline_s=30,
            max_delivery_attempts=7,
            retry=RetryPolicy(minimum_backoff_s=0.5, maximum_backoff_s=120),
        ),
    ),
)


def test_the_subscription_carries_ordering_dead_letter_retry_and_deadline():
    rendered = resources(TOPOLOGY, namespace="commerce")
    kinds = [(r["kind"], r["metadata"]["name"]) for r in rendered]
    assert kinds == [
        ("PubSubTopic", "payments-events"),
        ("PubSubTopic", "invoicing-from-payments-dead-letter"),
        ("PubSubSubscription", "invoicing-from-payments"),
        ("PubSubSubscription", "invoicing-from-payments-dead-letter"),
    ]
    assert rendered[2]["metadata"]["namespace"] == "commerce"
    assert rendered[2]["spec"] == {
        "topicRef": {"name": "payments-events"},
        "ackDeadlineSeconds": 30,
        "enableMessageOrdering": True,
        "deadLetterPolicy": {
            "deadLetterTopicRef": {"name": "invoicing-from-payments-dead-letter"},
            "maxDeliveryAttempts": 7,
        },
        "retryPolicy": {"minimumBackoff": "0.5s", "maximumBackoff": "120s"},
    }
    assert rendered[3]["spec"]["topicRef"] == {"name": "invoicing-from-payments-dead-letter"}


def test_the_cli_exports_the_mesh_topology_as_json():
    out = io.StringIO()
    assert cli.main(["topology", "export"], out=out) == 0
    exported = json.loads(out.getvalue())
    assert {r["apiVersion"] for r in exported} == {"pubsub.cnrm.cloud.google.com/v1beta1"}
    assert {"kind": "PubSubTopic", "name": "ledger-events"} in [
        {"kind": r["kind"], "name": r["metadata"]["name"]} for r in exported
    ]
