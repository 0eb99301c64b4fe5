#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and etcd from
# their Go modules into a cache keyed by version (skipped when cached); prints the bin
# directory on its last line.  The logic is shiftboss/testing/binaries.py, which
# `shiftboss dev` runs from an installed package too; it needs only the standard
# library, so no virtualenv is needed yet.  -P keeps shiftboss/testing/ off sys.path
# (its operator.py would shadow the standard library's).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "${PYTHON:-python3}" -P "$here/../shiftboss/testing/binaries.py" "$@"
