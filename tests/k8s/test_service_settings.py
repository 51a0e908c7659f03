"""The rendered GKE overlay is true to the code: every container of a Python service runs a
command its `__main__` knows, and its environment (ConfigMap literals + env) is read by the
service's own Settings classes — a misspelled or stale variable, a missing required setting, a
secret file outside the container's mounts, or a worker without its health port all fail here."""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from pydantic import BaseModel
from pydantic_settings import BaseSettings

from services.chassis.db.settings import DatabaseSettings, load_database_settings
from tests.k8s.conftest import K8S, render

REPO = Path(__file__).resolve().parents[2]
PYTHON_SERVICES = ("ledger", "payments", "checkout", "invoicing")
SETTINGS = {
    "ledger": "LedgerSettings",
    "payments": "PaymentsSettings",
    "checkout": "CheckoutSettings",
    "invoicing": "InvoicingSettings",
}
# Variables outside COMMERCE_* a container may set, and who reads them.
PLATFORM_ENV = {
    "PUBSUB_PROJECT_ID": "services/chassis/events/pubsub.py (project of topics/subscriptions)",
    "PUBSUB_EMULATOR_HOST": "google-cloud-pubsub: the emulator (local overlay only)",
    "PYTHONUNBUFFERED": "CPython: logs reach the container runtime at once",
    "PYTHONDONTWRITEBYTECODE": "CPython: the root filesystem is read-only",
    "PGUSER": "libpq: the IAM database user the Cloud SQL proxy logs in as",
    "OTEL_SERVICE_NAME": "OpenTelemetry SDK resource",
    "OTEL_RESOURCE_ATTRIBUTES": "OpenTelemetry SDK resource",
    "K8S_POD_NAME": "interpolated into OTEL_RESOURCE_ATTRIBUTES",
    "K8S_NAMESPACE": "interpolated into OTEL_RESOURCE_ATTRIBUTES",
}
# The identity token each long-running command needs toward the services it calls: in
# production keys are asymmetric, so a process cannot sign its own token (bootstrap.py).
TOKEN_NEEDED = {
    ("payments", "serve"): "ledger_token_file",
    ("checkout", "serve"): "payments_token_file",
    ("checkout", "recover"): "payments_token_file",
    ("invoicing", "post-ledger"): "ledger_token_file",
}
SECRETS_ROOT = "/var/run/secrets/"

Obj = dict[str, Any]


def commands(service: str) -> set[str]:
    """The commands `python -m services.<service>` accepts, from its usage line."""
    source = (REPO / "services" / service / "__main__.py").read_text()
    usage = re.search(rf"usage: python -m services\.{service} \[([a-z|-]+)", source)
    assert usage, f"services/{service}/__main__.py has no usage line"
    return set(usage.group(1).split("|"))


def unknown_names(model: type[BaseModel], names: list[str]) -> list[str]:
    """Those `__`-nested names (lower case, prefix removed) that are no field of `model`."""
    unknown = []
    for name in names:
        head, _, rest = name.partition("__")
        field = model.model_fields.get(head)
        if field is None:
            unknown.append(name)
            continue
        if rest:
            nested = field.annotation
            candidates = [nested, *getattr(nested, "__args__", ())]
            models = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
            if not models or unknown_names(models[0], [rest]):
                unknown.append(name)
    return unknown


def workloads(gke: list[Obj]) -> list[tuple[str, str, Obj, Obj]]:
    """(service, deployment name, pod spec, container) for every Python service container."""
    found = []
    for obj in gke:
        if obj["kind"] != "Deployment":
            continue
        pod = obj["spec"]["template"]["spec"]
        for container in pod["containers"]:
            image = container["image"].split("@")[0].rsplit(":", 1)[0]
            service = image.rsplit("/", 1)[-1]
            if service in PYTHON_SERVICES:
                found.append((service, obj["metadata"]["name"], pod, container))
    return found


def environment(gke: list[Obj], container: Obj) -> dict[str, str]:
    configmaps = {o["metadata"]["name"]: o.get("data", {}) for o in gke if o["kind"] == "ConfigMap"}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        ref = source["configMapRef"]["name"]
        assert ref in configmaps, f"envFrom names ConfigMap {ref}, which is not rendered"
        env.update(configmaps[ref])
    for var in container.get("env", []):
        field = var.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        if field is not None:  # the downward API (pod name, namespace): never a secret
            env[var["name"]] = f"<{field}>"
            continue
        assert "value" in var, f"{var['name']}: only literal values (secrets are files)"
        env[var["name"]] = var["value"]
    return env


