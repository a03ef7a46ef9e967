#!/usr/bin/env bash
# Starts a Docker engine that can run privileged containers on this kind of machine.
#
# The host's capability bounding set lacks CAP_SYS_RESOURCE, so plain runc fails privileged
# containers ("unable to apply caps: operation not permitted"). dockerd is started with
# fixtures/capdrop-runc as its default runtime, which drops what the host cannot grant and then
# calls the real runc. An engine that is already running is used as it is when it can run a
# privileged container; otherwise this script says why and stops.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
log=${PXEC_DOCKERD_LOG:-/var/log/pxec-dockerd.log}
wrapper=/usr/local/bin/capdrop-runc

say() { printf 'engine: %s\n' "$*" >&2; }

if ! command -v dockerd >/dev/null 2>&1; then
  say "installing docker.io"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker.io >/dev/null
fi

# Build the wrapper when its source is newer than the installed copy.
if [ ! -x "$wrapper" ] || [ -n "$(find "$here/fixtures/capdrop-runc" -newer "$wrapper" -name '*.go' 2>/dev/null)" ]; then
  say "building $wrapper"
  (cd "$here" && CGO_ENABLED=0 go build -o "$wrapper.tmp" ./fixtures/capdrop-runc && mv "$wrapper.tmp" "$wrapper")
fi

privileged_ok() {
  # Any local image will do; the engine's own "hello" is an empty import.
  docker image inspect pxec/scratch-probe >/dev/null 2>&1 ||
    tar -cf - --files-from /dev/null | docker import - pxec/scratch-probe >/dev/null
  docker run --rm --privileged --entrypoint /nonexistent pxec/scratch-probe 2>&1 | grep -q 'no such file' 
}

if docker info >/dev/null 2>&1; then
  if docker info --format '{{.DefaultRuntime}}' | grep -qx capdrop || privileged_ok; then
    say "using the running engine"
    exit 0
  fi
  say "a Docker engine is running but cannot start privileged containers; restart it with --default-runtime pointing at $wrapper"
  exit 1
fi

say "starting dockerd (log: $log)"
mkdir -p "$(dirname "$log")"
nohup dockerd --add-runtime "capdrop=$wrapper" --default-runtime capdrop >"$log" 2>&1 &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    say "dockerd is up"
    exit 0
  fi
  sleep 1
done
say "dockerd did not answer within 60 s; last lines of $log:"
tail -n 20 "$log" >&2
exit 1
