#!/usr/bin/env bash
# make e2e-kind: build the images, load them into a kind cluster and run the end-to-end
# tests (tests/e2e) against it; the tests install the chart with these images.
#
# Needs docker (with a running daemon), kind, helm and kubectl on PATH (helm may instead be
# named by SHIFTBOSS_HELM, as `make` does with the one `make helm` builds), and the venv
# (`make venv`). Environment:
#   KEEP=1                    keep the cluster (and its kubeconfig) afterwards
#   KIND_CLUSTER_NAME         default shiftboss-e2e; an existing cluster of that name is reused
#   KIND_NODE_IMAGE           a kindest/node image (default: the one of this kind release)
#   SHIFTBOSS_E2E_IMAGE_TAG   the images' tag, default e2e
# Extra arguments go to pytest, e.g. `bash hack/e2e-kind.sh -k upgrade -x`.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

cluster=${KIND_CLUSTER_NAME:-shiftboss-e2e}
tag=${SHIFTBOSS_E2E_IMAGE_TAG:-e2e}
# The chart's default repositories: the tests only set the tag.
registry=ghcr.io/shiftboss
operator_image=$registry/shiftboss-operator:$tag
worker_image=$registry/shiftboss-worker:$tag
example_image=$registry/shiftboss-example-worker:$tag
go_image=$registry/shiftboss-go-smoke:$tag

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
fail() { echo "error: $*" >&2; exit 1; }

declare -A how=(
  [docker]="install Docker: https://docs.docker.com/engine/install/"
  [kind]="go install sigs.k8s.io/kind@v0.33.0 (then add \$(go env GOPATH)/bin to PATH)"
  [kubectl]="install kubectl: https://kubernetes.io/docs/tasks/tools/"
)
for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null || fail "$tool is not on PATH: ${how[$tool]}"
done
# The tests run helm themselves (tests/e2e/helm.py reads SHIFTBOSS_HELM).
if [[ -n ${SHIFTBOSS_HELM:-} ]]; then
  [[ -x $SHIFTBOSS_HELM ]] || fail "SHIFTBOSS_HELM=$SHIFTBOSS_HELM is not executable: run \`make helm\`"
else
  command -v helm >/dev/null \
    || fail "helm not found: put helm 3 on PATH, or run \`make helm\` and set SHIFTBOSS_HELM to the binary it built"
  SHIFTBOSS_HELM=$(command -v helm)
  export SHIFTBOSS_HELM
fi
docker info >/dev/null 2>&1 || fail "docker cannot reach a daemon (is Docker running, may this user use it?)"
[[ -x .venv/bin/pytest ]] || fail ".venv/bin/pytest is missing: run \`make venv\`"

state=$root/.cache/e2e-kind
kubeconfig=$state/kubeconfig
mkdir -p "$state"

cleanup() {
  local status=$?
  if [[ ${KEEP:-} == 1 ]]; then
    log "KEEP=1: cluster $cluster kept; kubeconfig: $kubeconfig"
  else
    log "deleting kind cluster $cluster (KEEP=1 keeps it)"
    kind delete cluster --name "$cluster" >&2 || true
    rm -f "$kubeconfig"
  fi
  exit "$status"
}
trap cleanup EXIT

if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  log "reusing kind cluster $cluster"
else
  log "creating kind cluster $cluster"
  kind create cluster --name "$cluster" --wait 180s ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"}
fi
kind get kubeconfig --name "$cluster" >"$kubeconfig"

log "building $operator_image"
docker build -f images/operator/Dockerfile -t "$operator_image" .
log "building $worker_image"
docker build -f images/worker/Dockerfile -t "$worker_image" .
log "building $example_image (FROM $worker_image)"
docker build --build-arg WORKER_BASE="$worker_image" -t "$example_image" examples/worker-image
log "building $go_image"
docker build -f sdk/go/examples/smoke/Dockerfile -t "$go_image" sdk/go

log "loading the images into $cluster"
kind load docker-image --name "$cluster" "$operator_image" "$worker_image" "$example_image" "$go_image"

log "running tests/e2e against $cluster"
SHIFTBOSS_KUBECONFIG=$kubeconfig SHIFTBOSS_E2E_IMAGE_TAG=$tag .venv/bin/pytest -q tests/e2e "$@"
