"""`make k8s-check`: render every kustomization under k8s/, validate every object offline, lint
it with kube-score and the project's own rules, and exit 1 naming every defect found.

Stages, per render (k8s/base and each k8s/overlays/*):
1. `kustomize build` (a render that fails to build is a defect);
2. schema validation: built-in kinds strictly against kubernetes-validate's bundled schemas of
   the pinned Kubernetes version; custom resources against k8s/schemas/crds.yaml; a kind with
   neither is a defect;
3. kube-score, with the exceptions of k8s/checks.toml (each must carry a reason);
4. the project's rules (`policy.*` below): what kube-score does not check or checks too
   loosely — per-container probes, non-root, drop ALL, grace period vs drain, allow-all
   network policies, dangling references, dead-letter policies, literal secrets, placeholders.
"""

from __future__ import annotations

import argparse
import functools
import ipaddress
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate.utils  # type: ignore[import-untyped]
import yaml  # type: ignore[import-untyped]
from referencing import Registry, Resource

Obj = dict[str, Any]
REPO = Path(__file__).resolve().parent.parent
DEFAULT_DRAIN_SECONDS = 10.0  # services/chassis/config.py grace_period_seconds
DEFAULT_GRACE_SECONDS = 30  # Kubernetes' default terminationGracePeriodSeconds
SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|API_KEY|PRIVATE_KEY|CREDENTIALS?)$")
URL_WITH_PASSWORD = re.compile(r"://[^/@:\s]+:[^/@\s]+@")
# services/chassis/events/topology.py: a subscription's dead letters go to `<name><suffix>`.
DEAD_LETTER_SUFFIX = "-dead-letter"
KUBE_SCORE_ALL_OK = 10  # kube-score's grade for a passed check
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass"}


@dataclass(frozen=True, slots=True)
class Finding:
    """One defect: where (render, object), which check, and what is wrong."""

    render: str
    obj: str
    check: str
    message: str

    def __str__(self) -> str:
        return f"{self.render}: {self.obj}: [{self.check}] {self.message}"


def ident(obj: Obj) -> str:
    return f"{obj.get('kind', '?')}/{obj.get('metadata', {}).get('name', '?')}"


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True, slots=True)
class Config:
    kubernetes_version: str
    placeholders: dict[str, list[str]]
    workload_identity_in: list[str]
    kube_score_args: list[str]
    kube_score_ignores: list[tuple[str, list[str] | None]]  # (test, only_in renders or all)


def load_config(path: Path) -> Config:
    raw = tomllib.loads(path.read_text())
    ignores: list[tuple[str, list[str] | None]] = []
    for entry in raw["kube_score"].get("ignore", []):
        if not str(entry.get("reason", "")).strip():
            raise SystemExit(f"{path}: kube-score ignore {entry.get('test')!r} has no reason")
        ignores.append((entry["test"], entry.get("only_in")))
    return Config(
        kubernetes_version=raw["kubernetes_version"],
        placeholders=raw.get("placeholders", {}),
        workload_identity_in=raw.get("workload_identity", {}).get("required_in", []),
        kube_score_args=list(raw["kube_score"].get("args", [])),
        kube_score_ignores=ignores,
    )


def renders_of(k8s_dir: Path) -> list[str]:
    """`base` and every overlay folder, as paths relative to k8s_dir."""
    overlays = sorted(
        f"overlays/{p.parent.name}" for p in (k8s_dir / "overlays").glob("*/kustomization.yaml")
    )
    return ["base", *overlays]


# --------------------------------------------------------------------------- rendering


