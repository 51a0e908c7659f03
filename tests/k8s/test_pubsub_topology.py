"""k8s/components/pubsub/{topology,iam}.yaml say what the events backbone's topology as code
says.

The topology is declared once in services/chassis/events/mesh.py, rendered to Config Connector
resources by services/chassis/events/config_connector.py, and written to the component with
operational fields and IAM grants by scripts/render_pubsub_topology.py (`make k8s-check` runs it
with --check). These tests hold the committed files to a fresh render, to the generator's
fields, and to the invariants that make dead-lettering work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from scripts import render_pubsub_topology as renderer

REPO = Path(__file__).resolve().parents[2]
TOPOLOGY = REPO / "k8s/components/pubsub/topology.yaml"
IAM = REPO / "k8s/components/pubsub/iam.yaml"

mesh = pytest.importorskip("services.chassis.events.mesh")
config_connector = pytest.importorskip("services.chassis.events.config_connector")


def by_id(resources: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["kind"], r["metadata"]["name"]): r for r in resources}


def subset_mismatches(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Where `actual` differs from `expected`, ignoring keys only `actual` has."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected a mapping, found {actual!r}"]
        problems: list[str] = []
        for key, value in expected.items():
            if key not in actual:
                problems.append(f"{path}.{key}: missing (generator says {value!r})")
            else:
                problems += subset_mismatches(value, actual[key], f"{path}.{key}")
        return problems
    return [] if expected == actual else [f"{path}: {actual!r} != generator's {expected!r}"]


@pytest.fixture(scope="module")
def generated() -> dict[tuple[str, str], dict[str, Any]]:
    return by_id(config_connector.resources(mesh.MESH_TOPOLOGY))


@pytest.fixture(scope="module")
def written() -> dict[tuple[str, str], dict[str, Any]]:
    return by_id([doc for doc in yaml.safe_load_all(TOPOLOGY.read_text()) if doc])


def test_the_same_topics_and_subscriptions_exist(generated, written):
    assert set(written) == set(generated)


def test_every_generated_field_has_the_same_value(generated, written):
    problems = [
        f"{kind}/{name}{problem}"
        for (kind, name), resource in generated.items()
        if (kind, name) in written
        for problem in subset_mismatches(
            resource.get("spec", {}), written[kind, name].get("spec", {}), ".spec"
        )
    ]
    assert not problems, "\n".join(problems)


def test_the_committed_files_are_a_fresh_render():
    for path, text in renderer.rendered().items():
        assert path.read_text() == text, (
            f"{path.name} is stale: run scripts/render_pubsub_topology.py"
        )


def test_the_freshness_check_fails_on_a_hand_edit(tmp_path):
    assert renderer.main(["--out-dir", str(tmp_path)]) == 0
    assert renderer.main(["--check", "--out-dir", str(tmp_path)]) == 0
    edited = tmp_path / "topology.yaml"
    edited.write_text(
        edited.read_text().replace("maxDeliveryAttempts: 5", "maxDeliveryAttempts: 7")
    )
    assert renderer.main(["--check", "--out-dir", str(tmp_path)]) == 1


def test_every_subscription_has_a_dead_letter_policy_that_keeps_its_letters(written):
    """Every consumer subscription of the topology dead-letters to a declared topic after a
    bounded number of attempts, a subscription keeps those letters, and the Pub/Sub service
    agent holds the two grants without which dead-lettering silently does nothing."""
    grants = {
        (m["spec"]["role"], m["spec"]["resourceRef"]["name"])
        for m in yaml.safe_load_all(IAM.read_text())
        if m and "gcp-sa-pubsub" in m["spec"]["member"]
    }
    assert mesh.MESH_TOPOLOGY.subscriptions
    for subscription in mesh.MESH_TOPOLOGY.subscriptions:
        resource = written["PubSubSubscription", subscription.name]
        policy = resource["spec"]["deadLetterPolicy"]
        dead_letter_topic = policy["deadLetterTopicRef"]["name"]
        assert ("PubSubTopic", dead_letter_topic) in written
        assert 5 <= policy["maxDeliveryAttempts"] <= 100
        keeper = written["PubSubSubscription", subscription.dead_letter_subscription]
        assert keeper["spec"]["topicRef"]["name"] == dead_letter_topic
        assert "deadLetterPolicy" not in keeper["spec"]  # dead letters are never dead-lettered
        assert ("roles/pubsub.publisher", dead_letter_topic) in grants
        assert ("roles/pubsub.subscriber", subscription.name) in grants


def test_every_resource_survives_deleting_its_manifest(written):
    for resource in written.values():
        annotations = resource["metadata"]["annotations"]
        assert annotations["cnrm.cloud.google.com/deletion-policy"] == "abandon"
