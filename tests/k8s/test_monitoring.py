"""The monitoring component agrees with the code and the runbooks, and promtool accepts it.

- Every metric a dashboard panel or a rule reads is created by an instrument in services/ or
  clients/ (its Prometheus name derived by the OpenTelemetry Prometheus exporter itself), is
  recorded by a rule, or is listed in k8s/components/monitoring/metrics.yaml (intended: an
  issue in progress will emit it; external: another exporter's).
- Every alert links a runbook that exists and says how to diagnose and recover, and has a
  promtool unit test in which it fires.
- `scripts/check-monitoring.sh` (promtool check + test rules) passes, and fails on a planted
  defect.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "k8s/components/monitoring"
RULES = MONITORING / "rules.yaml"
DASHBOARDS = sorted((MONITORING / "dashboards").glob("*.json"))
RULE_TESTS = sorted((MONITORING / "tests").glob("*-test.yaml"))
CATALOGUE = MONITORING / "metrics.yaml"
RUNBOOKS = REPO / "docs/runbooks"
PROMTOOL = REPO / ".tools/bin/promtool"
CHECK = REPO / "scripts/check-monitoring.sh"
RUNBOOK_PREFIX = "https://github.com/commercemesh/commerce-mesh/blob/main/"

INSTRUMENT_FACTORIES = {
    "create_counter": "counter",
    "create_up_down_counter": "up_down_counter",
    "create_histogram": "histogram",
    "create_gauge": "gauge",
    "create_observable_gauge": "observable_gauge",
    "create_observable_counter": "observable_counter",
    "create_observable_up_down_counter": "observable_up_down_counter",
}

# --- what the code emits --------------------------------------------------------------------


def _constants(tree: ast.Module) -> dict[str, str]:
    """Module-level `NAME = "literal"` assignments (instrument names are often constants)."""
    found = {}
    value: ast.expr | None
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign):
            targets, value = [node.target], node.value
        else:
            continue
        if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
            continue
        for target in targets:
            if isinstance(target, ast.Name):
                found[target.id] = value.value
    return found


def _string(node: ast.expr | None, constants: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    return None


def instruments_in_code() -> list[tuple[str, str, str, str]]:
    """(kind, name, unit, where) of every OpenTelemetry instrument created in services/ and
    clients/; fails on one whose name is not a literal or a module constant."""
    found = []
    for root in ("services", "clients"):
        for path in sorted((REPO / root).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            constants = _constants(tree)
            for node in ast.walk(tree):
                if not (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in INSTRUMENT_FACTORIES
                ):
                    continue
                where = f"{path.relative_to(REPO)}:{node.lineno}"
                name_node = node.args[0] if node.args else None
                for keyword in node.keywords:
                    if keyword.arg == "name":
                        name_node = keyword.value
                name = _string(name_node, constants)
                assert name is not None, f"{where}: instrument name is not a literal or constant"
                unit = next(
                    (_string(k.value, constants) or "" for k in node.keywords if k.arg == "unit"),
                    "",
                )
                found.append((INSTRUMENT_FACTORIES[node.func.attr], name, unit, where))
    return found


def prometheus_names(instruments: list[tuple[str, str, str, str]]) -> set[str]:
    """The sample names the OpenTelemetry Prometheus exporter publishes for these instruments
    (what Prometheus stores: `rpc_server_calls_total`, `..._milliseconds_bucket`, ...)."""
    registry = CollectorRegistry()
    provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    meter = provider.get_meter("test_monitoring")

    def one(_options: CallbackOptions) -> list[Observation]:
        return [Observation(1)]

    try:
        for kind, name, unit, _ in instruments:
            if kind.startswith("observable_"):
                getattr(meter, f"create_{kind}")(name, callbacks=[one], unit=unit)
            elif kind == "histogram":
                meter.create_histogram(name, unit=unit).record(1)
            elif kind == "gauge":
                meter.create_gauge(name, unit=unit).set(1)
            else:
                getattr(meter, f"create_{kind}")(name, unit=unit).add(1)
        return {
            sample.name
            for family in registry.collect()
            for sample in family.samples
            if sample.name != "target_info"
        }
    finally:
        provider.shutdown()


@pytest.fixture(scope="module")
def emitted() -> set[str]:
    return prometheus_names(instruments_in_code())


def test_the_code_scan_finds_the_chassis_instruments(emitted):
    # If the scan silently found nothing, every other check here would pass for nothing.
    assert {
        "rpc_server_calls_total",
        "rpc_server_duration_milliseconds_bucket",
        "rpc_server_duration_milliseconds_count",
        "outbox_backlog",
        "outbox_oldest_age_seconds",
        "outbox_lag_seconds_bucket",
        "events_consumed_total",
        "events_dead_letter_depth",
        "payments_psp_circuit_breaker_state",
    } <= emitted


# --- what the monitoring reads ----------------------------------------------------------------

PROMQL_WORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "inf", "nan", "atan2",
}  # fmt: skip
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_GROUPINGS = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_VARIABLES = re.compile(r"\$\{?\w+\}?")
_IDENTIFIER = re.compile(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(?!\s*\()")


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (not functions, keywords, labels or durations)."""
    text = _VARIABLES.sub("1m", expr)  # Grafana's $__rate_interval, $service, ${datasource}
    text = _STRINGS.sub('""', text)
    text = _MATCHERS.sub("", text)
    text = _RANGES.sub("", text)
    text = _GROUPINGS.sub("", text)
    text = re.sub(r"\boffset\s+\d+[smhdwy]", "", text)
    return {m for m in _IDENTIFIER.findall(text) if m.lower() not in PROMQL_WORDS}


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (a) (rate(x_total{b="c",d=~"e|f"}[5m]))', {"x_total"}),
        ("histogram_quantile(0.99, sum by (le) (rate(h_bucket[$__rate_interval])))", {"h_bucket"}),
        ("a:b:rate5m > (14.4 * 0.001) and c offset 30m unless on () d", {"a:b:rate5m", "c", "d"}),
        ('max(g{l="rate(x)"}) == 1 or vector(0.01)', {"g"}),
        ("changes(max by (psp) (s)[30m:1m]) > 6", {"s"}),
    ],
)
def test_promql_metric_names(expr, names):
    assert promql_metric_names(expr) == names


