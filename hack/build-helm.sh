#!/usr/bin/env bash
# Build helm v$HELM_VERSION from its Go module into a cache keyed by version, and skip
# the work when a working binary is already there.  Prints the binary's path on its
# last line.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache_root=${SHIFTBOSS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shiftboss}
out=$cache_root/helm-v$HELM_VERSION
helm=$out/helm
# Written after a build by this script: a binary built otherwise lacks the Kubernetes
# version below and is rebuilt.
stamp=$out/.complete

if [[ -x $helm && -f $stamp ]] && "$helm" version --short >/dev/null 2>&1; then
  echo "helm: cached in $helm" >&2
  echo "$helm"
  exit 0
fi

command -v go >/dev/null || { echo "error: Go is required to build helm (https://go.dev/dl)" >&2; exit 1; }
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
module=helm.sh/helm/v3@v$HELM_VERSION
# As helm's own Makefile does: the Kubernetes version `helm template` and `helm lint`
# assume without a cluster is the one of the client-go it is built with (v0.N -> 1.N);
# left unset it is 1.20, older than the chart's kubeVersion.
modfile=$(go mod download -json "$module" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
[[ -f $modfile ]] || { echo "error: could not download $module" >&2; exit 1; }
client_go=$(awk '$1 == "k8s.io/client-go" { print $2; exit }' "$modfile")
kube_minor=$(cut -d. -f2 <<<"$client_go")
[[ $kube_minor =~ ^[0-9]+$ ]] || { echo "error: no k8s.io/client-go version in $modfile" >&2; exit 1; }
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$kube_minor"
done

mkdir -p "$out"
# Built beside the cache, then moved in one rename: an interrupted build never leaves
# a half-written binary where the check above would trust it.
tmp=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "building helm v$HELM_VERSION from its Go module (about a minute)" >&2
GOBIN=$tmp go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION"
"$tmp/helm" version --short >&2
rm -f "$stamp"
mv -f "$tmp/helm" "$helm"
touch "$stamp"
echo "$helm"
