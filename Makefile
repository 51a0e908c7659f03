# Commerce Mesh — the project's vocabulary. `make run` and `make test` are all a new user needs:
# each installs what it needs (pinned, idempotent) before doing its job.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
VENV := .venv
BUF := node_modules/.bin/buf
# protovalidate's validate.proto comes from this Go module version (see docs/adr/0002).
PROTOVALIDATE_VERSION := v1.2.2
export PATH := $(CURDIR)/.tools/bin:$(CURDIR)/$(VENV)/bin:$(PATH)
export GOFLAGS := -mod=mod

STAMP_PY := $(VENV)/.installed
STAMP_NODE := node_modules/.installed
STAMP_GO := .tools/bin/.installed
STAMP_PROTOS := .deps/proto/.staged
PUBSUB_EMULATOR := .tools/bin/pubsub-emulator
GATEWAY := .tools/bin/gateway
# promtool validates and unit-tests the alert rules. It is built in a module of its own: in our
# go.mod its dependencies would lift k8s.io/api under kustomize and kube-score.
PROMETHEUS_MODULE_VERSION := v0.315.0
STAMP_PROMTOOL := .tools/promtool-module/.installed-$(PROMETHEUS_MODULE_VERSION)
# HTTP and gRPC load generators for `make bench` (bench/gateway), each in its own module.
BENCH_TOOLS := .tools/bin/hey .tools/bin/ghz .tools/bin/k6
# The local trace viewer of `make run` (Zipkin from Maven Central, docs/adr/0018).
TRACE_VIEWER := .tools/zipkin/zipkin-server-3.6.1-exec.jar

.PHONY: help deps generate check-generated lint format breaking release-contracts test test-unit test-integration test-contract run demo clean k8s-check k8s-generate monitoring-check soak bench

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP_PY): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --upgrade pip==25.3
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

$(STAMP_NODE): package.json package-lock.json
	@# npm ci rejects lockfiles missing other platforms' optional buf binaries (an npm 11 bug);
	@# buf is pinned exactly in package.json, so a plain install is reproducible.
	npm install --no-audit --no-fund --loglevel=error
	touch $@

$(STAMP_GO): go.mod go.sum
	GOBIN=$(CURDIR)/.tools/bin go install tool
	touch $@

# Google's pstest Pub/Sub fake as a server (no gcloud here); see services/pubsub-emulator.
$(PUBSUB_EMULATOR): go.mod go.sum services/pubsub-emulator/main.go
	go build -o $@ ./services/pubsub-emulator

