# Shiftboss: `make demo` and `make test` do all the set-up themselves on a fresh machine.
include hack/versions.env

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export SHIFTBOSS_CACHE ?= $(HOME)/.cache/shiftboss
K8S_BIN := $(SHIFTBOSS_CACHE)/k8s-v$(KUBE_VERSION)-etcd-v$(ETCD_VERSION)/bin
export SHIFTBOSS_K8S_BIN := $(K8S_BIN)
export SHIFTBOSS_HELM := $(SHIFTBOSS_CACHE)/helm-v$(HELM_VERSION)/helm
PYTEST_ARGS ?=

.PHONY: help venv control-plane helm local-cluster e2e-kind test unit integration lint format go crds manifests openapi demo bench bench-scale clean

help:
	@echo "make demo           run the demo on a local control plane (builds it the first time)"
	@echo "make test           lint, unit and integration tests (builds everything the first time)"
	@echo "make unit           unit tests only (no cluster)"
	@echo "make go             the Go SDK: gofmt, go vet, go test"
	@echo "make control-plane  build kube-apiserver & co. v$(KUBE_VERSION) and etcd v$(ETCD_VERSION) into $(K8S_BIN)"
	@echo "make helm           build helm v$(HELM_VERSION) from its Go module into $(SHIFTBOSS_HELM)"
	@echo "make local-cluster  a local control plane with the example images loaded, until Ctrl-C: try"
	@echo "                    README's install section there (prints the KUBECONFIG and PATH to export)"
	@echo "make e2e-kind       tests/e2e against a kind cluster with the images built (needs docker and kind)"
	@echo "make crds           regenerate crds/ (and the chart's copy) from the pydantic models"
	@echo "make manifests      regenerate deploy/kustomize/ from the Helm chart"
	@echo "make openapi        regenerate docs/worker-api.openapi.json from the protocol models"
	@echo "make bench          benchmarks, at most ~10 min: the API server's ceiling, bursts of 1,000 and 10,000"
	@echo "                    jobs, batch/v1 side by side, memory, restart, 5 min sustained; a table and"
	@echo "                    bench-results/bench.json. Sizes: SHIFTBOSS_BENCH_BURSTS=1000,10000,"
	@echo "                    _WORKERS=4, _CONCURRENCY=8, _IDLE=20, _CREATORS=32, _CEILING_OPS=600,"
	@echo "                    _CEILING_LEVELS=8,32,64, _PEER=50, _RESTART_QUEUED=20,"
	@echo "                    _SUSTAINED_SECONDS=300 (0 skips), _SUSTAINED_FRACTION=0.7, _PROFILE=1 (py-spy)"
	@echo "make bench-scale    100,000 queued Jobs (~20-30 min): operator memory, restart, claim latency;"
	@echo "                    SHIFTBOSS_BENCH_SCALE_QUEUED=100000, SHIFTBOSS_BENCH_SCALE_CLAIMS=50"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

control-plane:
	bash hack/build-control-plane.sh

helm:
	bash hack/build-helm.sh

lint: venv
	$(VENV)/bin/ruff check shiftboss worker_runtime tests examples
	$(VENV)/bin/ruff format --check shiftboss worker_runtime tests examples
	$(VENV)/bin/mypy shiftboss worker_runtime

format: venv
	$(VENV)/bin/ruff format shiftboss worker_runtime tests examples
	$(VENV)/bin/ruff check --fix shiftboss worker_runtime tests examples

# The Go worker SDK: formatted, vetted and unit-tested (standard library only).
go:
	cd sdk/go && test -z "$$(GOTOOLCHAIN=local gofmt -l .)" \
		&& GOTOOLCHAIN=local GOFLAGS=-mod=mod go vet ./... \
		&& GOTOOLCHAIN=local GOFLAGS=-mod=mod go test ./...

# No cluster, but helm (chart rendering) and kubectl (its built-in kustomize) are needed.
unit: venv control-plane helm
	$(VENV)/bin/pytest tests/unit -q $(PYTEST_ARGS)

# Two workers, each with a local control plane of its own; a test file stays on one worker.
PARALLEL ?= -n 2 --dist loadfile

integration: venv control-plane
	$(VENV)/bin/pytest tests/integration -q $(PARALLEL) $(PYTEST_ARGS)

test: venv control-plane helm lint go
	$(VENV)/bin/pytest tests -q $(PARALLEL) $(PYTEST_ARGS)

# The local control plane for trying the chart by hand (python -m shiftboss.testing up --help).
local-cluster: venv control-plane helm
	$(PY) -m shiftboss.testing up

# The end-to-end suite (tests/e2e) against a kind cluster with the real images: needs
# docker and kind (this machine has neither; .github/workflows/e2e-kind.yml runs it).
e2e-kind: venv helm
	bash hack/e2e-kind.sh

crds: venv
	$(PY) -m shiftboss.api.crdgen crds/ charts/shiftboss/files/crds/

manifests: venv helm
	$(PY) hack/render-kustomize.py

openapi: venv
	$(PY) -m shiftboss.protocol_doc docs/worker-api.openapi.json

demo: venv control-plane helm
	$(PY) -m shiftboss.demo

bench: venv control-plane
	$(PY) -m shiftboss.bench

bench-scale: venv control-plane
	$(PY) -m shiftboss.bench scale

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
