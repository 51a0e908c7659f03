#!/usr/bin/env bash
# Validate the monitoring component with promtool (installed by the project, see Makefile):
#   promtool check rules   the PrometheusRule's spec as a plain rules file
#   promtool test rules    k8s/components/monitoring/tests/*-test.yaml (unit tests of every alert)
# The metric names, runbook links and dashboard JSON are checked by tests/k8s/test_monitoring.py.
set -euo pipefail
cd "$(dirname "$0")/.."

PROMTOOL=${PROMTOOL:-.tools/bin/promtool}
MONITORING=${MONITORING:-k8s/components/monitoring}  # overridable for the planted-defect tests
for tool in "$PROMTOOL" .venv/bin/python; do
  if [[ ! -x $tool ]]; then
    echo "check-monitoring: $tool is missing; run 'make deps'" >&2
    exit 2
  fi
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The Prometheus Operator's CRD wraps a plain rules file: spec.groups is that file's groups.
.venv/bin/python - "$MONITORING/rules.yaml" "$work/rules.prom.yaml" <<'PY'
import sys

import yaml

source, target = sys.argv[1:]
with open(source) as f:
    rule = yaml.safe_load(f)
if rule.get("kind") != "PrometheusRule":
    sys.exit(f"{source}: expected one PrometheusRule, got {rule.get('kind')!r}")
with open(target, "w") as f:
    yaml.safe_dump({"groups": rule["spec"]["groups"]}, f, sort_keys=False)
PY
cp "$MONITORING"/tests/*-test.yaml "$work/"

"$PROMTOOL" check rules --lint=all --lint-fatal "$work/rules.prom.yaml"
promtool=$(realpath "$PROMTOOL")
(cd "$work" && "$promtool" test rules ./*-test.yaml)