def secret_files(gke: list[Obj], pod: Obj, container: Obj) -> dict[str, str]:
    """Every file a mounted SecretProviderClass puts into the container: path -> class."""
    classes = {o["metadata"]["name"]: o for o in gke if o["kind"] == "SecretProviderClass"}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    files = {}
    for mount in container.get("volumeMounts", []):
        csi = volumes[mount["name"]].get("csi")
        if csi is None:
            continue
        name = csi["volumeAttributes"]["secretProviderClass"]
        assert name in classes, f"volume {mount['name']} names missing SecretProviderClass {name}"
        for path in re.findall(
            r'path:\s*"([^"]+)"', classes[name]["spec"]["parameters"]["secrets"]
        ):
            files[f"{mount['mountPath'].rstrip('/')}/{path}"] = name
    return files


@pytest.fixture(scope="module")
def placeholder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("secrets") / "placeholder"
    path.write_text("placeholder\n")
    return path


def test_every_python_service_has_workloads(gke: list[Obj]) -> None:
    assert {service for service, *_ in workloads(gke)} == set(PYTHON_SERVICES)


def test_every_command_of_every_service_is_deployed(gke: list[Obj]) -> None:
    """A worker added to a service's __main__ without a Deployment fails here (the CLI
    one-offs, e.g. invoicing's tie-out report, are run as Jobs by hand and listed)."""
    one_off = {("invoicing", "tie-out")}
    deployed = {(s, (c.get("args") or ["serve"])[0]) for s, _, _, c in workloads(gke)}
    wanted = {(s, cmd) for s in PYTHON_SERVICES for cmd in commands(s)} - one_off
    assert wanted - deployed == set(), "commands without a Deployment"


def test_containers_match_the_code(gke: list[Obj], placeholder: Path) -> None:
    failures: list[str] = []
    for service, deployment, pod, container in workloads(gke):
        where = f"{deployment}/{container['name']}"
        failures += [
            f"{where}: {p}" for p in check_container(gke, service, pod, container, placeholder)
        ]
    assert failures == [], "\n".join(failures)


def check_container(
    gke: list[Obj], service: str, pod: Obj, container: Obj, placeholder: Path
) -> list[str]:
    """Everything wrong with one container of `service`, as readable lines."""
    args = container.get("args") or ["serve"]
    if args[0] not in commands(service):
        return [f"args {args}: `python -m services.{service}` has no command {args[0]!r}"]
    problems = []
    if "command" in container:
        problems.append("sets `command`: the image's entry point is `python -m services.<svc>`")
    env = environment(gke, container)
    problems += name_problems(service, list(env))
    mounted = secret_files(gke, pod, container)
    problems += [
        f"{name}={value}: no SecretProviderClass mounted here provides it"
        for name, value in env.items()
        if value.startswith(SECRETS_ROOT) and value not in mounted
    ]
    # Secret files only exist in the pod: the test swaps in a placeholder file.
    test_env = {k: str(placeholder) if v.startswith(SECRETS_ROOT) else v for k, v in env.items()}
    with mock.patch.dict(os.environ, test_env, clear=True):
        try:
            settings: Any = settings_class(service)()
            database = load_database_settings(service)
        except ValueError as error:  # pydantic's ValidationError is a ValueError
            return [*problems, f"settings do not load: {error}"]
    if database.url is None:
        problems.append(f"no database URL (COMMERCE_{service.upper()}_DATABASE_URL)")
    return (
        problems
        + setting_problems(service, args[0], settings)
        + port_problems(args[0], settings, container)
    )


def settings_class(service: str) -> type[BaseSettings]:
    module = importlib.import_module(f"services.{service}.config")
    found: type[BaseSettings] = getattr(module, SETTINGS[service])
    return found


def name_problems(service: str, names: list[str]) -> list[str]:
    """Variables no Settings class of the service reads (pydantic-settings ignores them)."""
    prefix = f"COMMERCE_{service.upper()}_"
    db_prefix = f"{prefix}DATABASE_"
    own, database, problems = [], [], []
    for name in names:
        if name.startswith(db_prefix):
            database.append(name.removeprefix(db_prefix).lower())
        elif name.startswith("COMMERCE_DATABASE_"):
            database.append(name.removeprefix("COMMERCE_DATABASE_").lower())
        elif name.startswith(prefix):
            own.append(name.removeprefix(prefix).lower())
        elif name not in PLATFORM_ENV:
            problems.append(f"{name} is read by nothing in services/{service}")
    problems += [
        f"{prefix}{n.upper()} is no setting" for n in unknown_names(settings_class(service), own)
    ]
    problems += [
        f"{db_prefix}{n.upper()} is no database setting"
        for n in unknown_names(DatabaseSettings, database)
    ]
    return problems


def setting_problems(service: str, command: str, settings: Any) -> list[str]:
    problems = []
    if settings.auth.key_file is None or settings.auth.key is not None:
        problems.append("tokens must be verified with AUTH__KEY_FILE (from Secret Manager)")
    token = TOKEN_NEEDED.get((service, command))
    if token is not None and getattr(settings, token) is None:
        problems.append(f"`{command}` needs COMMERCE_{service.upper()}_{token.upper()}")
    if getattr(settings, "crash_at", None) is not None:
        problems.append("CRASH_AT is a test hook, never set in a deployment")
    return problems


