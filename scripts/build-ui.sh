#!/usr/bin/env bash
# Builds Prometheus 3's web UI (mantine-ui), pinned, once into a cache keyed
# by version: a second run does nothing. Prints the directory to run a
# Prometheus in (named "ui", holding static/mantine-ui): a Prometheus built
# without the builtinassets tag, as scripts/build-upstreams.sh builds it,
# serves its UI from there.
#
# The UI is 3.15's: 3.16's lockfile names a package version that the npm
# registry here does not have. 3.15's UI works against a 3.16 server.
#
#   PROMGATE_CACHE  cache root (default ~/.cache/promgate)
set -euo pipefail
cache="${PROMGATE_CACHE:-$HOME/.cache/promgate}"

UI_VERSION=v0.315.0  # Prometheus 3.15.0, the module promgate imports
PNPM_VERSION=10.34.9 # the last pnpm that runs on Debian's Node 20

out="$cache/ui-$UI_VERSION/ui"
if [ -f "$out/static/mantine-ui/index.html" ]; then
  echo "$out"
  exit 0
fi

start=$(date +%s)
mkdir -p "$cache"
# From outside any module, so that no go.mod or go.sum is touched.
src=$(cd "$cache" && go mod download -json "github.com/prometheus/prometheus@$UI_VERSION" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
if [ ! -d "$src/web/ui" ]; then
  echo "build-ui: no web/ui in the module github.com/prometheus/prometheus@$UI_VERSION" >&2
  exit 1
fi

echo "building the Prometheus UI of $UI_VERSION" >&2
work=$(mktemp -d "$cache/ui-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
# The module cache is read-only; the 2.x react-app is not needed.
tar -C "$src/web/ui" --exclude=./react-app -cf - . | tar -C "$work" -xf -
chmod -R u+w "$work"
pnpm=(npx --yes "pnpm@$PNPM_VERSION")
(
  cd "$work"
  # build_ui.sh calls pnpm by name.
  mkdir -p .bin
  printf '#!/bin/sh\nexec npx --yes pnpm@%s "$@"\n' "$PNPM_VERSION" >.bin/pnpm
  chmod +x .bin/pnpm
  export PATH="$work/.bin:$PATH" CI=true
  "${pnpm[@]}" install --frozen-lockfile >&2
  bash build_ui.sh --mantine-ui >&2
)
rm -rf "$out.tmp"
mkdir -p "$out.tmp/static"
mv "$work/static/mantine-ui" "$out.tmp/static/mantine-ui"
rm -rf "$out"
mv "$out.tmp" "$out"
echo "built the Prometheus UI in $(($(date +%s) - start))s" >&2
echo "$out"
