"""What the rendered GKE overlay must contain: every service's full set of objects, the call
graph of DESIGN.md and nothing more, every subscription with a dead-letter policy, every alert
with a runbook, and values that agree with each other."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
# Folders of services/ that are not deployed, and why. Every other folder is a service and
# must be fully deployed (a new service without manifests fails here).
NOT_DEPLOYED = {
    "chassis": "the shared runtime library, part of every Python image",
    "pubsub-emulator": "Google's pstest fake, for `make run` and tests only",
    "__pycache__": "bytecode",
}
SERVICES = tuple(
    sorted(
        p.name for p in (REPO / "services").iterdir() if p.is_dir() and p.name not in NOT_DEPLOYED
    )
)

Obj = dict[str, Any]
PER_SERVICE = (
    "Deployment",
    "Service",
    "ServiceAccount",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
)
# DESIGN.md: checkout -> payments, payments -> ledger, invoicing -> ledger & payments (reads),
# gateway -> all four.
CALLS = {
    "gateway": {"ledger", "payments", "checkout", "invoicing"},
    "checkout": {"payments"},
    "payments": {"ledger"},
    "invoicing": {"ledger", "payments"},
    "ledger": set(),
}


def of_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: list[Obj], kind: str, service: str) -> list[Obj]:
    return [
        o
        for o in of_kind(objects, kind)
        if o["metadata"].get("labels", {}).get("app.kubernetes.io/name") == service
    ]


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("kind", PER_SERVICE)
def test_every_service_has_its_objects_in_the_gke_overlay(gke, service, kind):
    assert named(gke, kind, service), f"{service} has no {kind}"


def test_the_services_are_the_five_of_the_design():
    assert set(SERVICES) == {"ledger", "payments", "checkout", "invoicing", "gateway"}


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_a_dockerfile(service):
    assert (REPO / "services" / service / "Dockerfile").is_file()


def _allowed_callers(gke: list[Obj], callee: str) -> set[str]:
    """Which services the callee's own NetworkPolicy admits (by app.kubernetes.io/name)."""
    policies = [
        p
        for p in of_kind(gke, "NetworkPolicy")
        if p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == callee
        and p["spec"]["podSelector"]["matchLabels"].get("app.kubernetes.io/component") == "server"
    ]
    callers: set[str] = set()
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                selector = peer.get("podSelector", {})
                for expression in selector.get("matchExpressions", []):
                    if expression["key"] == "app.kubernetes.io/name":
                        callers |= set(expression["values"])
                name = selector.get("matchLabels", {}).get("app.kubernetes.io/name")
                if name:
                    callers.add(name)
    return callers


def test_network_policies_admit_exactly_the_designed_calls(gke):
    expected: dict[str, set[str]] = defaultdict(set)
    for caller, callees in CALLS.items():
        for callee in callees:
            expected[callee].add(caller)
    for service in ("ledger", "payments", "checkout", "invoicing"):
        assert _allowed_callers(gke, service) == expected[service], service


