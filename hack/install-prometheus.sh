#!/usr/bin/env bash
# Prometheus and promtool from Debian's `prometheus` package, for the monitoring tests: the .deb is
# downloaded and unpacked into $PIXCRAWLER_CACHE/prometheus-<version>/ (no service installed or
# started, no user added), once per package version.
set -euo pipefail
CACHE=${PIXCRAWLER_CACHE:-$HOME/.cache/pixcrawler-operator}
for found in "$CACHE"/prometheus-*/promtool; do
  [ -x "$found" ] && [ -x "$(dirname "$found")/prometheus" ] && exit 0
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
if ! apt-get download prometheus >/dev/null 2>&1; then
  apt-get update -qq
  apt-get download prometheus >/dev/null 2>&1 || { echo "install-prometheus: apt-get download prometheus failed" >&2; exit 1; }
fi
deb=$(ls prometheus_*.deb)
version=$(dpkg-deb -f "$deb" Version)
dpkg-deb -x "$deb" unpacked
target="$CACHE/prometheus-$version"
mkdir -p "$target.tmp"
install -m 0755 unpacked/usr/bin/prometheus unpacked/usr/bin/promtool "$target.tmp/"
rm -rf "$target" && mv "$target.tmp" "$target"
echo "install-prometheus: $("$target/prometheus" --version 2>&1 | head -1) in $target" >&2
