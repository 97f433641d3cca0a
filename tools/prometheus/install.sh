#!/usr/bin/env bash
# Prometheus for the tests, from Debian's `prometheus` package: downloaded and unpacked
# (apt-get download + dpkg-deb -x), never installed, so no service or user is created.
# Output: prometheus and promtool in $PROMETHEUS_DIR (default ~/.cache/paretomerge-test/prometheus).
# Exits at once when both are there. Needs apt-get; root (or password-less sudo) only when the
# machine's package lists are missing and must be updated first.
set -euo pipefail
PROMETHEUS_DIR=${PROMETHEUS_DIR:-$HOME/.cache/paretomerge-test/prometheus}
if [ -x "$PROMETHEUS_DIR/prometheus" ] && [ -x "$PROMETHEUS_DIR/promtool" ]; then
  echo "prometheus cached in $PROMETHEUS_DIR"; exit 0
fi
command -v apt-get >/dev/null || { echo "install.sh: needs apt-get (Debian)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/prometheus-download.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
download() { (cd "$WORK" && apt-get download prometheus 2>&1 | grep -v unsandboxed || true); }

download
if ! ls "$WORK"/prometheus_*.deb >/dev/null 2>&1; then
  # A fresh image has no package lists yet.
  if [ "$(id -u)" = 0 ]; then SUDO=(); elif sudo -n true 2>/dev/null; then SUDO=(sudo -n); else
    echo "install.sh: apt-get update needs root or password-less sudo" >&2; exit 2; fi
  "${SUDO[@]}" apt-get update -qq
  download
fi
ls "$WORK"/prometheus_*.deb >/dev/null 2>&1 || { echo "install.sh: apt-get download prometheus failed" >&2; exit 2; }

dpkg-deb -x "$WORK"/prometheus_*.deb "$WORK/root"
mkdir -p "$PROMETHEUS_DIR"
for binary in prometheus promtool; do
  cp "$WORK/root/usr/bin/$binary" "$PROMETHEUS_DIR/$binary.tmp"
  mv "$PROMETHEUS_DIR/$binary.tmp" "$PROMETHEUS_DIR/$binary"
done
"$PROMETHEUS_DIR/prometheus" --version | sed -n 1p
