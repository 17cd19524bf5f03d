#!/usr/bin/env bash
# End-to-end check of the local cluster, no Docker:
#
#   bash scripts/e2e-cluster.sh             # builds the gateway (debug) first
#   bash scripts/e2e-cluster.sh --no-build  # uses ${CARGO_TARGET_DIR:-target}/debug/gateway as it is
#
# --no-build is for scripts/test.sh, which has just built the workspace:
# `cargo build -p gateway` alone unifies other crate features than
# `--workspace --tests` and would rebuild much of the dependency tree.
#
# Builds the gateway (debug; honours CARGO_TARGET_DIR), starts
# scripts/cluster.sh --background on free loopback ports (PostgreSQL, Redis,
# three nodes, HAProxy, Prometheus), then runs scripts/e2e-cluster.py (Python 3;
# its WebSocket client, scripts/chat_scenario.py, is on the `websockets`
# library, installed pinned in a venv under the cache directory on the first
# run: scripts/scenario-venv.sh): 9 users connect THROUGH HAPROXY, every node holds
# some of them (each node's /metrics), they chat in room 1 and every client
# gets every message exactly once, Prometheus reports the three nodes up and
# sum(chat_gateway_connections) equal to the connections held, then 0 after
# they close. Stops the cluster by pid (`cluster.sh stop`) whatever happens;
# on a failure it prints the last lines of each log first. Exits non-zero on
# any failure. About 30 s after the build.
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
log() { echo "==> [$(date +%H:%M:%S)] e2e-cluster: $*"; }

command -v python3 >/dev/null || { echo "e2e-cluster needs python3" >&2; exit 1; }
# The client's python: a venv with the pinned websockets (SCENARIO_PYTHON).
# shellcheck source=scripts/scenario-venv.sh
source scripts/scenario-venv.sh
ensure_scenario_python || { echo "e2e-cluster: no python with websockets $WEBSOCKETS_VERSION" >&2; exit 1; }

BIN=${CARGO_TARGET_DIR:-target}/debug/gateway
if [ "$BUILD" = 1 ]; then
    log "building the gateway (debug)"
    cargo build -p gateway --locked
else
    log "using the gateway already built at $BIN"
fi
[ -x "$BIN" ] || { echo "no gateway binary at $BIN" >&2; exit 1; }
built=$SECONDS

CLUSTER_DIR=$(mktemp -d /tmp/chat-e2e-cluster.XXXXXX)
ENV_FILE=$CLUSTER_DIR/cluster.env
STATUS_OK=0
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [ -f "$ENV_FILE" ]; then
        if [ "$status" != 0 ] || [ "$STATUS_OK" != 1 ]; then
            local f
            for f in "$CLUSTER_DIR"/node-*.log "$CLUSTER_DIR/haproxy/haproxy.log" \
                     "$CLUSTER_DIR/prometheus/prometheus.log"; do
                [ -f "$f" ] || continue
                echo "---- last lines of $f ----"
                tail -n 15 "$f"
            done
        fi
        log "stopping the cluster"
        bash scripts/cluster.sh stop "$CLUSTER_DIR" || status=1
    else
        # cluster.sh stopped what it had started when it failed; only the directory may be left.
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

log "starting the cluster in $CLUSTER_DIR"
# Bounded: a first run may also apt-get install PostgreSQL, Redis, HAProxy and Prometheus.
GATEWAY_BIN=$BIN timeout --foreground 300 bash scripts/cluster.sh --background --no-build --any-ports --dir "$CLUSTER_DIR"
[ -f "$ENV_FILE" ] || { echo "cluster.sh wrote no $ENV_FILE" >&2; exit 1; }

log "running the client (scripts/e2e-cluster.py)"
timeout --foreground 150 "$SCENARIO_PYTHON" scripts/e2e-cluster.py "$ENV_FILE"
STATUS_OK=1