def port_problems(command: str, settings: Any, container: Obj) -> list[str]:
    """The server listens on its container port; a worker's health port is what is probed."""
    ports = {p["containerPort"] for p in container.get("ports", [])}
    problems = []
    anywhere = "0.0.0.0"  # noqa: S104 - pods are reached on their pod IP
    if command == "serve":
        if settings.port not in ports or settings.host != anywhere:
            problems.append(f"serves on {settings.host}:{settings.port}, not a container port")
        if settings.worker.health_port is not None:
            problems.append("a server with a worker health port")
    else:
        worker = settings.worker
        if worker.health_port not in ports or worker.health_host != anywhere:
            problems.append(f"worker health on {worker.health_host}:{worker.health_port}")
        probes = ("startupProbe", "livenessProbe", "readinessProbe")
        probed = {container[p]["grpc"]["port"] for p in probes if p in container}
        if probed != {worker.health_port}:
            problems.append(f"probes on {probed}, health on {worker.health_port}")
    if settings.telemetry.metrics_port not in ports:
        problems.append(f"metrics port {settings.telemetry.metrics_port} is not a container port")
    return problems


def test_checkout_recovery_runs_in_exactly_one_place(gke: list[Obj], placeholder: Path) -> None:
    """With a `recover` Deployment, `serve` must not recover too (ADR 0009)."""
    recovering = []
    for service, deployment, _, container in workloads(gke):
        if service != "checkout":
            continue
        command = (container.get("args") or ["serve"])[0]
        env = {
            k: str(placeholder) if v.startswith(SECRETS_ROOT) else v
            for k, v in environment(gke, container).items()
        }
        with mock.patch.dict(os.environ, env, clear=True):
            settings: Any = settings_class("checkout")()
        if command == "recover" or (command == "serve" and settings.saga.recover_in_server):
            recovering.append(deployment)
    assert recovering == ["checkout-recovery"]


def test_the_check_catches_planted_defects(gke: list[Obj], placeholder: Path) -> None:
    """A misspelled setting (top level and nested), a missing required setting, a secret file
    outside the mounts, a missing identity and a wrong command each fail the check."""
    service, _, pod, container = next(
        w for w in workloads(gke) if w[0] == "payments" and w[1] == "payments"
    )
    assert check_container(gke, service, pod, container, placeholder) == []

    def problems(**changes: Any) -> str:
        return "\n".join(check_container(gke, service, pod, {**container, **changes}, placeholder))

    env = container["env"]
    typo = {"name": "COMMERCE_PAYMENTS_LEDGER_ADRR", "value": "x"}
    assert "LEDGER_ADRR is no setting" in problems(env=[*env, typo])
    nested = {"name": "COMMERCE_PAYMENTS_PSP__MAX_ATEMPTS", "value": "3"}
    assert "PSP__MAX_ATEMPTS is no setting" in problems(env=[*env, nested])
    no_token = [v for v in env if v["name"] != "COMMERCE_PAYMENTS_LEDGER_TOKEN_FILE"]
    assert "needs COMMERCE_PAYMENTS_LEDGER_TOKEN_FILE" in problems(env=no_token)
    bad_value = {"name": "COMMERCE_PAYMENTS_PSP__MAX_ATTEMPTS", "value": "0"}
    assert "settings do not load" in problems(env=[*env, bad_value])
    mounts = [m for m in container["volumeMounts"] if m["name"] != "identity"]
    assert "LEDGER_TOKEN_FILE=/var/run/secrets/commerce-identity" in problems(volumeMounts=mounts)
    assert "no command 'consume'" in problems(args=["consume"])
    assert "not a container port" in problems(ports=[])


def test_a_missing_required_setting_fails(gke: list[Obj], placeholder: Path) -> None:
    """Without the ConfigMap there is no auth key file: AuthSettings refuses to load."""
    service, _, pod, container = next(w for w in workloads(gke) if w[0] == "ledger")
    bare = {**container, "envFrom": []}
    assert any(
        "settings do not load" in p for p in check_container(gke, service, pod, bare, placeholder)
    )


def test_the_local_overlay_sets_only_real_settings(tools: None) -> None:
    """The local overlay swaps Secret Manager for Kubernetes Secrets (file contents unknown
    offline), so only commands and names are checked there."""
    local = render(K8S / "overlays/local")
    failures = []
    for service, deployment, _, container in workloads(local):
        command = (container.get("args") or ["serve"])[0]
        if command not in commands(service):
            failures.append(f"{deployment}: no command {command!r}")
        env = environment(local, container)
        failures += [f"{deployment}: {p}" for p in name_problems(service, list(env))]
        if env.get("PUBSUB_PROJECT_ID") != "commerce-local" or "PUBSUB_EMULATOR_HOST" not in env:
            failures.append(f"{deployment}: not pointed at the Pub/Sub emulator")
    assert {service for service, *_ in workloads(local)} == set(PYTHON_SERVICES)
    assert failures == [], "\n".join(failures)