# The REST/JSON facade (grpc-gateway), from services/gateway and the generated Go stubs.
$(GATEWAY): go.mod go.sum $(wildcard services/gateway/*.go) $(shell find gen/go -name '*.go')
	go build -o $@ ./services/gateway

$(STAMP_PROMTOOL):
	rm -rf .tools/promtool-module && mkdir -p .tools/promtool-module
	cd .tools/promtool-module && printf 'module commerce-mesh/tools/promtool\n\ngo 1.26.0\n' > go.mod && \
	  go get -tool github.com/prometheus/prometheus/cmd/promtool@$(PROMETHEUS_MODULE_VERSION) && \
	  GOBIN=$(CURDIR)/.tools/bin go install tool
	touch $@

.tools/bin/hey:
	GOFLAGS= GOBIN=$(CURDIR)/.tools/bin go install github.com/rakyll/hey@v0.1.4

.tools/bin/ghz:
	GOFLAGS= GOBIN=$(CURDIR)/.tools/bin go install github.com/bojand/ghz/cmd/ghz@v0.121.0

.tools/bin/k6:
	GOFLAGS= GOBIN=$(CURDIR)/.tools/bin go install go.k6.io/k6@v1.8.1

$(TRACE_VIEWER): scripts/install-trace-viewer.sh
	scripts/install-trace-viewer.sh

$(STAMP_PROTOS): $(STAMP_PY) scripts/stage-third-party-protos.sh Makefile
	PROTOVALIDATE_VERSION=$(PROTOVALIDATE_VERSION) PYTHON=$(VENV)/bin/python scripts/stage-third-party-protos.sh
	touch $@

deps: $(STAMP_PY) $(STAMP_NODE) $(STAMP_GO) $(STAMP_PROTOS) $(PUBSUB_EMULATOR) $(GATEWAY) $(STAMP_PROMTOOL) $(TRACE_VIEWER) ## install the pinned toolchain and build the Go binaries

generate: deps ## format the contracts and regenerate gen/ (python, go, openapi)
	$(BUF) format -w proto
	$(BUF) generate
	$(BUF) generate --template buf.gen.validate.yaml

check-generated: deps ## fail if gen/ differs from what the contracts generate
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(BUF) generate -o "$$tmp"; \
	$(BUF) generate --template buf.gen.validate.yaml -o "$$tmp"; \
	if ! diff -r -q gen "$$tmp/gen"; then \
	  echo "gen/ is stale: run 'make generate' and commit the result" >&2; exit 1; \
	fi; echo "gen/ is fresh"

lint: deps ## buf format + lint, ruff, mypy --strict, go build/vet
	$(BUF) format -d --exit-code proto
	$(BUF) lint proto
	ruff check .
	ruff format --check .
	mypy .
	go build ./gen/go/... ./services/...
	go vet ./gen/go/... ./services/...

format: deps ## apply buf format and ruff format
	$(BUF) format -w proto
	ruff check --fix .
	ruff format .

breaking: deps ## buf breaking against the last released contracts (contracts/released)
	$(BUF) breaking proto --against contracts/released/commerce.binpb

release-contracts: deps ## record the current contracts as released (the breaking baseline)
	$(BUF) build proto --exclude-source-info -o contracts/released/commerce.binpb

test-unit: deps
	pytest tests/unit -q

test-contract: deps
	pytest tests/contract -q

test-integration: deps
	pytest tests/integration -q

k8s-check: $(STAMP_PY) $(STAMP_GO) ## render every k8s overlay, validate offline (k8s 1.33 schemas), kube-score + project rules
	scripts/k8s-check.sh

k8s-generate: $(STAMP_PY) ## re-render the generated deploy files (Pub/Sub topology + IAM, Python Dockerfiles)
	$(VENV)/bin/python scripts/render_pubsub_topology.py
	$(VENV)/bin/python scripts/render_dockerfiles.py

monitoring-check: $(STAMP_PY) $(STAMP_PROMTOOL) ## promtool check + unit tests of the alert rules
	scripts/check-monitoring.sh

test: lint breaking check-generated k8s-check monitoring-check ## everything CI checks: contract gates, lint, k8s manifests, all tests
	go test -count=1 ./services/...
	pytest -q

soak: deps ## the long runs: 10,000 ledger transfers, 100 relay kills, 200 checkout crashes, a long fuzz run
	LEDGER_SOAK=1 pytest tests/integration/ledger/test_concurrent_transfers.py -q --timeout=1800
	COMMERCE_EVENTS_SOAK_CRASHES=100 pytest tests/integration/chassis/events/test_relay_crash.py -q
	CHECKOUT_SOAK=1 pytest tests/integration/checkout/test_crash_matrix.py -q --timeout=1800
	COMMERCE_FUZZ_EXAMPLES=50 pytest tests/e2e/test_rest_fuzz.py -q --timeout=3600

bench: deps $(BENCH_TOOLS) ## benchmarks, reported as ratios to the same run's baselines (see bench/)
	$(VENV)/bin/python -m bench.chassis
	$(VENV)/bin/python -m bench.ledger --json bench/ledger/results.json
	$(VENV)/bin/python -m bench.events --output bench/events/results.json
	$(VENV)/bin/python -m bench.payments --json bench/payments/results.json
	$(VENV)/bin/python -m bench.checkout --json bench/checkout/results.json
	$(VENV)/bin/python -m bench.gateway

run: deps ## start what exists of the mesh locally (see README)
	$(VENV)/bin/python -m services.devrun

demo: deps ## one checkout through the whole mesh (REST), its invoice, balances and trace; then stop
	$(VENV)/bin/python -m services.devrun demo

clean: ## remove installed toolchains and local state (not gen/)
	rm -rf $(VENV) node_modules .tools .deps .data *.egg-info