def load_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    assert document["kind"] == "PrometheusRule"
    return [rule for group in document["spec"]["groups"] for rule in group["rules"]]


def dashboard_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    panels = []
    for panel in dashboard.get("panels", []):
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # panels inside collapsed rows
    return panels


@pytest.fixture(scope="module")
def catalogue() -> dict[str, set[str]]:
    raw = yaml.safe_load(CATALOGUE.read_text())
    return {
        kind: {entry["name"] for entry in raw.get(kind) or []} for kind in ("intended", "external")
    }


@pytest.fixture(scope="module")
def known(emitted: set[str], catalogue: dict[str, set[str]]) -> set[str]:
    recorded: set[str] = {rule["record"] for rule in load_rules() if "record" in rule}
    return emitted | recorded | catalogue["intended"] | catalogue["external"]


def test_every_rule_reads_metrics_that_exist(known):
    for rule in load_rules():
        name = rule.get("alert") or rule.get("record")
        used = promql_metric_names(rule["expr"])
        assert used, f"{name}: no metric found in its expression"
        assert used <= known, f"{name}: {sorted(used - known)} are emitted by nothing"


def test_there_is_a_dashboard():
    assert DASHBOARDS


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_dashboard_panel_reads_metrics_that_exist(path, known):
    dashboard = json.loads(path.read_text())
    panels = [p for p in dashboard_panels(dashboard) if p.get("type") != "row"]
    assert panels
    ids = [p["id"] for p in dashboard_panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        exprs = [t["expr"] for t in panel.get("targets", [])]
        assert exprs, f"{panel['title']}: no query"
        used = set().union(*(promql_metric_names(e) for e in exprs))
        assert used, f"{panel['title']}: reads no metric"
        assert used <= known, f"{panel['title']}: {sorted(used - known)} are emitted by nothing"
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_the_catalogue_holds_only_what_is_used_and_not_yet_emitted(emitted, catalogue):
    used = {n for rule in load_rules() for n in promql_metric_names(rule["expr"])}
    for path in DASHBOARDS:
        for panel in dashboard_panels(json.loads(path.read_text())):
            for target in panel.get("targets", []):
                used |= promql_metric_names(target["expr"])
    listed = catalogue["intended"] | catalogue["external"]
    assert listed <= used, f"{sorted(listed - used)} are listed in metrics.yaml but unused"
    landed = catalogue["intended"] & emitted
    assert not landed, f"{sorted(landed)} are emitted now: remove them from metrics.yaml"


# --- alerts, runbooks and their tests ---------------------------------------------------------


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in load_rules() if "alert" in rule]


