#!/usr/bin/env bash
# A bounded soak of three nodes behind HAProxy: steady connects and
# disconnects, room joins and leaves, and traffic; the nodes' resident memory,
# file descriptors, threads and own gauges must come back to where they were.
#
#   bash scripts/soak.sh                    # builds the gateway (debug) first; 10 minutes
#   SOAK_SECS=60 bash scripts/soak.sh --no-build   # CI: uses $GATEWAY_BIN, or
#                                           # ${CARGO_TARGET_DIR:-target}/debug/gateway, as it is
#
# Starts scripts/cluster.sh --background on free loopback ports (PostgreSQL,
# Redis, nodes A, B, C, HAProxy round robin, Prometheus), then runs
# scripts/soak.py (Python 3 standard library; the WebSocket client of
# scripts/e2e-cluster.py): a warm-up of churn, every client leaves, a "start"
# sample of each node; SOAK_SECS of churn (SOAK_CLIENTS clients at a time
# through the balancer, each living a few seconds: it chats, joins a room and
# leaves it, then closes, or drops its TCP connection); every client leaves,
# an "end" sample. A progress line every 10 s, a start/end table per node
# (RSS, fds, sockets, threads, connections, rooms, presence users, subscribed
# channels), and a failure when, with no client left, a gauge is not 0, fds
# grew by more than 4, threads by more than 4, RSS by more than
# max(8 MiB, 10 %), or a client saw a failure (see soak.py's docstring for
# every knob: SOAK_CLIENTS, SOAK_USERS, SOAK_ROOMS, SOAK_LIFE_SECS,
# SOAK_SEND_EVERY_SECS, SOAK_WARMUP_SECS, SOAK_FD_SLACK, SOAK_RSS_SLACK_MIB, ...).
# Stops the cluster by pid (`cluster.sh stop`) whatever happens. Takes
# SOAK_SECS + SOAK_WARMUP_SECS (default 30) + about 40 s (cluster start and
# stop, two quiet periods); bounded (hard limits: 300 s for the cluster's
# start, SOAK_SECS + SOAK_WARMUP_SECS + 240 s for the rest).
#
# Environment: SOAK_SECS (default 600), GATEWAY_BIN (the binary with
# --no-build), SOAK_KEEP_DIR=1 keeps the cluster's directory (logs); the
# caller's CHAT__* variables reach the nodes.
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
log() { echo "==> [$(date +%H:%M:%S)] soak: $*"; }

command -v python3 >/dev/null || { echo "soak needs python3" >&2; exit 1; }

BIN=${GATEWAY_BIN:-${CARGO_TARGET_DIR:-target}/debug/gateway}
if [ "$BUILD" = 1 ] && [ -z "${GATEWAY_BIN:-}" ]; then
    log "building the gateway (debug)"
    cargo build -p gateway --locked
else
    log "using the gateway already built at $BIN"
fi
[ -x "$BIN" ] || { echo "no gateway binary at $BIN" >&2; exit 1; }
built=$SECONDS

CLUSTER_DIR=$(mktemp -d /tmp/chat-soak.XXXXXX)
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
        [ "${SOAK_KEEP_DIR:-0}" = 1 ] && keep=(--keep-dir)
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
SOAK_SECS=${SOAK_SECS:-600}
SOAK_WARMUP_SECS=${SOAK_WARMUP_SECS:-30}
export SOAK_SECS SOAK_WARMUP_SECS
log "starting the cluster in $CLUSTER_DIR"
GATEWAY_BIN=$BIN timeout --foreground 300 bash scripts/cluster.sh --background --no-build --any-ports --dir "$CLUSTER_DIR"
[ -f "$ENV_FILE" ] || { echo "cluster.sh wrote no $ENV_FILE" >&2; exit 1; }

log "soaking for $SOAK_SECS s after a $SOAK_WARMUP_SECS s warm-up (scripts/soak.py)"
timeout --foreground $(( ${SOAK_SECS%.*} + ${SOAK_WARMUP_SECS%.*} + 240 )) python3 scripts/soak.py "$CLUSTER_DIR"
STATUS_OK=1
