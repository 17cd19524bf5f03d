#!/usr/bin/env bash
# Rolling restart under traffic: three nodes behind HAProxy are restarted one
# by one (SIGTERM, drain, exit 0, start, ready) while clients chat through the
# balancer and resume; no client may lose or duplicate a message.
#
#   bash scripts/rolling-restart.sh             # builds the gateway (debug) first
#   bash scripts/rolling-restart.sh --no-build  # uses $GATEWAY_BIN, or
#                                               # ${CARGO_TARGET_DIR:-target}/debug/gateway, as it is
#
# Starts scripts/cluster.sh --background on free loopback ports (PostgreSQL,
# Redis, nodes A, B, C, HAProxy round robin with /readyz health checks,
# Prometheus) with a short drain window, then runs scripts/rolling_restart.py
# (Python 3 standard library; the WebSocket client of scripts/e2e-cluster.py):
# ~40 clients in two rooms, 20 messages/s, each client reconnecting with
# since_seq after every close and the senders resending unacknowledged
# messages with the same client_msg_id, while `cluster.sh restart DIR A`,
# then B, then C run. It asserts that each node exits with status 0 within the
# drain window + 3 s, that the clients saw close code 1012 (and no other), that
# every client received seqs 1..N of its room exactly once and in order, and
# that every acknowledged message is in the history exactly once (see the
# docstring of rolling_restart.py for the full list). Stops the cluster by pid
# (`cluster.sh stop`) whatever happens; on a failure it prints the last lines
# of each log first. About 60 s after the build; bounded (cluster start 300 s,
# scenario RR_TIMEOUT_SECS, 150 s).
#
# Environment: GATEWAY_BIN (the binary with --no-build);
# CHAT__SERVER__DRAIN_WINDOW_SECS (default here 2) and
# CHAT__SERVER__SHUTDOWN_TIMEOUT_SECS (default here 5) for the nodes; RR_*
# for the scenario (rolling_restart.py: RR_RECEIVERS, RR_SENDERS, RR_ROOMS,
# RR_RATE, RR_WARMUP_SECS, RR_BETWEEN_SECS, RR_STOP_MARGIN_SECS,
# RR_TIMEOUT_SECS); ROLLING_KEEP_DIR=1 keeps the cluster's directory (logs).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=1
for arg in "$@"; do
    case "$arg" in
        --no-build) BUILD=0 ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done

started=$SECONDS
log() { echo "==> [$(date +%H:%M:%S)] rolling-restart: $*"; }

command -v python3 >/dev/null || { echo "rolling-restart needs python3" >&2; exit 1; }

BIN=${GATEWAY_BIN:-${CARGO_TARGET_DIR:-target}/debug/gateway}
if [ "$BUILD" = 1 ] && [ -z "${GATEWAY_BIN:-}" ]; then
    log "building the gateway (debug)"
    cargo build -p gateway --locked
else
    log "using the gateway already built at $BIN"
fi
[ -x "$BIN" ] || { echo "no gateway binary at $BIN" >&2; exit 1; }
built=$SECONDS

CLUSTER_DIR=$(mktemp -d /tmp/chat-rolling.XXXXXX)
ENV_FILE=$CLUSTER_DIR/cluster.env
STATUS_OK=0
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [ -f "$ENV_FILE" ]; then
        if [ "$status" != 0 ] || [ "$STATUS_OK" != 1 ]; then
            local f
            for f in "$CLUSTER_DIR"/node-*.log "$CLUSTER_DIR/haproxy/haproxy.log"; do
                [ -f "$f" ] || continue
                echo "---- last lines of $f ----"
                tail -n 15 "$f"
            done
        fi
        log "stopping the cluster"
        local keep=()
        [ "${ROLLING_KEEP_DIR:-0}" = 1 ] && keep=(--keep-dir)
        bash scripts/cluster.sh stop "$CLUSTER_DIR" "${keep[@]}" || status=1
    else
        rm -rf "$CLUSTER_DIR"
    fi
    if [ "$status" = 0 ]; then
        log "passed in $((SECONDS - started)) s ($((SECONDS - built)) s after the build)"
    else
        log "FAILED (exit $status) after $((SECONDS - started)) s"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Every client comes from the balancer's address: no per-IP connect limit.
export CHAT__LIMITS__CONNECT_RATE_PER_IP=0
export CHAT__SERVER__DRAIN_WINDOW_SECS=${CHAT__SERVER__DRAIN_WINDOW_SECS:-2}
export CHAT__SERVER__SHUTDOWN_TIMEOUT_SECS=${CHAT__SERVER__SHUTDOWN_TIMEOUT_SECS:-5}
log "starting the cluster in $CLUSTER_DIR (drain window $CHAT__SERVER__DRAIN_WINDOW_SECS s)"
GATEWAY_BIN=$BIN timeout --foreground 300 bash scripts/cluster.sh --background --no-build --any-ports --dir "$CLUSTER_DIR"
[ -f "$ENV_FILE" ] || { echo "cluster.sh wrote no $ENV_FILE" >&2; exit 1; }

log "running the scenario (scripts/rolling_restart.py)"
timeout --foreground $(( ${RR_TIMEOUT_SECS:-150} + 30 )) python3 scripts/rolling_restart.py "$CLUSTER_DIR"
STATUS_OK=1
