#!/usr/bin/env bash
# Stop what up.sh started in $KT_DIR, by recorded PID only, and remove etcd's data.
# The API server and the controllers stop together (2-3 s each), then etcd: an API server
# that loses etcd while shutting down hangs. SIGKILL for what still runs after 10 s.
KT_DIR=${KT_DIR:-/tmp/k8s-test}

alive() { # pid : running; a zombie counts as stopped (whoever adopted it may reap it late)
  [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"
}

stop() { # name... : SIGTERM all, wait for all, SIGKILL the rest
  local name pid pids=() running
  for name in "$@"; do
    [ -f "$KT_DIR/pids/$name.pid" ] || continue
    pid=$(cat "$KT_DIR/pids/$name.pid")
    kill "$pid" 2>/dev/null && pids+=("$pid")
    rm -f "$KT_DIR/pids/$name.pid"
  done
  for _ in $(seq 100); do
    running=0
    for pid in "${pids[@]}"; do alive "$pid" && running=1; done
    [ $running = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null; done
}

stop kube-scheduler kube-controller-manager kube-apiserver
stop etcd
if [ -f "$KT_DIR/etcd-data-dir" ]; then rm -rf "$(cat "$KT_DIR/etcd-data-dir")" "$KT_DIR/etcd-data-dir"; fi
echo "stopped the control plane of $KT_DIR"