def render(kustomize: str, k8s_dir: Path, name: str) -> list[Obj]:
    done = subprocess.run(
        [kustomize, "build", str(k8s_dir / name)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RenderError(done.stderr.strip() or f"kustomize exited {done.returncode}")
    return [doc for doc in yaml.load_all(done.stdout, Loader=yaml.CSafeLoader) if doc]


class RenderError(Exception):
    """kustomize could not build a kustomization."""


# --------------------------------------------------------------------------- schemas


def load_crd_schemas(path: Path) -> dict[str, jsonschema.Draft202012Validator]:
    raw = yaml.safe_load(path.read_text())
    defs = raw.get("$defs", {})
    validators = {}
    for key, schema in raw["kinds"].items():
        validators[key] = jsonschema.Draft202012Validator({**schema, "$defs": defs})
    return validators


class SchemaNotBundledError(LookupError):
    """kubernetes-validate has no schema for this apiVersion/kind."""


@functools.cache
def builtin_validator(version: str, api_version: str, kind: str) -> jsonschema.Draft202012Validator:
    """A cached validator for a built-in kind, from kubernetes-validate's bundled schemas.

    Same files and resolution as `kubernetes_validate.validate(..., strict=True)`, but each
    schema is loaded once instead of once per object (the library re-reads the multi-MB
    definitions file on every call).
    """
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    folder = f"kubernetes-json-schema/v{version}.0-local-strict"
    try:
        schema = kubernetes_validate.utils.schema_contents(
            f"{folder}/{kind.lower()}-{api}.json", version
        )
    except FileNotFoundError as error:
        raise SchemaNotBundledError(f"{api_version}/{kind}") from error
    definitions = kubernetes_validate.utils.schema_contents(f"{folder}/_definitions.json", version)
    registry: Registry[Any] = Resource.from_contents(schema) @ Registry()
    registry = Resource.from_contents(definitions) @ registry
    return jsonschema.Draft202012Validator(schema, registry=registry)


def validate_schemas(
    render_name: str,
    objects: list[Obj],
    version: str,
    crds: dict[str, jsonschema.Draft202012Validator],
) -> Iterator[Finding]:
    for obj in objects:
        key = f"{obj.get('apiVersion')}/{obj.get('kind')}"
        validator = crds.get(key)
        if validator is None:
            try:
                validator = builtin_validator(version, str(obj["apiVersion"]), str(obj["kind"]))
            except SchemaNotBundledError:
                yield Finding(
                    render_name,
                    ident(obj),
                    "schema",
                    f"no schema for {key}: add one to k8s/schemas/crds.yaml",
                )
                continue
        for error in validator.iter_errors(obj):
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            yield Finding(render_name, ident(obj), "schema", f"{where}: {error.message}")


# --------------------------------------------------------------------------- kube-score


def kube_score(
    binary: str, render_name: str, objects: list[Obj], config: Config, workdir: Path
) -> Iterator[Finding]:
    manifest = workdir / (render_name.replace("/", "_") + ".yaml")
    manifest.write_text(yaml.dump_all(objects, Dumper=yaml.CSafeDumper, sort_keys=False))
    args = [binary, "score", "--output-format", "json", *config.kube_score_args]
    for test, only_in in config.kube_score_ignores:
        if only_in is None or render_name in only_in:
            args += ["--ignore-test", test]
    done = subprocess.run([*args, str(manifest)], capture_output=True, text=True, check=False)
    try:
        results = json.loads(done.stdout)
    except json.JSONDecodeError:
        yield Finding(render_name, "-", "kube-score", done.stderr.strip() or "no output")
        return
    for result in results:
        for check in result["checks"]:
            if check["skipped"] or check["grade"] >= KUBE_SCORE_ALL_OK:
                continue
            comments = check.get("comments") or [{"summary": check["check"]["name"]}]
            obj = result["object_name"].split("/")
            name = f"{obj[0]}/{obj[-1]}"
            for comment in comments:
                path = f"({comment['path']}) " if comment.get("path") else ""
                yield Finding(
                    render_name,
                    name,
                    f"kube-score:{check['check']['id']}",
                    path + comment["summary"],
                )


# --------------------------------------------------------------------------- policy helpers


def pod_template(obj: Obj) -> Obj | None:
    kind = obj.get("kind")
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}:
        template: Obj = obj.get("spec", {}).get("template", {})
        return template
    if kind == "CronJob":
        cron: Obj = obj["spec"]["jobTemplate"]["spec"]["template"]
        return cron
    return None


def containers(pod_spec: Obj) -> Iterator[tuple[Obj, str]]:
    """Every long-running container with its role: `app`, or `sidecar` (native sidecar)."""
    for container in pod_spec.get("initContainers", []):
        if container.get("restartPolicy") == "Always":
            yield container, "sidecar"
    for container in pod_spec.get("containers", []):
        yield container, "app"


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    """Label-selector semantics (matchLabels + matchExpressions)."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not ok:
            return False
    return True


def by_kind(objects: Iterable[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o.get("kind") == kind]


def config_map_value(objects: list[Obj], container: Obj, suffix: str) -> str | None:
    """A container's env value whose name ends with `suffix`, from env or envFrom ConfigMaps."""
    for env in container.get("env", []):
        if env["name"].endswith(suffix) and "value" in env:
            value: str = env["value"]
            return value
    config_maps = {c["metadata"]["name"]: c.get("data", {}) for c in by_kind(objects, "ConfigMap")}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        if ref is None:
            continue
        for key, value in config_maps.get(ref["name"], {}).items():
            if key.endswith(suffix):
                return str(value)
    return None


# --------------------------------------------------------------------------- policy checks


def check_pods(render_name: str, objects: list[Obj]) -> Iterator[Finding]:
    services = by_kind(objects, "Service")
    for obj in objects:
        template = pod_template(obj)
        if template is None:
            continue
        spec = template.get("spec", {})
        labels = template.get("metadata", {}).get("labels", {})
        served = any(
            s.get("spec", {}).get("selector")
            and selects({"matchLabels": s["spec"]["selector"]}, labels)
            for s in services
        )
        yield from _check_pod_security(render_name, obj, spec)
        for container, role in containers(spec):
            yield from _check_container(render_name, obj, container, role, served=served)
        yield from _check_grace(render_name, objects, obj, template)
        yield from _check_spread(render_name, objects, obj, spec)


def _security_problems(sc: Obj, pod_sc: Obj) -> Iterator[str]:
    """What is wrong with one container's effective security context."""

    def effective(key: str) -> Any:
        return sc.get(key, pod_sc.get(key))

    capabilities = sc.get("capabilities", {})
    rules: list[tuple[bool, str]] = [
        (effective("runAsNonRoot") is not True, "runAsNonRoot is not true"),
        (0 in {effective("runAsUser"), effective("runAsGroup")}, "runs as root (uid/gid 0)"),
        (sc.get("allowPrivilegeEscalation") is not False, "allowPrivilegeEscalation is not false"),
        (bool(sc.get("privileged")), "is privileged"),
        (sc.get("readOnlyRootFilesystem") is not True, "readOnlyRootFilesystem is not true"),
        ("ALL" not in capabilities.get("drop", []), "does not drop ALL capabilities"),
        (bool(capabilities.get("add")), "adds capabilities"),
        (
            (effective("seccompProfile") or {}).get("type") not in {"RuntimeDefault", "Localhost"},
            "seccompProfile is not RuntimeDefault",
        ),
    ]
    yield from (message for failed, message in rules if failed)


def _check_pod_security(render_name: str, obj: Obj, spec: Obj) -> Iterator[Finding]:
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            yield Finding(render_name, ident(obj), "security-context", f"{flag} is set")
    pod_sc = spec.get("securityContext", {})
    for container, _ in containers(spec):
        for problem in _security_problems(container.get("securityContext", {}), pod_sc):
            yield Finding(
                render_name, ident(obj), "security-context", f"({container['name']}) {problem}"
            )


def _resource_problems(container: Obj) -> Iterator[str]:
    resources = container.get("resources", {})
    for kind in ("requests", "limits"):
        missing = [r for r in ("cpu", "memory") if r not in resources.get(kind, {})]
        if missing:
            yield f"no {kind} for {', '.join(missing)}"


def _image_problems(container: Obj) -> Iterator[str]:
    image = str(container.get("image", ""))
    if "@sha256:" in image:
        return
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    if not tag or tag == "latest":
        yield f"image {image!r} has no pinned tag"


def _probe_problems(container: Obj, role: str, kind: str, *, served: bool) -> Iterator[str]:
    """Serving containers need all three probes; other long-running ones liveness+startup."""
    if kind in {"Job", "CronJob"}:
        return
    needed = ["livenessProbe"]
    if role == "app":
        needed.append("startupProbe")
        if served:
            needed.append("readinessProbe")
    yield from (f"has no {probe}" for probe in needed if probe not in container)


def _env_problems(container: Obj) -> Iterator[str]:
    for env in container.get("env", []):
        if SECRET_NAME.search(env["name"]) and "value" in env:
            yield f"env {env['name']} is a literal value; mount a file from Secret Manager"
        if URL_WITH_PASSWORD.search(str(env.get("value", ""))):
            yield f"env {env['name']} carries a password"


def _check_container(
    render_name: str, obj: Obj, container: Obj, role: str, *, served: bool
) -> Iterator[Finding]:
    checks = [
        ("resources", _resource_problems(container)),
        ("image", _image_problems(container)),
        ("probes", _probe_problems(container, role, obj["kind"], served=served)),
        ("secrets", _env_problems(container)),
    ]
    for check_id, problems in checks:
        for problem in problems:
            yield Finding(render_name, ident(obj), check_id, f"({container['name']}) {problem}")


def _check_grace(
    render_name: str, objects: list[Obj], obj: Obj, template: Obj
) -> Iterator[Finding]:
    spec = template.get("spec", {})
    grace = spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
    annotation = (
        template.get("metadata", {}).get("annotations", {}).get("commerce-mesh.io/drain-seconds")
    )
    for container in spec.get("containers", []):
        pre_stop = (
            container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        )
        drain_value = annotation or config_map_value(objects, container, "_GRACE_PERIOD_SECONDS")
        drain = float(drain_value) if drain_value is not None else DEFAULT_DRAIN_SECONDS
        if grace <= pre_stop + drain:
            yield Finding(
                render_name,
                ident(obj),
                "termination-grace",
                f"({container['name']}) terminationGracePeriodSeconds {grace} does not exceed "
                f"preStop {pre_stop}s + drain {drain:g}s",
            )


def _check_spread(render_name: str, objects: list[Obj], obj: Obj, spec: Obj) -> Iterator[Finding]:
    if obj.get("kind") != "Deployment":
        return
    scaled = any(
        h["spec"]["scaleTargetRef"].get("name") == obj["metadata"]["name"]
        and h["spec"]["scaleTargetRef"].get("kind") == "Deployment"
        for h in by_kind(objects, "HorizontalPodAutoscaler")
    )
    if not scaled and obj["spec"].get("replicas", 1) <= 1:
        return
    keys = {c.get("topologyKey") for c in spec.get("topologySpreadConstraints", [])}
    if "kubernetes.io/hostname" not in keys:
        yield Finding(
            render_name,
            ident(obj),
            "topology-spread",
            "replicated Deployment has no topologySpreadConstraint on kubernetes.io/hostname",
        )


def _open_peer(peer: Obj) -> bool:
    """A `from` peer that admits every pod of every namespace, or every address."""
    if "ipBlock" in peer:
        network = ipaddress.ip_network(peer["ipBlock"]["cidr"], strict=False)
        return network.prefixlen == 0
    namespaces, pods = peer.get("namespaceSelector"), peer.get("podSelector")
    if namespaces is None and pods is None:
        return True
    return namespaces == {} and not pods


def check_network_policies(render_name: str, objects: list[Obj]) -> Iterator[Finding]:
    policies = by_kind(objects, "NetworkPolicy")
    for policy in policies:
        for index, rule in enumerate(policy.get("spec", {}).get("ingress", []) or []):
            peers = rule.get("from")
            if not peers:
                yield Finding(
                    render_name,
                    ident(policy),
                    "network-policy",
                    f"ingress rule {index} has no `from`: it allows all ingress",
                )
            elif any(_open_peer(peer) for peer in peers):
                yield Finding(
                    render_name,
                    ident(policy),
                    "network-policy",
                    f"ingress rule {index} allows ingress from everywhere",
                )
    has_pods = any(pod_template(o) is not None for o in objects)
    default_deny = any(
        p["spec"].get("podSelector") == {}
        and set(p["spec"].get("policyTypes", [])) >= {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
        for p in policies
    )
    if has_pods and not default_deny:
        yield Finding(
            render_name,
            "-",
            "network-policy",
            "no default-deny NetworkPolicy (podSelector {}, Ingress+Egress, no rules)",
        )


def check_services(render_name: str, objects: list[Obj]) -> Iterator[Finding]:
    for service in by_kind(objects, "Service"):
        for port in service.get("spec", {}).get("ports", []):
            grpc = str(port.get("name", "")).startswith("grpc")
            if grpc and port.get("appProtocol") != "grpc":
                yield Finding(
                    render_name,
                    ident(service),
                    "service",
                    f"port {port.get('name')} carries gRPC but appProtocol is not grpc",
                )


def _pod_references(template: Obj) -> Iterator[tuple[str, str]]:
    spec = template.get("spec", {})
    account = spec.get("serviceAccountName")
    if account and account != "default":
        yield "ServiceAccount", account
    all_containers = spec.get("initContainers", []) + spec.get("containers", [])
    for container in all_containers:
        for source in container.get("envFrom", []):
            if "configMapRef" in source and not source["configMapRef"].get("optional"):
                yield "ConfigMap", source["configMapRef"]["name"]
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("configMapKeyRef")
            if ref and not ref.get("optional"):
                yield "ConfigMap", ref["name"]
    for volume in spec.get("volumes", []):
        if "configMap" in volume:
            yield "ConfigMap", volume["configMap"]["name"]
        spc = volume.get("csi", {}).get("volumeAttributes", {}).get("secretProviderClass")
        if spc:
            yield "SecretProviderClass", spc


def _object_references(obj: Obj) -> Iterator[tuple[str, str]]:
    """(kind, name) of everything an object refers to by name."""
    template = pod_template(obj)
    if template is not None:
        yield from _pod_references(template)
    spec = obj.get("spec", {})
    kind = obj["kind"]
    if kind == "HorizontalPodAutoscaler":
        yield spec["scaleTargetRef"]["kind"], spec["scaleTargetRef"]["name"]
    elif kind == "PubSubSubscription":
        yield "PubSubTopic", spec["topicRef"]["name"]
        dead_letter = spec.get("deadLetterPolicy", {}).get("deadLetterTopicRef")
        if dead_letter:
            yield "PubSubTopic", dead_letter["name"]
    elif kind == "IAMPolicyMember" and "name" in spec.get("resourceRef", {}):
        yield spec["resourceRef"]["kind"], spec["resourceRef"]["name"]
    elif kind == "HTTPRoute":
        yield from (("Gateway", p["name"]) for p in spec.get("parentRefs", []))
        for rule in spec.get("rules", []):
            yield from (("Service", b["name"]) for b in rule.get("backendRefs", []))
    elif kind == "HealthCheckPolicy":
        yield spec["targetRef"]["kind"], spec["targetRef"]["name"]


def check_references(render_name: str, objects: list[Obj]) -> Iterator[Finding]:
    """Every name a manifest refers to exists in the same render (Secrets excepted: they are
    created out of band), and every PodDisruptionBudget selects pods."""
    known = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for obj in objects:
        for ref in _object_references(obj):
            if ref not in known:
                yield Finding(
                    render_name, ident(obj), "references", f"{ref[0]} {ref[1]!r} is not defined"
                )
    pod_labels = [
        t.get("metadata", {}).get("labels", {})
        for o in objects
        if (t := pod_template(o)) is not None
    ]
    for pdb in by_kind(objects, "PodDisruptionBudget"):
        selector = pdb.get("spec", {}).get("selector", {})
        if not any(selects(selector, labels) for labels in pod_labels):
            yield Finding(render_name, ident(pdb), "references", "selects no pods")


def check_dead_letters(render_name: str, objects: list[Obj]) -> Iterator[Finding]:
    for subscription in by_kind(objects, "PubSubSubscription"):
        topic = subscription.get("spec", {}).get("topicRef", {}).get("name", "")
        if topic.endswith(DEAD_LETTER_SUFFIX):
            continue  # the subscription that keeps dead letters has nowhere further to go
        policy = subscription.get("spec", {}).get("deadLetterPolicy")
        if not policy or "deadLetterTopicRef" not in policy:
            yield Finding(render_name, ident(subscription), "dead-letter", "no deadLetterPolicy")


def check_namespaces(render_name: str, objects: list[Obj]) -> Iterator[Finding]:
    for obj in objects:
        if obj["kind"] not in CLUSTER_SCOPED and not obj["metadata"].get("namespace"):
            yield Finding(render_name, ident(obj), "namespace", "namespaced object has none")


def check_literal_secrets(render_name: str, objects: list[Obj]) -> Iterator[Finding]:
    for secret in by_kind(objects, "Secret"):
        if secret.get("data") or secret.get("stringData"):
            yield Finding(
                render_name,
                ident(secret),
                "secrets",
                "a Secret with literal data; use Secret Manager (SecretProviderClass)",
            )
    for config_map in by_kind(objects, "ConfigMap"):
        for key, value in (config_map.get("data") or {}).items():
            if URL_WITH_PASSWORD.search(str(value)):
                yield Finding(render_name, ident(config_map), "secrets", f"{key} has a password")


def strings(value: Any) -> Iterator[str]:
    """Every string value (not key) in a parsed manifest."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def check_placeholders(render_name: str, objects: list[Obj], config: Config) -> Iterator[Finding]:
    for obj in objects:
        values = list(strings(obj))
        for placeholder in config.placeholders.get(render_name, []):
            if any(placeholder in value for value in values):
                yield Finding(
                    render_name,
                    ident(obj),
                    "placeholders",
                    f"{placeholder!r} was not replaced (see the overlay's values.env)",
                )


def check_workload_identity(
    render_name: str, objects: list[Obj], config: Config
) -> Iterator[Finding]:
    if render_name not in config.workload_identity_in:
        return
    accounts = {a["metadata"]["name"]: a for a in by_kind(objects, "ServiceAccount")}
    for obj in objects:
        template = pod_template(obj)
        if template is None:
            continue
        if template.get("metadata", {}).get("labels", {}).get("commerce-mesh.io/google-apis"):
            account = accounts.get(template["spec"].get("serviceAccountName", "default"), {})
            annotations = account.get("metadata", {}).get("annotations", {})
            if "iam.gke.io/gcp-service-account" not in annotations:
                yield Finding(
                    render_name,
                    ident(obj),
                    "workload-identity",
                    "calls Google APIs but its ServiceAccount has no Workload Identity annotation",
                )


def check_components_used(k8s_dir: Path) -> Iterator[Finding]:
    used: set[str] = set()
    for kustomization in (k8s_dir / "overlays").glob("*/kustomization.yaml"):
        for entry in yaml.safe_load(kustomization.read_text()).get("components", []):
            used.add((kustomization.parent / entry).resolve().name)
    for component in sorted((k8s_dir / "components").glob("*/kustomization.yaml")):
        name = component.parent.name
        if name not in used:
            yield Finding("components", name, "components", "used by no overlay: never rendered")
        if not (component.parent / "README.md").is_file():
            yield Finding("components", name, "components", "has no README.md")


def policy(render_name: str, objects: list[Obj], config: Config) -> Iterator[Finding]:
    yield from check_pods(render_name, objects)
    yield from check_network_policies(render_name, objects)
    yield from check_services(render_name, objects)
    yield from check_references(render_name, objects)
    yield from check_dead_letters(render_name, objects)
    yield from check_namespaces(render_name, objects)
    yield from check_literal_secrets(render_name, objects)
    yield from check_placeholders(render_name, objects, config)
    yield from check_workload_identity(render_name, objects, config)


# --------------------------------------------------------------------------- main


def check(
    k8s_dir: Path, kustomize: str, kube_score_bin: str, workdir: Path, only: list[str] | None
) -> tuple[list[Finding], dict[str, int]]:
    config = load_config(k8s_dir / "checks.toml")
    crds = load_crd_schemas(k8s_dir / "schemas" / "crds.yaml")
    findings: list[Finding] = list(check_components_used(k8s_dir))
    counts: dict[str, int] = {}
    for name in only or renders_of(k8s_dir):
        try:
            objects = render(kustomize, k8s_dir, name)
        except RenderError as error:
            findings.append(Finding(name, "-", "render", str(error)))
            continue
        counts[name] = len(objects)
        findings += validate_schemas(name, objects, config.kubernetes_version, crds)
        findings += kube_score(kube_score_bin, name, objects, config, workdir)
        findings += policy(name, objects, config)
    return findings, counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k8s-dir", type=Path, default=REPO / "k8s")
    parser.add_argument("--kustomize", default=str(REPO / ".tools/bin/kustomize"))
    parser.add_argument("--kube-score", default=str(REPO / ".tools/bin/kube-score"))
    parser.add_argument(
        "--render", action="append", help="only this render (e.g. overlays/gke); repeatable"
    )
    args = parser.parse_args(argv)
    import tempfile  # noqa: PLC0415 - only the CLI needs a scratch directory

    with tempfile.TemporaryDirectory(prefix="k8s-check-") as scratch:
        findings, counts = check(
            args.k8s_dir.resolve(), args.kustomize, args.kube_score, Path(scratch), args.render
        )
    for finding in findings:
        print(finding, file=sys.stderr)
    rendered = ", ".join(f"{name} ({count} objects)" for name, count in counts.items())
    if findings:
        print(f"k8s-check: {len(findings)} defect(s) in {rendered}", file=sys.stderr)
        return 1
    print(f"k8s-check: ok — {rendered}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
