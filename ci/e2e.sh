#!/usr/bin/env bash
# make e2e: the conformance suite on a kind cluster.
#
# Brings the lab cluster up (ci/cluster: images from registries or built from Go modules and
# Debian packages as PXEC_IMAGES and PXEC_IMAGES_FILE say, kind, Multus, KubeVirt, bridges br1
# and br2), runs suites/pxe against it with `make certify`,
# the vendors' own command, and removes the cluster again, also on failure or Ctrl-C. A cluster
# "pxec" that exists already (from `make cluster`) is used as it is and left running.
#
# The suite runs with a `docker` on its PATH that refuses, so it reaches the nodes only through
# the API, exactly as on a vendor's cluster: the path every CI run exercises is the vendors'.
#
# The cluster is the run's own, so the fault specs may change its nodes (faultInjection).
#
#   PXEC_CLUSTER  the kind cluster's name (default pxec), for a second cluster beside the lab's
#   PXEC_IMAGES, PXEC_IMAGES_FILE  where the images come from (README, "Image sources")
#   CLUSTER_ARGS  extra flags of `ci/cluster up`, e.g. --node-registry HOST=URL
#   E2E_LABELS    Ginkgo label filter (default "!slow": the slow specs wait minutes for OVMF's
#                 PXE timeouts; E2E_LABELS= runs everything)
#   E2E_PROCS     parallel suite processes (default 2: measured faster than 1 here, see README)
#   GINKGO_ARGS   extra ginkgo flags, e.g. --label-filter=negative or --focus=efi
#   SUITE_ARGS    suite settings, e.g. --pxec.mac=de:00:00:00:00:01 (see README.md)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
GO=${GO:-go}
cache=${PXEC_CACHE:-$HOME/.cache/pxe-conformance}
name=${PXEC_CLUSTER:-pxec}
kubeconfig="$cache/kind-$name.kubeconfig"
say() { printf 'e2e: %s\n' "$*" >&2; }
# Built, not `go run`: a bad PXEC_IMAGES must end this script with exit status 2, as it ends ci/cluster.
"$GO" build -o bin/cluster ./ci/cluster

ours=false
nodocker=""
# cleanup runs on every exit, Ctrl-C included: the refusing docker's folder goes, and the
# cluster too when this run created it.
cleanup() {
  status=$?
  if [ -n "$nodocker" ]; then rm -rf "$nodocker"; fi
  if $ours; then
    say "removing the cluster this run created"
    bin/cluster down --name "$name" || status=1
  fi
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if docker ps -a --format '{{.Names}}' | grep -qx "$name-control-plane" && [ -s "$kubeconfig" ]; then
  say "using the running kind cluster $name ($kubeconfig); it stays up afterwards"
else
  ours=true
  # shellcheck disable=SC2086 # CLUSTER_ARGS is a list of flags
  bin/cluster up --name "$name" ${CLUSTER_ARGS:-}
fi

mkdir -p "${ARTIFACTS:-$here/_artifacts}"
nodocker=$(mktemp -d)
printf '#!/bin/sh\necho "docker: not for the suite: it reaches nodes through the Kubernetes API, as on a vendor cluster" >&2\nexit 1\n' >"$nodocker/docker"
chmod +x "$nodocker/docker"
PATH="$nodocker:$PATH" make --no-print-directory certify KUBECONFIG="$kubeconfig" LABELS="${E2E_LABELS-!slow}" \
  GINKGO_ARGS="--procs=${E2E_PROCS:-2} ${GINKGO_ARGS:-}" SUITE_ARGS="--pxec.faultInjection=true ${SUITE_ARGS:-}"
