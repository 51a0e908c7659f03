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


# Which workload (service, component) calls which service's server, per the code: the
# servers' clients, checkout's saga recovery (`recover`) and invoicing's ledger poster
# (`post-ledger`). Relays and consumers call no service (Pub/Sub and their database only).
WORKLOAD_CALLS = {
    ("gateway", "server"): {"ledger", "payments", "checkout", "invoicing"},
    ("checkout", "server"): {"payments"},
    ("checkout", "recovery"): {"payments"},
    ("payments", "server"): {"ledger"},
    ("invoicing", "server"): {"ledger", "payments"},
    ("invoicing", "ledger-poster"): {"ledger"},
}
PORTS = {"ledger": 50051, "payments": 50052, "checkout": 50053, "invoicing": 50054}


def _workload(selector: dict[str, Any]) -> tuple[str, str]:
    """The (name, component) a pod selector picks; a selector looser than one workload fails."""
    labels = selector.get("matchLabels", {})
    assert not selector.get("matchExpressions"), f"selector wider than one workload: {selector}"
    return labels["app.kubernetes.io/name"], labels["app.kubernetes.io/component"]


def _policies_of(gke: list[Obj], workload: tuple[str, str]) -> list[Obj]:
    return [
        p
        for p in of_kind(gke, "NetworkPolicy")
        if p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name")
        == workload[0]
        and p["spec"]["podSelector"]["matchLabels"].get("app.kubernetes.io/component")
        == workload[1]
    ]


def _allowed_callers(gke: list[Obj], callee: str) -> set[tuple[str, str]]:
    """Which workloads the callee server's own NetworkPolicies admit."""
    return {
        _workload(peer["podSelector"])
        for policy in _policies_of(gke, (callee, "server"))
        for rule in policy["spec"].get("ingress", [])
        for peer in rule.get("from", [])
        if "podSelector" in peer
    }


def _allowed_callees(gke: list[Obj], caller: tuple[str, str]) -> set[str]:
    """Which service servers the caller workload's own NetworkPolicies let it reach."""
    callees = set()
    for policy in _policies_of(gke, caller):
        for rule in policy["spec"].get("egress", []):
            for peer in rule.get("to", []):
                if "podSelector" not in peer:
                    continue
                selector = peer["podSelector"]
                labels = selector.get("matchLabels", {})
                names = {labels.get("app.kubernetes.io/name")} - {None}
                for expression in selector.get("matchExpressions", []):
                    names |= set(expression["values"])
                assert labels.get("app.kubernetes.io/component") == "server", policy
                callees |= names
    return callees


def test_network_policies_admit_exactly_the_designed_calls(gke):
    expected: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for caller, callees in WORKLOAD_CALLS.items():
        for callee in callees:
            expected[callee].add(caller)
    for service in ("ledger", "payments", "checkout", "invoicing"):
        assert _allowed_callers(gke, service) == expected[service], service


def test_every_workload_reaches_exactly_the_services_it_calls(gke):
    workloads = {
        (d["metadata"]["labels"]["app.kubernetes.io/name"],
         d["metadata"]["labels"]["app.kubernetes.io/component"])
        for d in of_kind(gke, "Deployment")
        if d["metadata"]["labels"].get("app.kubernetes.io/name") in SERVICES
    }  # fmt: skip
    assert set(WORKLOAD_CALLS) <= workloads
    for workload in workloads:
        assert _policies_of(gke, workload), f"{workload} has no NetworkPolicy of its own"
        assert _allowed_callees(gke, workload) == WORKLOAD_CALLS.get(workload, set()), workload


def test_only_payments_reaches_the_internet(gke):
    """PSP APIs are HTTPS on the public internet; no other workload gets an ipBlock egress."""
    open_egress = {
        p["metadata"]["name"]
        for p in of_kind(gke, "NetworkPolicy")
        for rule in p["spec"].get("egress", [])
        for peer in rule.get("to", [])
        if peer.get("ipBlock", {}).get("cidr") == "0.0.0.0/0"
        and p["metadata"]["labels"].get("app.kubernetes.io/name") in SERVICES
    }
    assert open_egress == {"payments"}
    psp = next(p for p in of_kind(gke, "NetworkPolicy") if p["metadata"]["name"] == "payments")
    internet = [r for r in psp["spec"]["egress"] if any("ipBlock" in t for t in r["to"])]
    assert [port["port"] for rule in internet for port in rule["ports"]] == [443]


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
    expected = {
        "server": None,
        "relay": ["relay"],
        "consumer": ["consume"],
        "recovery": ["recover"],
        "ledger-poster": ["post-ledger"],
    }
    for deployment in of_kind(gke, "Deployment"):
        labels = deployment["metadata"]["labels"]
        if labels.get("app.kubernetes.io/name") not in SERVICES:
            continue
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container.get("args") == expected[labels["app.kubernetes.io/component"]]
