#!/usr/bin/env bash
# Builds Thanos (SPEC section 8), pinned, from the Go module proxy, into the
# cache build-upstreams.sh uses, keyed by version: a second run does nothing.
# Prints the bin directory (the same as build-upstreams.sh's).
#
# Thanos' go.mod has replace directives, so `go install pkg@version` refuses
# it: the module is downloaded, copied to a writable directory and built
# there as the main module. v0.37 and later need a module the proxy does not
# serve, hence v0.36.1.
#
#   PROMGATE_CACHE  cache root (default ~/.cache/promgate)
set -euo pipefail
cache="${PROMGATE_CACHE:-$HOME/.cache/promgate}"
mkdir -p "$cache"
# One build at a time (its own lock: build-upstreams.sh calls this script
# while holding its own).
exec 8>"$cache/.build-thanos.lock"
flock 8

THANOS_VERSION=v0.36.1
THANOS_RELEASE=0.36.1
# Part of the cache key: a change to how the server is built rebuilds it.
BUILD=1

dir="$cache/bin/thanos-$THANOS_VERSION-b$BUILD"
if [ ! -x "$dir/thanos" ]; then
  echo "building github.com/thanos-io/thanos@$THANOS_VERSION" >&2
  moddir=$(go mod download -json "github.com/thanos-io/thanos@$THANOS_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  if [ -z "$moddir" ] || [ ! -d "$moddir" ]; then
    echo "build-thanos: go mod download gave no directory" >&2
    exit 1
  fi
  src=$(mktemp -d "$cache/thanos-src.XXXXXX")
  trap 'chmod -R u+w "$src" 2>/dev/null; rm -rf "$src" "$dir.tmp"' EXIT
  cp -R "$moddir/." "$src/"
  chmod -R u+w "$src"
  mkdir -p "$dir.tmp"
  # Without the version the server reports "" in buildinfo and --version.
  v=github.com/prometheus/common/version
  (cd "$src" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build \
    -ldflags "-X $v.Version=$THANOS_RELEASE -X $v.Revision=$THANOS_VERSION -X $v.Branch=HEAD -X $v.BuildUser=promgate" \
    -o "$dir.tmp/thanos" ./cmd/thanos)
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
fi

out="$cache/current"
mkdir -p "$out"
ln -sfn "$dir/thanos" "$out/thanos"
echo "$out"
