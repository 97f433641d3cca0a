#!/usr/bin/env bash
# Build a real Kubernetes control plane and kubectl for loopback tests, from Debian packages only:
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
#       <- Debian source package `kubernetes` (upstream v1.20.2 with vendor/), built with Debian's Go
#   etcd <- Debian binary package `etcd-server` (3.4), unpacked, never installed as a service
# Output: $K8S_BIN (default ~/.cache/k8s-test/bin). Exits at once when every binary is there;
# otherwise builds only the missing ones (e.g. kubectl alone into an older cache).
# Needs root (or password-less sudo) for apt-get. Cost on 2 cores: see tools/k8s/README.md.
set -euo pipefail
K8S_BIN=${K8S_BIN:-$HOME/.cache/k8s-test/bin}
GO_TARGETS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)

missing_go=()
for t in "${GO_TARGETS[@]}"; do [ -x "$K8S_BIN/$t" ] || missing_go+=("$t"); done
if [ ${#missing_go[@]} -eq 0 ] && [ -x "$K8S_BIN/etcd" ]; then
  echo "k8s binaries cached in $K8S_BIN"; exit 0
fi

ts() { echo "[$(date +%T)] $*"; }
if [ "$(id -u)" = 0 ]; then SUDO=(); elif sudo -n true 2>/dev/null; then SUDO=(sudo -n); else
  echo "build.sh: apt-get needs root or password-less sudo" >&2; exit 2; fi
command -v apt-get >/dev/null || { echo "build.sh: needs apt-get (Debian)" >&2; exit 2; }

mkdir -p "$K8S_BIN"
WORK=$(mktemp -d /tmp/k8s-build.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
start=$(date +%s)

ts "toolchain from Debian"
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  golang-go golang-github-modern-go-reflect2-dev make rsync openssl ca-certificates >/dev/null

# `apt-get source` needs deb-src entries, which a fresh image usually lacks: a private apt state
# in $WORK with deb-src entries derived from this machine's own sources.
apt_source() { # package
  local S=$WORK/apt f
  mkdir -p "$S/sources.d" "$S/lists/partial" "$S/cache/archives/partial"
  : >"$S/sources.list"
  [ -f /etc/apt/sources.list ] && sed -n 's/^deb /deb-src /p' /etc/apt/sources.list >"$S/sources.list"
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && sed 's/^Types: deb$/Types: deb-src/' "$f" >"$S/sources.d/$(basename "$f")"
  done
  local opts=(-o Dir::Etc::SourceList="$S/sources.list" -o Dir::Etc::SourceParts="$S/sources.d"
    -o Dir::State::Lists="$S/lists" -o Dir::Cache="$S/cache")
  apt-get "${opts[@]}" update -qq
  (cd "$WORK" && apt-get "${opts[@]}" source --download-only "$1" 2>&1 | grep -v unsandboxed || true)
}

if [ ${#missing_go[@]} -gt 0 ]; then
  ts "source package kubernetes (for: ${missing_go[*]})"
  apt_source kubernetes
  tar -xzf "$WORK"/kubernetes_*.orig.tar.gz -C "$WORK"
  SRC=$(echo "$WORK"/kubernetes-1.*/)
  version=v$(basename "$SRC" | sed 's/^kubernetes-//')

  # The vendored reflect2 v1.0.1 breaks on Go >= 1.18 (JSON encoding of maps segfaults at run
  # time); Debian's reflect2 1.0.2 is API-compatible.
  rm -rf "$SRC/vendor/github.com/modern-go/reflect2"
  cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$SRC/vendor/github.com/modern-go/reflect2"

  ts "compile ${missing_go[*]} ($version; GOPATH mode, vendored dependencies, no network)"
  mkdir -p "$SRC/.go/src/k8s.io" && ln -sfn ../../.. "$SRC/.go/src/k8s.io/kubernetes"
  what=""
  for t in "${missing_go[@]}"; do what="$what cmd/$t"; done
  # KUBE_GIT_VERSION: the tarball has no .git, and kubectl prints the version it was built as.
  (cd "$SRC" && env GOPATH="$SRC/.go" GOCACHE="$WORK/gocache" CGO_ENABLED=0 HOME="$WORK/home" \
    KUBE_GIT_VERSION="$version" KUBE_GIT_TREE_STATE=clean make WHAT="${what# }")
  for t in "${missing_go[@]}"; do cp "$SRC/_output/bin/$t" "$K8S_BIN/$t.tmp" && mv "$K8S_BIN/$t.tmp" "$K8S_BIN/$t"; done
fi

if [ ! -x "$K8S_BIN/etcd" ]; then
  ts "etcd from the etcd-server package"
  (cd "$WORK" && apt-get download etcd-server 2>&1 | grep -v unsandboxed || true)
  dpkg-deb -x "$WORK"/etcd-server_*.deb "$WORK/etcdroot"
  cp "$WORK/etcdroot/usr/bin/etcd" "$K8S_BIN/etcd"
fi

"$K8S_BIN/kube-apiserver" --version
"$K8S_BIN/kubectl" version --client --short 2>/dev/null || "$K8S_BIN/kubectl" version --client
"$K8S_BIN/etcd" --version | sed -n 1p
ts "done in $(($(date +%s) - start)) s: $(du -sh "$K8S_BIN" | cut -f1) in $K8S_BIN"
