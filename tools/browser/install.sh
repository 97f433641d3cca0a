#!/usr/bin/env bash
# Chromium for the tests that look at what a person sees (the HTML report), from Debian's
# `chromium` package: apt-get install, once; later calls find it on PATH and exit at once.
# Prints the browser's path on its last line. Needs apt-get, and root (or password-less sudo)
# to install; exits 2 when installing is impossible here (the tests then skip).
set -euo pipefail
for name in chromium chromium-browser; do
  if command -v "$name" >/dev/null; then command -v "$name"; exit 0; fi
done
command -v apt-get >/dev/null || { echo "install.sh: needs apt-get (Debian)" >&2; exit 2; }
if [ "$(id -u)" = 0 ]; then SUDO=(); elif sudo -n true 2>/dev/null; then SUDO=(sudo -n); else
  echo "install.sh: installing chromium needs root or password-less sudo" >&2; exit 2; fi
install() {
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    chromium fonts-dejavu-core >/dev/null
}
# A fresh image has no package lists yet.
install || { "${SUDO[@]}" apt-get update -qq && install; }
command -v chromium