def test_a_default_deny_policy_covers_the_namespace(gke):
    deny = [p for p in of_kind(gke, "NetworkPolicy") if p["metadata"]["name"] == "default-deny"]
    assert deny
    assert deny[0]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_every_subscription_has_a_config_connector_resource_with_a_dead_letter_policy(gke):
    topics = {t["metadata"]["name"] for t in of_kind(gke, "PubSubTopic")}
    subscriptions = {s["metadata"]["name"]: s for s in of_kind(gke, "PubSubSubscription")}
    # A subscription on a dead-letter topic keeps dead letters; every other one consumes.
    consumers = [
        s
        for s in subscriptions.values()
        if not s["spec"]["topicRef"]["name"].endswith("-dead-letter")
    ]
    # The known consumers of DESIGN.md: invoicing reads checkout's and payments' events.
    assert {s["metadata"]["name"] for s in consumers} == {
        "invoicing-from-checkout",
        "invoicing-from-payments",
    }
    for subscription in consumers:
        spec = subscription["spec"]
        assert spec["topicRef"]["name"] in topics
        policy = spec["deadLetterPolicy"]
        dead_letter_topic = policy["deadLetterTopicRef"]["name"]
        assert dead_letter_topic in topics
        assert 5 <= policy["maxDeliveryAttempts"] <= 100
        # Dead letters are kept by a subscription on the dead-letter topic, not dropped.
        assert any(
            s["spec"]["topicRef"]["name"] == dead_letter_topic for s in subscriptions.values()
        )
        # The Pub/Sub service agent may publish dead letters and ack the originals.
        grants = {
            (m["spec"]["role"], m["spec"]["resourceRef"]["name"])
            for m in of_kind(gke, "IAMPolicyMember")
            if "gcp-sa-pubsub" in m["spec"]["member"]
        }
        assert ("roles/pubsub.publisher", dead_letter_topic) in grants
        assert ("roles/pubsub.subscriber", subscription["metadata"]["name"]) in grants


def test_every_producer_has_a_topic_its_workload_may_publish_to(gke):
    publishers = {
        (m["spec"]["resourceRef"]["name"], m["spec"]["member"])
        for m in of_kind(gke, "IAMPolicyMember")
        if m["spec"]["role"] == "roles/pubsub.publisher"
    }
    for service in ("ledger", "payments", "checkout", "invoicing"):
        assert any(
            topic == f"{service}-events" and f"commerce-{service}@" in member
            for topic, member in publishers
        ), service


def test_every_alert_links_an_existing_runbook(gke):
    rules = [
        rule
        for prometheus_rule in of_kind(gke, "PrometheusRule")
        for group in prometheus_rule["spec"]["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]
    assert rules
    for rule in rules:
        url = rule["annotations"]["runbook_url"]
        path = url.split("/blob/main/", 1)[1]
        assert (REPO / path).is_file(), f"{rule['alert']}: {path} does not exist"


def test_values_agree_with_the_project_id():
    values = dict(
        line.split("=", 1)
        for line in (K8S / "overlays/gke/values.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    project = values["PROJECT_ID"]
    assert values["GSA_DOMAIN"] == f"{project}.iam.gserviceaccount.com"
    assert values["DB_IAM_DOMAIN"] == f"{project}.iam"
    assert values["CLOUDSQL_INSTANCE"].startswith(f"{project}:")


def test_workload_identity_annotations_name_the_project(gke):
    accounts = [
        a
        for a in of_kind(gke, "ServiceAccount")
        if a["metadata"].get("labels", {}).get("commerce-mesh.io/workload-identity") == "true"
    ]
    assert accounts
    for account in accounts:
        annotation = account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
        assert annotation.endswith("@commerce-mesh-prod.iam.gserviceaccount.com")


def test_database_workloads_get_the_cloud_sql_proxy_as_a_native_sidecar(gke):
    for deployment in of_kind(gke, "Deployment"):
        labels = deployment["metadata"].get("labels", {})
        init = deployment["spec"]["template"]["spec"].get("initContainers", [])
        has_proxy = any(
            c["name"] == "cloud-sql-proxy" and c.get("restartPolicy") == "Always" for c in init
        )
        assert has_proxy == (labels.get("commerce-mesh.io/database") == "cloudsql"), deployment[
            "metadata"
        ]["name"]


def test_workers_run_the_documented_entry_points(gke):
    # Images run `python -m services.<svc>`; workers add their subcommand.
    expected = {"server": None, "relay": ["relay"], "consumer": ["consume"]}
    for deployment in of_kind(gke, "Deployment"):
        labels = deployment["metadata"]["labels"]
        if labels.get("app.kubernetes.io/name") not in SERVICES:
            continue
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container.get("args") == expected[labels["app.kubernetes.io/component"]]
