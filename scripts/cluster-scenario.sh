# Shared by the scripts that run a scenario against a local three-node
# cluster (scripts/e2e-cluster.sh, scripts/rolling-restart.sh, scripts/soak.sh). Source it after
# setting SCENARIO (the name in log lines and the temp directory) and
# KEEP_VAR (the variable that, set to 1, keeps the cluster's directory), and
# optionally ARTIFACTS (a directory the node and HAProxy logs are copied to
# when the scenario ends, passed or failed); it
# parses --no-build / --help, defines `log`, finds or builds the gateway
# ($GATEWAY_BIN, else ${CARGO_TARGET_DIR:-target}/debug/gateway), sets
# SCENARIO_PYTHON (the python of a venv with the pinned websockets the
# scenarios' client needs, cached once per machine), makes
# CLUSTER_DIR and ENV_FILE, and installs the EXIT trap that prints the last
# log lines on a failure and stops the cluster by pid (`cluster.sh stop`).
# Then call `start_cluster`, run the scenario, and set STATUS_OK=1.

SCRIPT=$SCENARIO
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
parse_build_args "$@"
started=$SECONDS

command -v python3 >/dev/null || { echo "$SCENARIO needs python3" >&2; exit 1; }
# The scenario's python: a venv with the pinned `websockets` that the
# scenarios' shared client (scripts/chat_scenario.py) is built on.
WEBSOCKETS_VERSION=17.4
SCENARIO_VENV=$CACHE_DIR/scenarios-websockets-$WEBSOCKETS_VERSION
pip_venv "$SCENARIO_VENV" "websockets==$WEBSOCKETS_VERSION" \
    || { echo "$SCENARIO: no python with websockets $WEBSOCKETS_VERSION" >&2; exit 1; }
SCENARIO_PYTHON=$SCENARIO_VENV/bin/python

gateway_binary
built=$SECONDS

CLUSTER_DIR=$(mktemp -d "/tmp/chat-$SCENARIO.XXXXXX")
ENV_FILE=$CLUSTER_DIR/cluster.env
STATUS_OK=0
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [ -f "$ENV_FILE" ]; then
        if [ "$status" != 0 ] || [ "$STATUS_OK" != 1 ]; then
            print_tails "$CLUSTER_DIR"/node-*.log "$CLUSTER_DIR/haproxy/haproxy.log" \
                "$CLUSTER_DIR/prometheus/prometheus.log"
        fi
        if [ -n "${ARTIFACTS:-}" ]; then
            mkdir -p "$ARTIFACTS"
            cp "$CLUSTER_DIR"/node-*.log "$ARTIFACTS"/ 2>/dev/null || true
            cp "$CLUSTER_DIR/haproxy/haproxy.log" "$ARTIFACTS"/ 2>/dev/null || true
            log "cluster logs kept in $ARTIFACTS"
        fi
        log "stopping the cluster"
        local keep=()
        [ "${!KEEP_VAR:-0}" = 1 ] && keep=(--keep-dir)
        bash scripts/cluster.sh stop "$CLUSTER_DIR" "${keep[@]}" || status=1
    else
        rm -rf "$CLUSTER_DIR"
    fi
    finish "$status"
}
on_exit cleanup

# Every client comes from the balancer's address: no per-IP connect limit.
export CHAT__LIMITS__CONNECT_RATE_PER_IP=0
export CHAT__LIMITS__AUTH_RATE_PER_IP=0

# start_cluster [NOTE]: the cluster on free loopback ports, in CLUSTER_DIR.
start_cluster() {
    log "starting the cluster in $CLUSTER_DIR${1:+ ($1)}"
    GATEWAY_BIN=$BIN timeout --foreground 300 bash scripts/cluster.sh --background --no-build --any-ports --dir "$CLUSTER_DIR"
    [ -f "$ENV_FILE" ] || { echo "cluster.sh wrote no $ENV_FILE" >&2; exit 1; }
}
