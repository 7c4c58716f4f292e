#!/usr/bin/env bash
# Installs the real servers promgate's demo and tests run against, from
# Debian's packages. Idempotent: does nothing when they are present.
set -euo pipefail
need=()
command -v prometheus >/dev/null || need+=(prometheus)
command -v promtool >/dev/null || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
command -v amtool >/dev/null || need+=(prometheus-alertmanager)
command -v nginx >/dev/null || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
command -v chromium >/dev/null || need+=(chromium)
command -v npx >/dev/null || need+=(npm) # builds Prometheus 3's UI (scripts/build-ui.sh)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
# --no-install-recommends: the packages' services are not wanted, only the binaries.
$sudo apt-get install -y -q --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u)
# Debian starts packaged services where an init system runs; the tests
# start their own on free ports.
for svc in prometheus prometheus-alertmanager nginx; do
  $sudo service "$svc" stop >/dev/null 2>&1 || true
done
