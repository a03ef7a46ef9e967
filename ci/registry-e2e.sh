#!/usr/bin/env bash
# make e2e-registry: the upstream image path for real, without a registry on the internet.
#
# A registry on this host (ci/registry serve: go-containerregistry's, blobs on disk) listens on
# loopback, where this host's Docker pulls, and on the gateway of a Docker network of this run,
# where the cluster's nodes pull (ci/cluster up --node-registry sends their containerd's pulls
# for the loopback name there, as kind's local-registry guide does). ci/registry mirror pushes
# this machine's builds into it under the upstream set's repository names and tags, writes that
# set pinned to the digests the registry gave, and leaves no image under those names in the
# local Docker engine. Then, timed as `make e2e` from no images: ci/cluster up with
# PXEC_IMAGES=upstream and that set (the node image pulled by Docker, KubeVirt and Multus pulled
# by the nodes; built here only the PXE server, the CNI plugins and, where the kernel has no
# dummy links, virt-handler), and the suite on that cluster (ci/e2e.sh). Last, ci/registry
# verify shows that every image the pods run from the registry was pulled from it. The
# cluster, the registry, its network and its files are removed at the end, also on failure or
# Ctrl-C.
#
# The images to mirror come from the offline builder, cached by inputs: after `make e2e` they
# are all there; on a cold machine this builds them first, outside the timed part.
#
#   PXEC_CLUSTER  this run's cluster and Docker network (default pxec-registry; not the lab's pxec)
#   E2E_LABELS, E2E_PROCS, GINKGO_ARGS, SUITE_ARGS  as for make e2e
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
GO=${GO:-go}
cache=${PXEC_CACHE:-$HOME/.cache/pxe-conformance}
name=${PXEC_CLUSTER:-pxec-registry}
net=$name
kubeconfig="$cache/kind-$name.kubeconfig"
say() { printf 'e2e-registry: %s\n' "$*" >&2; }
phase() {
  local what=$1 start=$SECONDS
  shift
  say "$what: start"
  "$@"
  say "$what: done in $((SECONDS - start)) s"
}

if [ "$name" = pxec ]; then
  say "PXEC_CLUSTER=pxec names the lab cluster; this run needs one of its own"
  exit 2
fi
if docker ps -a --format '{{.Names}}' | grep -qx "$name-control-plane"; then
  say "a kind cluster $name exists already: remove it first (bin/cluster down --name $name)"
  exit 1
fi
if docker network inspect "$net" >/dev/null 2>&1; then
  say "a Docker network $net exists already: remove it first (docker network rm $net)"
  exit 1
fi

work=$(mktemp -d /tmp/pxec-registry.XXXXXX)
record="${ARTIFACTS:-$here/_artifacts}/registry-e2e"
loopback=""
registry_pid=""
network_made=false
cluster_made=false
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if $cluster_made; then bin/cluster down --name "$name" || status=1; fi
  if [ -n "$registry_pid" ]; then
    kill "$registry_pid" 2>/dev/null || true
    wait "$registry_pid" 2>/dev/null || true
  fi
  # What the pulls left in the local engine under the registry's name (the node image).
  if [ -n "$loopback" ]; then
    docker images --digests --format '{{.Repository}}@{{.Digest}}' | { grep "^$loopback/" || true; } |
      xargs -r docker image rm >/dev/null || status=1
  fi
  mkdir -p "$record"
  cp "$work"/set.yaml "$work"/access.log "$record"/ 2>/dev/null || true
  if $network_made; then docker network rm "$net" >/dev/null || status=1; fi
  rm -rf "$work"
  say "removed the cluster $name, the registry (its set and access log kept in $record), the Docker network $net and $work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$GO" build -o bin/cluster ./ci/cluster
"$GO" build -o bin/registry ./ci/registry
phase "this machine's images to mirror (cached by inputs)" "$GO" run ./ci/imagebuilder node kubevirt-all network

docker network create "$net" >/dev/null
network_made=true
bin/registry serve --network "$net" --dir "$work/blobs" --files "$work/files" \
  --ready "$work/ready" --access-log "$work/access.log" &
registry_pid=$!
for _ in $(seq 100); do
  [ -s "$work/ready" ] && break
  kill -0 "$registry_pid" 2>/dev/null || { say "the registry ended before it listened"; exit 1; }
  sleep 0.1
done
read -r loopback gateway <"$work/ready"

phase "push this machine's builds under the upstream names" \
  bin/registry mirror --registry "$loopback" --files "$work/files" --out "$work/set.yaml"
cat "$work/set.yaml"
node_image=$(sed -n 's/^kindNode: "\(.*\)"$/\1/p' "$work/set.yaml")
if docker image inspect "$node_image" >/dev/null 2>&1; then
  say "the local engine holds $node_image already: kind would not pull it"
  exit 1
fi

start=$SECONDS
cluster_made=true
phase "cluster from the registry" env KIND_EXPERIMENTAL_DOCKER_NETWORK="$net" \
  PXEC_IMAGES=upstream PXEC_IMAGES_FILE="$work/set.yaml" \
  bin/cluster up --name "$name" --node-registry "$loopback=http://$gateway"
phase "suite" env PXEC_CLUSTER="$name" bash ci/e2e.sh
say "make e2e from the registry, no images in the engine or on the nodes beforehand: $((SECONDS - start)) s"

phase "verify that the nodes pulled" \
  bin/registry verify --kubeconfig "$kubeconfig" --set "$work/set.yaml" --access-log "$work/access.log"
for node in $(docker ps --filter "label=io.x-k8s.kind.cluster=$name" --format '{{.Names}}'); do
  say "images on node $node (crictl images):"
  docker exec "$node" crictl images
done
