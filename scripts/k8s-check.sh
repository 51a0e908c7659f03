#!/usr/bin/env bash
# `make k8s-check`: render every kustomize overlay, validate every object offline (pinned
# Kubernetes schemas + k8s/schemas/crds.yaml), lint with kube-score and the project's rules.
# Generated manifests must be fresh: k8s/components/pubsub/{topology,iam}.yaml are rendered
# from the topology as code (scripts/render_pubsub_topology.py) and the Python services'
# Dockerfiles from one template (scripts/render_dockerfiles.py); a stale file fails here.
# The rest lives in scripts/k8s_check.py; this wrapper checks the tools are installed.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in .tools/bin/kustomize .tools/bin/kube-score .venv/bin/python; do
  if [[ ! -x $tool ]]; then
    echo "k8s-check: $tool is missing; run 'make deps' (GOBIN=\$PWD/.tools/bin go install tool)" >&2
    exit 2
  fi
done
.venv/bin/python scripts/render_pubsub_topology.py --check
.venv/bin/python scripts/render_dockerfiles.py --check
exec .venv/bin/python scripts/k8s_check.py "$@"
