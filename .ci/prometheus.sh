#!/usr/bin/env bash
# Prints a directory holding `prometheus` and `promtool` (the observability tests need both on PATH).
# Uses the ones on PATH when present; otherwise unpacks Debian's `prometheus` package into DIR without
# installing it, so no system service is started and nothing outside DIR changes.
# Usage: PATH="$(.ci/prometheus.sh DIR):$PATH"
set -euo pipefail
dir=$1
if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  dirname "$(command -v promtool)"
  exit 0
fi
mkdir -p "$dir"
if [ ! -x "$dir/root/usr/bin/promtool" ]; then
  echo "unpacking Debian's prometheus package into $dir" >&2
  (cd "$dir" && { apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get download prometheus; }; }) >&2
  dpkg-deb -x "$dir"/prometheus_*.deb "$dir/root"
fi
echo "$dir/root/usr/bin"
