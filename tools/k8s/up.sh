#!/usr/bin/env bash
# Start a Kubernetes control plane on 127.0.0.1 for tests: etcd (data on tmpfs), kube-apiserver
# (RBAC, token auth), kube-controller-manager and kube-scheduler. No kubelet: see tests/k8s.
#   K8S_BIN          binaries from build.sh (default ~/.cache/k8s-test/bin)
#   KT_DIR           state: pki/, logs/, pids/, kubeconfig, admin-token (default /tmp/k8s-test)
#   API_PORT ETCD_PORT ETCD_PEER_PORT   loopback ports (default 16443 12379 12380)
#   KT_CONTROLLERS=0 starts only etcd and kube-apiserver
# Returns when the API server is ready and, with controllers, the default ServiceAccount has
# its token. Stop with down.sh (same KT_DIR), also after a failed start.
set -euo pipefail
K8S_BIN=${K8S_BIN:-$HOME/.cache/k8s-test/bin}
KT_DIR=${KT_DIR:-/tmp/k8s-test}
KT_CONTROLLERS=${KT_CONTROLLERS:-1}
API_PORT=${API_PORT:-16443}
ETCD_PORT=${ETCD_PORT:-12379}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-12380}
KUBECTL=("$K8S_BIN/kubectl" --kubeconfig "$KT_DIR/kubeconfig")
t0=$(date +%s%N)
elapsed_s() { local ms=$((($(date +%s%N) - t0) / 1000000)); printf "%d.%03d" $((ms / 1000)) $((ms % 1000)); }
mkdir -p "$KT_DIR"/{pki,logs,pids}
P=$KT_DIR/pki

make_pki() { # CA, serving certificate for 127.0.0.1, ServiceAccount key pair, admin token
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=k8s-test-ca" \
    -keyout "$P/ca.key" -out "$P/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$P/apiserver.key" -out "$P/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\n' >"$P/ext.cnf"
  openssl x509 -req -in "$P/apiserver.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" \
    -CAcreateserial -days 3650 -extfile "$P/ext.cnf" -out "$P/apiserver.crt" 2>/dev/null
  openssl genrsa -out "$P/sa.key" 2048 2>/dev/null
  openssl rsa -in "$P/sa.key" -pubout -out "$P/sa.pub" 2>/dev/null
  echo "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'),admin,admin,system:masters" >"$P/tokens.csv"
}
[ -f "$P/ca.crt" ] || make_pki
TOKEN=$(cut -d, -f1 "$P/tokens.csv")
echo "$TOKEN" >"$KT_DIR/admin-token"

cat >"$KT_DIR/kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: k8s-test
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority: $P/ca.crt
users:
- name: admin
  user:
    token: $TOKEN
contexts:
- name: k8s-test
  context: {cluster: k8s-test, user: admin, namespace: default}
current-context: k8s-test
KUBECONFIG

start() { # name command... : background, log and PID under $KT_DIR
  local name=$1; shift
  "$@" >"$KT_DIR/logs/$name.log" 2>&1 &
  echo $! >"$KT_DIR/pids/$name.pid"
}
alive() { # pid : running, not a zombie (dead children of this script stay zombies until it exits)
  [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"
}
wait_for() { # what command... : poll until the command succeeds, fail after 120 s or a dead process
  local what=$1 name; shift
  until "$@" >/dev/null 2>&1; do
    for f in "$KT_DIR"/pids/*.pid; do
      name=$(basename "$f" .pid)
      alive "$(cat "$f")" || { echo "$name died:"; tail -30 "$KT_DIR/logs/$name.log"; exit 1; }
    done
    if (($(date +%s%N) - t0 > 120000000000)); then echo "timeout waiting for $what"; exit 1; fi
    sleep 0.3
  done
}

# tmpfs: etcd's fsyncs cost nothing there.
ETCD_DATA=$(mktemp -d /dev/shm/k8s-test-etcd.XXXXXX 2>/dev/null || mktemp -d "$KT_DIR/etcd.XXXXXX")
echo "$ETCD_DATA" >"$KT_DIR/etcd-data-dir"
start etcd "$K8S_BIN/etcd" --name k8s-test --data-dir "$ETCD_DATA" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "k8s-test=http://127.0.0.1:$ETCD_PEER_PORT" \
  --listen-metrics-urls "" --log-level warn

start kube-apiserver "$K8S_BIN/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 \
  --secure-port "$API_PORT" --insecure-port 0 \
  --tls-cert-file "$P/apiserver.crt" --tls-private-key-file "$P/apiserver.key" \
  --client-ca-file "$P/ca.crt" --token-auth-file "$P/tokens.csv" \
  --authorization-mode RBAC \
  --service-account-key-file "$P/sa.pub" --service-account-signing-key-file "$P/sa.key" \
  --service-account-issuer https://kubernetes.default.svc \
  --service-cluster-ip-range 10.0.0.0/24 \
  --allow-privileged=true --profiling=false --v=1
wait_for "kube-apiserver /readyz" "${KUBECTL[@]}" get --raw /readyz
wait_for "namespace default" "${KUBECTL[@]}" get namespace default

if [ "$KT_CONTROLLERS" = 1 ]; then
  # Off: controllers for nodes, clouds and networking that nothing here provides.
  # On: the persistentvolume-binder, so tests can bind a PVC to a PV; it syncs every second
  # (default 15 s), as a claim created with its volume is often seen before the volume.
  start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig "$KT_DIR/kubeconfig" \
    --bind-address 127.0.0.1 --secure-port 0 --port 0 --leader-elect=false \
    --service-account-private-key-file "$P/sa.key" --root-ca-file "$P/ca.crt" \
    --pvclaimbinder-sync-period 1s \
    --controllers '*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-service,-route,-attachdetach,-ttl' \
    --v=1
  start kube-scheduler "$K8S_BIN/kube-scheduler" \
    --kubeconfig "$KT_DIR/kubeconfig" \
    --bind-address 127.0.0.1 --secure-port 0 --port 0 --leader-elect=false --v=1
  # Pods of the default ServiceAccount are refused until it and its token exist.
  wait_for "the default ServiceAccount's token" sh -c \
    "'$K8S_BIN/kubectl' --kubeconfig '$KT_DIR/kubeconfig' get serviceaccount default -o jsonpath='{.secrets[0].name}' | grep ."
fi
echo "KUBECONFIG=$KT_DIR/kubeconfig (ready after $(elapsed_s) s)"
