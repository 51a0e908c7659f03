"""`make k8s-check` passes on the real manifests and fails, naming the defect, when one is
planted in a copy of them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]


def edit_yaml(path: Path, change: Callable[[list[dict[str, Any]]], None]) -> None:
    """Load a (multi-document) manifest, let `change` mutate it, write it back."""
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    change(docs)
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def server_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    container: dict[str, Any] = docs[0]["spec"]["template"]["spec"]["containers"][0]
    return container


def test_real_manifests_pass_every_check(run_checker):
    result = run_checker()

    assert result.returncode == 0, result.stderr
    assert "base" in result.stdout
    assert "overlays/gke" in result.stdout
    assert "overlays/local" in result.stdout


def _no_resources(k8s: Path) -> None:
    edit_yaml(k8s / "base/ledger/deployment.yaml", lambda d: server_container(d).pop("resources"))


def _no_readiness_probe(k8s: Path) -> None:
    edit_yaml(
        k8s / "base/payments/deployment.yaml",
        lambda d: server_container(d).pop("readinessProbe"),
    )


def _runs_as_root(k8s: Path) -> None:
    def change(docs: list[dict[str, Any]]) -> None:
        pod = docs[0]["spec"]["template"]["spec"]
        pod["securityContext"].update(runAsUser=0, runAsNonRoot=False)
        server_container(docs)["securityContext"].pop("runAsNonRoot")

    edit_yaml(k8s / "base/checkout/deployment.yaml", change)


def _allow_all_ingress(k8s: Path, rule: dict[str, Any]) -> None:
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "invoicing-open", "labels": {"app.kubernetes.io/name": "invoicing"}},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "invoicing"}},
            "policyTypes": ["Ingress"],
            "ingress": [rule],
        },
    }
    edit_yaml(k8s / "base/invoicing/networkpolicy.yaml", lambda d: d.append(policy))


OPEN_TO_EVERYONE = (
    "NetworkPolicy/invoicing-open: [network-policy] ingress rule 0 allows ingress from everywhere"
)
PLANTED = {
    "deployment-without-resources": (
        _no_resources,
        "Deployment/ledger: [resources] (server) no requests for cpu, memory",
    ),
    "missing-readiness-probe": (
        _no_readiness_probe,
        "Deployment/payments: [probes] (server) has no readinessProbe",
    ),
    "container-running-as-root": (
        _runs_as_root,
        "Deployment/checkout: [security-context] (server) runs as root",
    ),
    "network-policy-allowing-all-ingress": (
        lambda k8s: _allow_all_ingress(k8s, {}),
        "NetworkPolicy/invoicing-open: [network-policy] ingress rule 0 has no `from`",
    ),
    "network-policy-allowing-every-namespace": (
        lambda k8s: _allow_all_ingress(k8s, {"from": [{"namespaceSelector": {}}]}),
        OPEN_TO_EVERYONE,
    ),
    "network-policy-allowing-every-address": (
        lambda k8s: _allow_all_ingress(k8s, {"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}),
        OPEN_TO_EVERYONE,
    ),
}


@pytest.mark.parametrize("defect", PLANTED)
def test_planted_defect_fails_the_check_naming_it(defect, k8s_copy, run_checker):
    plant, expected = PLANTED[defect]
    plant(k8s_copy)

    result = run_checker(k8s_copy, "overlays/gke")

    assert result.returncode == 1
    assert expected in result.stderr, result.stderr


def test_unknown_field_fails_schema_validation(k8s_copy, run_checker):
    edit_yaml(
        k8s_copy / "base/ledger/deployment.yaml",
        lambda d: server_container(d).update(livenesProbe={"grpc": {"port": 50051}}),
    )

    result = run_checker(k8s_copy, "base")

    assert result.returncode == 1
    assert "Deployment/ledger: [schema]" in result.stderr
    assert "livenesProbe" in result.stderr


def test_grace_period_shorter_than_drain_fails(k8s_copy, run_checker):
    edit_yaml(
        k8s_copy / "base/gateway/deployment.yaml",
        lambda d: d[0]["spec"]["template"]["spec"].update(terminationGracePeriodSeconds=15),
    )

    result = run_checker(k8s_copy, "base")

    assert result.returncode == 1
    assert (
        "Deployment/gateway: [termination-grace] (server) terminationGracePeriodSeconds 15 "
        "does not exceed preStop 5s + drain 15s"
    ) in result.stderr


def test_subscription_without_dead_letter_policy_fails(k8s_copy, run_checker):
    def change(docs: list[dict[str, Any]]) -> None:
        for doc in docs:
            if doc["metadata"]["name"] == "invoicing-from-payments":
                doc["spec"].pop("deadLetterPolicy")

    edit_yaml(k8s_copy / "components/pubsub/topology.yaml", change)

    result = run_checker(k8s_copy, "overlays/gke")

    assert result.returncode == 1
    assert "PubSubSubscription/invoicing-from-payments: [dead-letter]" in result.stderr


def test_dangling_reference_fails(k8s_copy, run_checker):
    edit_yaml(
        k8s_copy / "base/ledger/secretproviderclass.yaml",
        lambda d: d[0]["metadata"].update(name="ledger-secret"),
    )

    result = run_checker(k8s_copy, "base")

    assert result.returncode == 1
    assert "[references] SecretProviderClass 'ledger-secrets' is not defined" in result.stderr


def test_unreplaced_placeholder_fails(k8s_copy, run_checker):
    replacements = k8s_copy / "overlays/gke/replacements.yaml"
    docs = yaml.safe_load(replacements.read_text())
    replacements.write_text(
        yaml.safe_dump([r for r in docs if r["source"]["fieldPath"] != "data.CLOUDSQL_INSTANCE"])
    )

    result = run_checker(k8s_copy, "overlays/gke")

    assert result.returncode == 1
    assert "ConfigMap/cloud-sql-proxy: [placeholders] 'REGION:INSTANCE'" in result.stderr


def test_kube_score_exception_without_reason_is_refused(k8s_copy, run_checker):
    config = k8s_copy / "checks.toml"
    config.write_text(
        config.read_text() + '\n[[kube_score.ignore]]\ntest = "pod-probes"\nreason = " "\n'
    )

    result = run_checker(k8s_copy, "base")

    assert result.returncode != 0
    assert "kube-score ignore 'pod-probes' has no reason" in result.stderr
