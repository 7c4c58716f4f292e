#!/usr/bin/env bash
# Builds the current generation of the servers the tests and the demo run
# against (SPEC section 8), pinned, from the Go module proxy, into a cache
# keyed by version: a second run does nothing. Prints the bin directory.
#
#   PROMGATE_CACHE  cache root (default ~/.cache/promgate)
set -euo pipefail
cache="${PROMGATE_CACHE:-$HOME/.cache/promgate}"
mkdir -p "$cache"
# One build at a time: a second caller (CI starts one early, make test
# asks again) waits and then finds everything built.
exec 9>"$cache/.build-upstreams.lock"
flock 9

PROMETHEUS_VERSION=v0.316.0   # Prometheus 3.16.0
PROMETHEUS_RELEASE=3.16.0
ALERTMANAGER_VERSION=v0.28.1  # its module embeds the UI; 0.35's does not
ALERTMANAGER_RELEASE=0.28.1
# Part of the cache key: a change to how the servers are built rebuilds them.
BUILD=2

build() { # name module/cmd version release
  local name=$1 pkg=$2 version=$3 release=$4
  local dir="$cache/bin/$name-$version-b$BUILD"
  if [ -x "$dir/$name" ]; then
    return
  fi
  mkdir -p "$dir.tmp"
  echo "building $pkg@$version" >&2
  # go install sets no version: the servers would report "" in
  # /api/v1/status/buildinfo and --version, which clients (and promgate)
  # read.
  local v=github.com/prometheus/common/version
  GOBIN="$(cd "$dir.tmp" && pwd)" CGO_ENABLED=0 go install \
    -ldflags "-X $v.Version=$release -X $v.Revision=$version -X $v.Branch=HEAD -X $v.BuildUser=promgate" \
    "$pkg@$version"
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
}

build prometheus github.com/prometheus/prometheus/cmd/prometheus "$PROMETHEUS_VERSION" "$PROMETHEUS_RELEASE"
build promtool github.com/prometheus/prometheus/cmd/promtool "$PROMETHEUS_VERSION" "$PROMETHEUS_RELEASE"
build alertmanager github.com/prometheus/alertmanager/cmd/alertmanager "$ALERTMANAGER_VERSION" "$ALERTMANAGER_RELEASE"
build amtool github.com/prometheus/alertmanager/cmd/amtool "$ALERTMANAGER_VERSION" "$ALERTMANAGER_RELEASE"

# One directory with all four, for PATH-like use by the tests.
out="$cache/current"
mkdir -p "$out"
ln -sfn "$cache/bin/prometheus-$PROMETHEUS_VERSION-b$BUILD/prometheus" "$out/prometheus"
ln -sfn "$cache/bin/promtool-$PROMETHEUS_VERSION-b$BUILD/promtool" "$out/promtool"
ln -sfn "$cache/bin/alertmanager-$ALERTMANAGER_VERSION-b$BUILD/alertmanager" "$out/alertmanager"
ln -sfn "$cache/bin/amtool-$ALERTMANAGER_VERSION-b$BUILD/amtool" "$out/amtool"
# Thanos (e2e/thanos_test.go), pinned and cached the same way, linked into $out.
bash "$(dirname "$0")/build-thanos.sh" >/dev/null
# VictoriaMetrics, for the victoriametrics enforcement mode's tests.
vm="$(bash "$(dirname "$0")/build-victoriametrics.sh")"
ln -sfn "$vm/victoria-metrics" "$out/victoria-metrics"
echo "$out"
