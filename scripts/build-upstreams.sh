#!/usr/bin/env bash
# Builds the current generation of the servers the tests and the demo run
# against (SPEC section 8), pinned, from the Go module proxy, into a cache
# keyed by version: a second run does nothing. Prints the bin directory.
#
#   PROMGATE_CACHE  cache root (default ~/.cache/promgate)
set -euo pipefail
cache="${PROMGATE_CACHE:-$HOME/.cache/promgate}"

PROMETHEUS_VERSION=v0.316.0   # Prometheus 3.16.0
ALERTMANAGER_VERSION=v0.28.1  # its module embeds the UI; 0.35's does not

build() { # name module/cmd version
  local name=$1 pkg=$2 version=$3
  local dir="$cache/bin/$name-$version"
  if [ -x "$dir/$name" ]; then
    return
  fi
  mkdir -p "$dir.tmp"
  echo "building $pkg@$version" >&2
  GOBIN="$(cd "$dir.tmp" && pwd)" CGO_ENABLED=0 go install "$pkg@$version"
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
}

build prometheus github.com/prometheus/prometheus/cmd/prometheus "$PROMETHEUS_VERSION"
build promtool github.com/prometheus/prometheus/cmd/promtool "$PROMETHEUS_VERSION"
build alertmanager github.com/prometheus/alertmanager/cmd/alertmanager "$ALERTMANAGER_VERSION"
build amtool github.com/prometheus/alertmanager/cmd/amtool "$ALERTMANAGER_VERSION"

# One directory with all four, for PATH-like use by the tests.
out="$cache/current"
mkdir -p "$out"
ln -sf "$cache/bin/prometheus-$PROMETHEUS_VERSION/prometheus" "$out/prometheus"
ln -sf "$cache/bin/promtool-$PROMETHEUS_VERSION/promtool" "$out/promtool"
ln -sf "$cache/bin/alertmanager-$ALERTMANAGER_VERSION/alertmanager" "$out/alertmanager"
ln -sf "$cache/bin/amtool-$ALERTMANAGER_VERSION/amtool" "$out/amtool"
echo "$out"