def test_every_alert_links_a_runbook_that_says_how_to_diagnose_and_recover():
    assert alerts()
    for alert in alerts():
        url = alert["annotations"]["runbook_url"]
        assert url.startswith(RUNBOOK_PREFIX + "docs/runbooks/"), alert["alert"]
        path = REPO / url.removeprefix(RUNBOOK_PREFIX)
        assert path.is_file(), f"{alert['alert']}: {path.relative_to(REPO)} does not exist"
        headings = [line.lower() for line in path.read_text().splitlines() if line[:3] == "## "]
        for section in ("## diagnose", "## recover"):
            assert any(h.startswith(section) for h in headings), f"{path.name}: no {section}"
        assert alert["annotations"].get("summary"), alert["alert"]
        assert alert["labels"]["severity"] in {"page", "ticket"}, alert["alert"]


def test_alert_names_are_unique():
    names = [a["alert"] for a in alerts()]
    assert len(names) == len(set(names))


def test_every_alert_has_a_promtool_test_in_which_it_fires():
    assert RULE_TESTS
    fired: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    fired.add(check["alertname"])
    missing = {a["alert"] for a in alerts()} - fired
    assert not missing, f"no promtool test where {sorted(missing)} fire"


def test_the_gke_overlay_ships_the_dashboards_to_grafana(gke):
    maps = [
        o
        for o in gke
        if o["kind"] == "ConfigMap"
        and o["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    ]
    assert len(maps) == 1
    shipped = maps[0]["data"]
    assert set(shipped) == {p.name for p in DASHBOARDS}
    for path in DASHBOARDS:
        assert json.loads(shipped[path.name]) == json.loads(path.read_text())


# --- promtool ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def promtool() -> Path:
    if not PROMTOOL.is_file():
        pytest.fail(f"{PROMTOOL.relative_to(REPO)} not installed: run 'make deps'")
    return PROMTOOL


def check_monitoring(monitoring: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - the project's script, fixed argv
        [str(CHECK)],
        env={"PATH": "/usr/bin:/bin", "MONITORING": str(monitoring)},
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_promtool_checks_and_tests_the_rules(promtool):
    done = check_monitoring(MONITORING)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


@pytest.fixture
def monitoring_copy(tmp_path):
    copy = tmp_path / "monitoring"
    shutil.copytree(MONITORING, copy)
    return copy


def test_promtool_catches_a_broken_expression(promtool, monitoring_copy):
    rules = monitoring_copy / "rules.yaml"
    rules.write_text(
        rules.read_text().replace(
            "expr: max by (psp) (payments_psp_circuit_breaker_state) == 1",
            "expr: max by (psp) (payments_psp_circuit_breaker_state == 1",
        )
    )
    done = check_monitoring(monitoring_copy)
    assert done.returncode != 0
    assert "PaymentServiceProviderOutage" in done.stdout + done.stderr or "parse" in done.stderr


def test_promtool_tests_catch_a_threshold_that_no_longer_pages(promtool, monitoring_copy):
    rules = monitoring_copy / "rules.yaml"
    text = rules.read_text()
    assert text.count("(14.4 * 0.001)") == 2
    rules.write_text(text.replace("(14.4 * 0.001)", "(144 * 0.001)"))
    done = check_monitoring(monitoring_copy)
    assert done.returncode != 0
    assert "CheckoutAvailabilityBudgetBurnFast" in done.stdout + done.stderr
