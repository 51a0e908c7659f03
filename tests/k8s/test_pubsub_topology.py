"""k8s/components/pubsub/topology.yaml says what the events backbone's topology as code says.

The topology is declared once in services/chassis/events/mesh.py and rendered to Config
Connector resources by services/chassis/events/config_connector.py. Until the manifest is
generated from it (TODO in the component), this test is what keeps the two from drifting:
same topics and subscriptions, and every field the generator sets has the same value in the
manifest (which may add operational fields: retention, expiration, deletion policy, labels).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

REPO = Path(__file__).resolve().parents[2]
TOPOLOGY = REPO / "k8s/components/pubsub/topology.yaml"

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
