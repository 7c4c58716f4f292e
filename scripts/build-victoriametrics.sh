#!/usr/bin/env bash
# Builds VictoriaMetrics single-node, the engine promgate can hand its policy
# down to (enforcement: victoriametrics), pinned, from the Go module proxy,
# into a cache keyed by version: a second run does nothing. Prints the path of
# the binary's directory. build-upstreams.sh calls it and links the binary
# beside the Prometheus servers.
#
#   PROMGATE_CACHE  cache root (default ~/.cache/promgate)
set -euo pipefail
cache="${PROMGATE_CACHE:-$HOME/.cache/promgate}"
mkdir -p "$cache"
# One build at a time; a lock of its own, since build-upstreams.sh holds its
# lock while it calls this script.
exec 8>"$cache/.build-victoriametrics.lock"
flock 8

VICTORIAMETRICS_VERSION=v1.151.0
# Part of the cache key: a change to how the server is built rebuilds it.
BUILD=1

name=victoria-metrics
dir="$cache/bin/$name-$VICTORIAMETRICS_VERSION-b$BUILD"
if [ ! -x "$dir/$name" ]; then
  mkdir -p "$dir.tmp"
  echo "building victoria-metrics@$VICTORIAMETRICS_VERSION" >&2
  # go install sets no version: the server would report an empty one in
  # --version and vm_app_version. The tag in the middle is what VictoriaMetrics
  # reads its short version from.
  v=github.com/VictoriaMetrics/VictoriaMetrics/lib/buildinfo.Version
  GOBIN="$(cd "$dir.tmp" && pwd)" CGO_ENABLED=0 go install \
    -ldflags "-X $v=$name-00000000-000000-tags-$VICTORIAMETRICS_VERSION-0-g0000000" \
    "github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-metrics@$VICTORIAMETRICS_VERSION"
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
fi
echo "$dir"
