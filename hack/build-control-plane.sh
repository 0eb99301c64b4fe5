#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and etcd
# from their Go modules into a cache keyed by version, and skip the work when the
# cache is already complete.  Prints the bin directory on its last line.
#
# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces the staging
# modules (k8s.io/api, ...) with ./staging paths, and a dependency's replace lines
# are ignored.  So we build it through a small wrapper module that requires it and
# replaces every staging module with the published v0.<minor>.<patch> release.
# etcd gets a separate wrapper module so that its dependencies never skew
# Kubernetes' ones.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache_root=${SHIFTBOSS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shiftboss}
out=$cache_root/k8s-v$KUBE_VERSION-etcd-v$ETCD_VERSION
bin=$out/bin
binaries=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd)

complete() {
  for b in "${binaries[@]}"; do [[ -x $bin/$b ]] || return 1; done
  [[ -f $out/.complete ]]
}
if complete; then
  echo "control plane binaries: cached in $bin" >&2
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || { echo "error: Go is required to build the control plane (https://go.dev/dl)" >&2; exit 1; }
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
# `go build -v` prints one line per compiled package; turn that into a heartbeat.
progress() { awk -v what="$1" '{ n++; if (n % 100 == 0) { printf "[%s]   %s: %d packages compiled\n", strftime("%H:%M:%S"), what, n; fflush() } } /^#|\.go:[0-9]+:|^go: / { print; fflush() }' >&2; }

mkdir -p "$bin" "$out/src/kube" "$out/src/etcd"
start=$(date +%s)
kver=v$KUBE_VERSION
minor=${KUBE_VERSION#*.}; minor=${minor%%.*}
staging_ver=v0.${KUBE_VERSION#*.}

log "building Kubernetes $kver (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl); a cold build takes tens of minutes on two cores"
cd "$out/src/kube"
log "  downloading the k8s.io/kubernetes $kver module"
modfile=$(go mod download -json "k8s.io/kubernetes@$kver" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
[[ -f $modfile ]] || { echo "error: could not download k8s.io/kubernetes@$kver" >&2; exit 1; }
go_line=$(grep -m1 '^go ' "$modfile")
godebug_line=$(grep -m1 '^godebug ' "$modfile" || true)
{
  echo "module shiftboss.local/kube-build"
  echo
  echo "$go_line"
  [[ -n $godebug_line ]] && echo "$godebug_line"
  echo
  echo "require k8s.io/kubernetes $kver"
  echo
  echo "replace ("
  # Every `k8s.io/X => ./staging/src/k8s.io/X` line becomes `k8s.io/X => k8s.io/X v0.N.P`.
  awk -v v="$staging_ver" '$2 == "=>" && $3 ~ /^\.\/staging\// { printf "\t%s => %s %s\n", $1, $1, v }' "$modfile"
  echo ")"
} > go.mod
cat > tools.go <<'GO'
//go:build tools

package tools
GO
log "  resolving dependencies"
pkgs=(k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
      k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
go get "${pkgs[@]/%/@$kver}" >&2
commit=$(go mod download -json "k8s.io/kubernetes@$kver" | sed -n 's/^[[:space:]]*"Hash": "\(.*\)",\{0,1\}$/\1/p' | head -1)
commit=${commit:-0000000000000000000000000000000000000000}
build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$kver -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitCommit=$commit -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done
log "  compiling (all four in one go build, so shared packages compile once)"
go build -v -trimpath -tags selinux,notest -ldflags "$ldflags" -o "$bin/" "${pkgs[@]}" 2>&1 | progress kubernetes
[[ ${PIPESTATUS[0]} -eq 0 ]] || { echo "error: Kubernetes build failed" >&2; exit 1; }

log "building etcd v$ETCD_VERSION"
cd "$out/src/etcd"
cat > go.mod <<MOD
module shiftboss.local/etcd-build

$go_line
MOD
go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >&2
go build -v -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3 2>&1 | progress etcd
[[ ${PIPESTATUS[0]} -eq 0 ]] || { echo "error: etcd build failed" >&2; exit 1; }

touch "$out/.complete"
log "control plane built in $(( $(date +%s) - start ))s into $bin"
echo "$bin"
