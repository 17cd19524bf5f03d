#!/usr/bin/env bash
# A local three-node cluster, without Docker: PostgreSQL, Redis, gateway nodes
# A, B and C, HAProxy in front of them and Prometheus scraping them, all on
# loopback.
#
#   bash scripts/cluster.sh               # debug build, in the foreground
#   bash scripts/cluster.sh --release     # release build
#   bash scripts/cluster.sh --background  # start, write DIR/cluster.env, return
#   bash scripts/cluster.sh stop DIR      # stop what a --background run started
#   bash scripts/cluster.sh restart DIR A # restart one node of a --background run
#
# Builds the gateway, starts a throwaway PostgreSQL and Redis on free loopback
# ports (scripts/services.sh), nodes A, B and C on ports 8081, 8082 and 8083
# with one generated JWT secret, and waits until every node's /readyz answers
# 200. Then HAProxy on 8080 (round robin, health checks on /readyz, WebSocket
# tunnels; stats and HAProxy's own metrics on 8404) and Prometheus on 9090
# (scrapes the nodes every second, loads deploy/prometheus/alerts.yml). A port
# that is taken is replaced by a free one. PostgreSQL, Redis, HAProxy and
# Prometheus are installed with apt-get when missing (run it as root the first
# time); the Debian services are not used. Prints the URLs and the secret.
#
# In the foreground, Ctrl-C (or SIGTERM, or any of its processes dying) stops
# everything it started, by pid. With --background it writes DIR/cluster.env
# (URLs, ports, pids, JWT secret; shell syntax, KEY="value") and returns;
# `stop DIR` stops those pids (each only while it is still the process that
# was started: same pid and start time) and removes DIR.
#
# `restart DIR NAME` (NAME is A, B or C) is one step of a rolling update: it
# sends SIGTERM to that node, waits for it to drain and exit (at most
# CHAT__SERVER__SHUTDOWN_TIMEOUT_SECS + 5 s, then SIGKILL), starts it again
# with the same binary, port and settings (the CHAT__* variables of the
# original start, kept in DIR/node-env.sh), waits for its /readyz to answer
# 200 and for HAProxy to count it UP again (at least 2.2 s later: two of its
# checks), and updates DIR/cluster.env (pids, pid:start-time bookkeeping) so
# that `stop` still works. Its last line is
#   RESTART node=A old_pid=P exit_status=0 stop_secs=2.41 new_pid=Q ready_secs=1.10 lb_up_secs=2.05
# (stop_secs: from the SIGTERM to the exit). It exits 1 if the old process did
# not exit by itself with status 0, or the new one does not become ready. Each
# node runs under a small shell wrapper that records its exit status in
# DIR/node-NAME.exit ("pid status epoch-seconds"); the logs of a restarted
# node are appended to DIR/node-NAME.log.
#
# Options: --release; --no-build (use ${CARGO_TARGET_DIR:-target}/PROFILE/gateway,
# or $GATEWAY_BIN when set, as it is); --background; --dir DIR (the run's
# directory: configs, logs, data, cluster.env; absent or empty; default a new
# /tmp/chat-cluster.XXXXXX); --any-ports (free ports for everything instead of
# 8080-8083, 8404 and 9090); --keep-dir (leave DIR behind when stopping).
# The nodes also get the caller's CHAT__* variables. HAProxy is their trusted
# proxy (CHAT__SERVER__TRUSTED_PROXIES=127.0.0.1: the client address comes
# from X-Forwarded-For); every local client is still 127.0.0.1, so load tests
# turn the per-address limits off (CHAT__LIMITS__CONNECT_RATE_PER_IP=0,
# CHAT__LIMITS__AUTH_RATE_PER_IP=0). Browser origins: CHAT__SERVER__ALLOWED_ORIGINS, default `*`
# here; set it empty for the gateway's own default (same origin only).
set -euo pipefail
CALLER_PWD=$PWD
cd "$(dirname "$0")/.."
ROOT=$PWD

# abs PATH: PATH made absolute against the caller's directory.
abs() { case "$1" in /*) echo "$1" ;; *) echo "$CALLER_PWD/$1" ;; esac; }

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

log() { echo "==> [$(date +%H:%M:%S)] $*"; }

PROFILE=debug
CARGO_FLAGS=()
BUILD=1
BACKGROUND=0
ANY_PORTS=0
KEEP_DIR=0
CLUSTER_DIR=
MODE=start
while [ $# -gt 0 ]; do
    case "$1" in
        --release) PROFILE=release; CARGO_FLAGS+=(--release) ;;
        --no-build) BUILD=0 ;;
        --background) BACKGROUND=1 ;;
        --any-ports) ANY_PORTS=1 ;;
        --keep-dir) KEEP_DIR=1 ;;
        --dir) [ $# -ge 2 ] || { echo "--dir needs a directory" >&2; exit 2; }
               CLUSTER_DIR=$(abs "$2"); shift ;;
        --dir=*) CLUSTER_DIR=$(abs "${1#--dir=}") ;;
        stop) MODE=stop
              [ $# -ge 2 ] || { echo "usage: $0 stop DIR [--keep-dir]" >&2; exit 2; }
              CLUSTER_DIR=$(abs "$2"); shift ;;
        restart) MODE=restart
              [ $# -ge 3 ] || { echo "usage: $0 restart DIR A|B|C" >&2; exit 2; }
              CLUSTER_DIR=$(abs "$2"); RESTART_NAME=$3; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

# ---------------------------------------------------------------------------
# Stopping, by pid (shared by the foreground run, a failed start and `stop DIR`).

# alive PID: the process exists and is not a zombie (a process whose parent
# has gone is reaped by pid 1, which in some containers never happens).
alive() {
    local stat
    [ -n "${1:-}" ] || return 1
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    case "${stat:0:1}" in Z|X|'') return 1 ;; esac
}

# start_time PID: when the process started (clock ticks since boot, field 22
# of /proc/PID/stat). A pid and its start time name one process for good.
start_time() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    set -- $stat # fields 3.. of the stat line
    echo "${20}"
}

# PID_STARTS: "pid:start_time ..." of every process this run started.
PID_STARTS=" "
remember() { # remember PID
    local t
    t=$(start_time "$1") || t=gone
    PID_STARTS+="$1:$t "
}

# ours PID: the process is still the one this run started (not a pid reused
# by something else since).
ours() {
    local t
    t=$(start_time "$1") || return 1
    [[ "$PID_STARTS" == *" $1:$t "* ]]
}

# stop_group TIMEOUT NAME:PID...: SIGTERM to each, wait up to TIMEOUT
# seconds for all of them, then SIGKILL what is left.
stop_group() {
    local timeout=$1 item pid deadline live=() names=()
    shift
    for item in "$@"; do
        pid=${item##*:}
        [ -n "$pid" ] || continue
        if alive "$pid"; then
            if ours "$pid"; then
                live+=("$item")
                names+=("${item%%:*} ($pid)")
            else
                log "pid $pid (${item%%:*}) is not this cluster's process any more; left alone"
            fi
        fi
    done
    [ ${#live[@]} -gt 0 ] || return 0
    log "stopping ${names[*]}"
    for item in "${live[@]}"; do
        kill -TERM "${item##*:}" 2>/dev/null || true
    done
    deadline=$((SECONDS + timeout))
    while :; do
        local still=()
        for item in "${live[@]}"; do
            alive "${item##*:}" && still+=("$item")
        done
        [ ${#still[@]} -gt 0 ] || break
        if [ $SECONDS -ge $deadline ]; then
            for item in "${still[@]}"; do
                log "${item%%:*} (pid ${item##*:}) did not stop in $timeout s; killing it"
                kill -KILL "${item##*:}" 2>/dev/null || true
            done
            break
        fi
        sleep 0.1
    done
    for item in "${live[@]}"; do # reap our own children (no-op for `stop DIR`)
        wait "${item##*:}" 2>/dev/null || true
    done
}

# stop_cluster: the balancer and Prometheus first, then the nodes (they drain),
# then Redis and PostgreSQL.
stop_cluster() {
    stop_group 10 "prometheus:${PROMETHEUS_PID:-}" "haproxy:${HAPROXY_PID:-}"
    local i nodes=()
    for i in 0 1 2; do
        nodes+=("node-${NODE_NAMES[$i]}:${NODE_PIDS[$i]:-}")
    done
    stop_group 20 "${nodes[@]}"
    for i in 0 1 2; do
        report_exit "${NODE_NAMES[$i]}" "${NODE_PIDS[$i]:-}" || true
    done
    stop_group 15 "redis:${REDIS_PID:-}" "postgresql:${PG_PID:-}"
}

# stop_cluster_and_tidy: stop_cluster, then remove the directory unless
# --keep-dir asked for its logs.
stop_cluster_and_tidy() {
    stop_cluster
    if [ "$KEEP_DIR" = 1 ]; then
        log "stopped; logs kept in $CLUSTER_DIR"
    else
        rm -rf "$CLUSTER_DIR"
        log "stopped"
    fi
}

# exit_record NAME PID: "status epoch-seconds" of that node process, from the
# file its wrapper writes when it exits (waits up to 2 s for it); fails when
# there is none.
exit_record() {
    local f="$CLUSTER_DIR/node-$1.exit" deadline=$((SECONDS + 2)) pid status at
    while :; do
        if [ -f "$f" ] && read -r pid status at <"$f" && [ "$pid" = "$2" ]; then
            echo "$status $at"
            return 0
        fi
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.05
    done
}

report_exit() { # report_exit NAME PID: log how a stopped node exited
    local rec
    [ -n "$2" ] || return 0
    alive "$2" && return 0
    rec=$(exit_record "$1" "$2") || return 0
    log "node $1 (pid $2) exited with status ${rec%% *}"
}

# The nodes run under a shell wrapper that records their exit status (a
# --background run returns, so nothing else could learn it): it starts the
# binary, writes its pid to DIR/node-NAME.pid, waits for it and writes
# "pid status epoch-seconds" to DIR/node-NAME.exit.
# launch_node INDEX: starts node INDEX (settings from the environment: BIN,
# NODE_PORTS, TEST_DATABASE_URL, TEST_REDIS_URL, JWT_SECRET, CHAT__*) with its
# output appended to DIR/node-NAME.log; sets NODE_PIDS[INDEX] and
# NODE_WRAPPER_PIDS[INDEX].
launch_node() {
    local i=$1 name=${NODE_NAMES[$1]} port=${NODE_PORTS[$1]} deadline pid=
    local logfile="$CLUSTER_DIR/node-$name.log" pidfile="$CLUSTER_DIR/node-$name.pid"
    rm -f "$pidfile"
    (
        CHAT__SERVER__HOST=127.0.0.1 \
        CHAT__SERVER__PORT="$port" \
        CHAT__DATABASE__URL="$TEST_DATABASE_URL" \
        CHAT__REDIS__URL="$TEST_REDIS_URL" \
        CHAT__AUTH__JWT_SECRET="$JWT_SECRET" \
        CHAT__SERVER__ALLOWED_ORIGINS="${CHAT__SERVER__ALLOWED_ORIGINS-*}" \
        CHAT__SERVER__TRUSTED_PROXIES="${CHAT__SERVER__TRUSTED_PROXIES-127.0.0.1}" \
        CHAT__LOG__LEVEL="${CHAT__LOG__LEVEL:-info}" \
            "$BIN" &
        child=$!
        echo "$child" >"$pidfile.tmp" && mv "$pidfile.tmp" "$pidfile"
        status=0
        wait "$child" || status=$?
        echo "$child $status $(date +%s.%N)" >"$CLUSTER_DIR/node-$name.exit.tmp" \
            && mv "$CLUSTER_DIR/node-$name.exit.tmp" "$CLUSTER_DIR/node-$name.exit"
    ) </dev/null >>"$logfile" 2>&1 9>&- &
    NODE_WRAPPER_PIDS[$i]=$!
    deadline=$((SECONDS + 10))
    until [ -s "$pidfile" ] && read -r pid <"$pidfile" && [ -n "$pid" ]; do
        [ $SECONDS -lt $deadline ] || { echo "node $name: no pid after 10 s" >&2; exit 1; }
        sleep 0.02
    done
    NODE_PIDS[$i]=$pid
    remember "$pid"
    log "node $name starting on 127.0.0.1:$port (pid $pid, log $logfile)"
}

http_status() { # http_status URL → prints the status code (000 when unreachable)
    python3 - "$1" <<'PY' || true
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=5).status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")
PY
}

# tail_log FILE: the last lines of a log, to stderr (on a failed start).
tail_log() {
    echo "---- last lines of $1 ----" >&2
    tail -n 40 "$1" >&2 2>/dev/null || true
}

# await_start WHAT PID LOG SECONDS COMMAND...: until COMMAND succeeds. Stops
# the script, with the last lines of LOG, when PID exits first or SECONDS pass.
await_start() {
    local what=$1 pid=$2 log_file=$3 secs=$4
    local deadline=$((SECONDS + secs))
    shift 4
    until "$@"; do
        alive "$pid" || { echo "$what exited" >&2; tail_log "$log_file"; exit 1; }
        [ $SECONDS -lt $deadline ] || { echo "$what is not ready after $secs s" >&2; tail_log "$log_file"; exit 1; }
        sleep 0.2
    done
}

answers_200() { [ "$(http_status "$1")" = 200 ]; }

wait_ready() { # wait_ready INDEX
    local name=${NODE_NAMES[$1]}
    await_start "node $name" "${NODE_PIDS[$1]}" "$CLUSTER_DIR/node-$name.log" 60 \
        answers_200 "http://127.0.0.1:${NODE_PORTS[$1]}/readyz"
    log "node $name ready"
}

# haproxy_server_state STATS_PORT NAME: HAProxy's status of server node-NAME (UP, DOWN, ...).
haproxy_server_state() {
    python3 - "http://127.0.0.1:$1/stats;csv" "node-$2" <<'PY' || true
import sys, urllib.request
try:
    rows = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode().splitlines()
except Exception:
    sys.exit(0)
for row in rows:
    f = row.split(",")
    if len(f) > 17 and f[0] == "gateways" and f[1] == sys.argv[2]:
        print(f[17])
PY
}

NODE_NAMES=(A B C)
NODE_PORTS=()
NODE_PIDS=()
NODE_WRAPPER_PIDS=()

if [ "$MODE" = stop ]; then
    CLUSTER_DIR=$(cd "$CLUSTER_DIR" 2>/dev/null && pwd) || { echo "no directory $CLUSTER_DIR" >&2; exit 1; }
    [ -f "$CLUSTER_DIR/cluster.env" ] || { echo "no $CLUSTER_DIR/cluster.env: not a cluster.sh directory" >&2; exit 1; }
    want_dir=$CLUSTER_DIR
    # shellcheck disable=SC1091
    source "$CLUSTER_DIR/cluster.env"
    [ "$CLUSTER_DIR" = "$want_dir" ] || { echo "$want_dir/cluster.env names another directory" >&2; exit 1; }
    read -r -a NODE_PIDS <<<"$NODE_PIDS_LIST"
    log "stopping the cluster in $CLUSTER_DIR"
    stop_cluster_and_tidy
    exit 0
fi

# set_env_value KEY VALUE: rewrite KEY="..." in DIR/cluster.env (atomically).
set_env_value() {
    local f="$CLUSTER_DIR/cluster.env"
    case "$2" in *[\"\\\$\`]*) echo "cannot write $1 to the env file" >&2; exit 1 ;; esac
    (
        umask 077
        awk -v k="$1" -v v="$2" 'index($0, k "=\"") == 1 { print k "=\"" v "\""; next } { print }' "$f" >"$f.tmp"
        mv "$f.tmp" "$f"
    )
}

now() { date +%s.%N; }
secs_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

if [ "$MODE" = restart ]; then
    CLUSTER_DIR=$(cd "$CLUSTER_DIR" 2>/dev/null && pwd) || { echo "no directory $CLUSTER_DIR" >&2; exit 1; }
    [ -f "$CLUSTER_DIR/cluster.env" ] || { echo "no $CLUSTER_DIR/cluster.env: not a cluster.sh directory" >&2; exit 1; }
    [ -f "$CLUSTER_DIR/node-env.sh" ] || { echo "no $CLUSTER_DIR/node-env.sh: started by an older cluster.sh, cannot restart" >&2; exit 1; }
    idx=
    for i in 0 1 2; do [ "${NODE_NAMES[$i]}" = "$RESTART_NAME" ] && idx=$i; done
    [ -n "$idx" ] || { echo "no node $RESTART_NAME (A, B or C)" >&2; exit 2; }
    # One restart at a time per cluster (they rewrite cluster.env).
    exec 9>"$CLUSTER_DIR/.restart.lock"
    flock 9
    want_dir=$CLUSTER_DIR
    # shellcheck disable=SC1091
    source "$CLUSTER_DIR/cluster.env"
    [ "$CLUSTER_DIR" = "$want_dir" ] || { echo "$want_dir/cluster.env names another directory" >&2; exit 1; }
    read -r -a NODE_PIDS <<<"$NODE_PIDS_LIST"
    read -r -a NODE_PORTS <<<"$NODE_PORTS_LIST"
    # The settings of the original start: its CHAT__* variables, not the caller's.
    while read -r var; do unset "$var"; done < <(compgen -e | grep '^CHAT__' || true)
    # shellcheck disable=SC1091
    source "$CLUSTER_DIR/node-env.sh"
    BIN=$GATEWAY_BIN_USED
    TEST_DATABASE_URL=$DATABASE_URL
    TEST_REDIS_URL=$REDIS_URL
    name=$RESTART_NAME
    old=${NODE_PIDS[$idx]}
    stop_timeout=$(( ${CHAT__SERVER__SHUTDOWN_TIMEOUT_SECS:-10} + 5 ))
    failed=0
    exit_status=none
    stop_secs=none
    if alive "$old" && ours "$old"; then
        log "restart: SIGTERM to node $name (pid $old); waiting up to $stop_timeout s for it to drain and exit"
        term_at=$(now)
        kill -TERM "$old"
        deadline=$((SECONDS + stop_timeout))
        while alive "$old"; do
            if [ $SECONDS -ge $deadline ]; then
                log "restart: node $name (pid $old) did not exit in $stop_timeout s; killing it"
                kill -KILL "$old" 2>/dev/null || true
                failed=1
                break
            fi
            sleep 0.05
        done
        if rec=$(exit_record "$name" "$old"); then
            exit_status=${rec%% *}
            stop_secs=$(secs_between "$term_at" "${rec#* }")
        else
            stop_secs=$(secs_between "$term_at" "$(now)")
            failed=1
        fi
        log "restart: node $name (pid $old) exited with status $exit_status after $stop_secs s"
        [ "$exit_status" = 0 ] || failed=1
    else
        log "restart: node $name (pid $old) is not running (or not this cluster's process); starting it"
        failed=1
    fi
    # The old process is gone: drop it from the bookkeeping, add the new one.
    PID_STARTS=$(sed -E "s/ $old:[0-9a-z]+ / /" <<<"$PID_STARTS")
    echo "==== restarted by cluster.sh restart at $(date -u +%FT%TZ) ====" >>"$CLUSTER_DIR/node-$name.log"
    started_at=$(now)
    launch_node "$idx"
    new=${NODE_PIDS[$idx]}
    set_env_value "NODE_${name}_PID" "$new"
    set_env_value NODE_PIDS_LIST "${NODE_PIDS[*]}"
    set_env_value PID_STARTS "$PID_STARTS"
    wait_ready "$idx"
    ready_secs=$(secs_between "$started_at" "$(now)")
    lb_up_secs=none
    if [ -n "${LB_STATS_PORT:-}" ] && alive "${HAPROXY_PID:-}"; then
        # HAProxy may not have marked the old process DOWN at all (fall 2,
        # inter 1s): give it one rise (2 checks) after the new one is ready.
        sleep 2.2
        deadline=$((SECONDS + 30))
        until [ "$(haproxy_server_state "$LB_STATS_PORT" "$name")" = UP ]; do
            if [ $SECONDS -ge $deadline ]; then
                log "restart: HAProxy does not count node $name UP after 30 s"
                failed=1
                break
            fi
            sleep 0.1
        done
        lb_up_secs=$(secs_between "$started_at" "$(now)")
        log "restart: HAProxy counts node $name UP"
    fi
    echo "RESTART node=$name old_pid=$old exit_status=$exit_status stop_secs=$stop_secs new_pid=$new ready_secs=$ready_secs lb_up_secs=$lb_up_secs"
    exit "$failed"
fi

# ---------------------------------------------------------------------------
# Starting.

if [ "$BUILD" = 1 ] && [ -z "${GATEWAY_BIN:-}" ]; then
    log "building the gateway ($PROFILE)"
    cargo build -p gateway --locked "${CARGO_FLAGS[@]}"
fi
if [ -n "${GATEWAY_BIN:-}" ]; then
    BIN=$(abs "$GATEWAY_BIN")
else
    BIN=${CARGO_TARGET_DIR:-target}/$PROFILE/gateway # cargo too reads it from here
fi
[ -x "$BIN" ] || { echo "no gateway binary at $BIN (build it, or drop --no-build)" >&2; exit 1; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")

if [ -z "$CLUSTER_DIR" ]; then
    CLUSTER_DIR=$(mktemp -d /tmp/chat-cluster.XXXXXX)
else
    mkdir -p "$CLUSTER_DIR"
    [ -z "$(ls -A "$CLUSTER_DIR")" ] || { echo "$CLUSTER_DIR is not empty" >&2; exit 1; }
    CLUSTER_DIR=$(cd "$CLUSTER_DIR" && pwd)
fi
SERVICES_DIR=$CLUSTER_DIR
source scripts/services.sh

DETACHED=0
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [ "$DETACHED" = 1 ]; then
        exit "$status"
    fi
    stop_cluster_and_tidy
    exit "$status"
}
trap cleanup EXIT
trap 'echo; exit 130' INT
trap 'exit 143' TERM

port_free() {
    python3 -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1",int(sys.argv[1]))); s.close()' "$1" 2>/dev/null
}

CHOSEN_PORTS=" "
pick_port() { # pick_port VAR WANTED WHAT: VAR=WANTED if free (and not --any-ports), else a free port
    local var=$1 want=$2 what=$3 p
    if [ "$ANY_PORTS" = 0 ] && [[ "$CHOSEN_PORTS" != *" $want "* ]] && port_free "$want"; then
        p=$want
    else
        p=$(free_port)
        while [[ "$CHOSEN_PORTS" == *" $p "* ]]; do p=$(free_port); done
        [ "$ANY_PORTS" = 1 ] || log "port $want is taken; $what uses $p"
    fi
    CHOSEN_PORTS+="$p "
    printf -v "$var" '%s' "$p"
}

# http_get URL → the body on stdout; fails on a non-2xx answer or no answer.
http_get() {
    python3 - "$1" <<'PY'
import sys, urllib.request
try:
    sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())
except Exception:
    sys.exit(1)
PY
}


# A token for a demo user, from the gateway binary, signed with the cluster's secret.
mint_token() { # mint_token ID USERNAME
    CHAT__AUTH__JWT_SECRET=$JWT_SECRET "$BIN" token --sub "$1" --username "$2" \
        --nickname "${2^}" --ttl 86400
}


log "cluster directory $CLUSTER_DIR"
ensure_service_binaries
command -v haproxy >/dev/null || apt_install haproxy || { echo "HAProxy is unavailable" >&2; exit 1; }
HAPROXY=$(command -v haproxy)
PROMETHEUS=/usr/bin/prometheus
[ -x "$PROMETHEUS" ] || apt_install prometheus || { echo "Prometheus is unavailable" >&2; exit 1; }
[ -x "$PROMETHEUS" ] || { echo "no $PROMETHEUS after installing prometheus" >&2; exit 1; }

# Started with their output in files (not the caller's terminal or pipe), so
# that a --background run returns and leaves nothing attached to the caller.
remember_services() { # every process services.sh has started so far
    local pid
    for pid in "${SERVICE_PIDS[@]}"; do
        [[ "$PID_STARTS" == *" $pid:"* ]] || remember "$pid"
    done
}
start_postgres </dev/null >"$CLUSTER_DIR/postgres.start.log" 2>&1 \
    || { remember_services; cat "$CLUSTER_DIR/postgres.start.log" >&2; exit 1; }
remember_services
cat "$CLUSTER_DIR/postgres.start.log"
start_redis </dev/null >"$CLUSTER_DIR/redis.start.log" 2>&1 \
    || { remember_services; cat "$CLUSTER_DIR/redis.start.log" >&2; exit 1; }
remember_services
cat "$CLUSTER_DIR/redis.start.log"

JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

# The caller's CHAT__* variables, for `restart` (which must start a node with
# the same settings whatever its own environment).
(
    umask 077
    while read -r var; do
        printf 'export %s=%q\n' "$var" "${!var}"
    done < <(compgen -e | grep '^CHAT__' || true) >"$CLUSTER_DIR/node-env.sh"
)

for i in 0 1 2; do
    pick_port port $((8081 + i)) "node ${NODE_NAMES[$i]}"
    NODE_PORTS+=("$port")
done
pick_port LB_PORT 8080 "HAProxy"
pick_port LB_STATS_PORT 8404 "HAProxy's stats"
pick_port PROMETHEUS_PORT 9090 "Prometheus"

start_node() { # start_node INDEX
    launch_node "$1"
}

# A first (it runs the migrations), then B and C together.
start_node 0
wait_ready 0
start_node 1
start_node 2
wait_ready 1
wait_ready 2

# --- HAProxy ---------------------------------------------------------------
# deploy/haproxy/haproxy.cfg itself, for loopback ports: the nodes' own
# addresses instead of Docker's DNS, round robin (new connections go A, B,
# C, A, ... which makes the spread easy to see), faster health checks on the
# main port, and a maxconn that fits this machine's open-files limit. Each
# change must find its line: a reworded deploy file fails here, not silently.
mkdir -p "$CLUSTER_DIR/haproxy"
HAPROXY_CFG=$CLUSTER_DIR/haproxy/haproxy.cfg
python3 - deploy/haproxy/haproxy.cfg "$HAPROXY_CFG" "$CLUSTER_DIR" "$LB_PORT" "$LB_STATS_PORT" \
    "${NODE_NAMES[@]}" "${NODE_PORTS[@]}" <<'PY'
import re, sys
src, dst, cluster_dir, lb_port, stats_port = sys.argv[1:6]
names, ports = sys.argv[6:9], sys.argv[9:12]
cfg = open(src).read()
def change(pattern, replacement, flags=re.M):
    global cfg
    cfg, n = re.subn(pattern, replacement, cfg, flags=flags)
    if n == 0:
        sys.exit(f"{src}: no match for {pattern!r}")
change(r"\A(#.*\n)+", f"# Generated by scripts/cluster.sh from {src} for the cluster in {cluster_dir}.\n")
change(r"^    maxconn \d+$", "    maxconn 8192")
change(r"^# Docker's embedded DNS.*?\n\n(?=frontend)", "", re.M | re.S)
change(r"^    bind :8080$", f"    bind 127.0.0.1:{lb_port}")
change(r"^    bind :8404$", f"    bind 127.0.0.1:{stats_port}")
change(r"^    balance leastconn$", "    balance roundrobin")
change(r"^    # inter/fall/rise:.*?^    default-server .*?$", "    default-server check inter 1s fall 2 rise 2", re.M | re.S)
change(r"^    server gateway-1 .*?\Z", "".join(
    f"    server node-{n} 127.0.0.1:{p}\n" for n, p in zip(names, ports)), re.M | re.S)
open(dst, "w").write(cfg)
PY
"$HAPROXY" -c -q -f "$HAPROXY_CFG" || { echo "HAProxy rejects $HAPROXY_CFG" >&2; exit 1; }
"$HAPROXY" -db -f "$HAPROXY_CFG" </dev/null >"$CLUSTER_DIR/haproxy/haproxy.log" 2>&1 &
HAPROXY_PID=$!
remember "$HAPROXY_PID"
log "HAProxy starting on 127.0.0.1:$LB_PORT, stats on 127.0.0.1:$LB_STATS_PORT (pid $HAPROXY_PID, log $CLUSTER_DIR/haproxy/haproxy.log)"

haproxy_sees_all() { # HAProxy has the three servers UP
    http_get "http://127.0.0.1:$LB_STATS_PORT/stats;csv" 2>/dev/null \
        | awk -F, '$1 == "gateways" && $2 ~ /^node-/ && $18 == "UP"' | wc -l | grep -qx 3
}
await_start "HAProxy (3 healthy nodes)" "$HAPROXY_PID" "$CLUSTER_DIR/haproxy/haproxy.log" 30 haproxy_sees_all
log "HAProxy ready: 3/3 nodes up"

# --- Prometheus -----------------------------------------------------------
# Debian's binary with a config of our own, its own data directory and port;
# the Debian service (if the package started one) is left alone.
mkdir -p "$CLUSTER_DIR/prometheus/data"
PROMETHEUS_CFG=$CLUSTER_DIR/prometheus/prometheus.yml
{
    cat <<EOF
# Generated by scripts/cluster.sh for the cluster in $CLUSTER_DIR.
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
  external_labels:
    cluster: local
EOF
    if [ -f "$ROOT/deploy/prometheus/alerts.yml" ]; then
        printf 'rule_files:\n  - %s\n' "$ROOT/deploy/prometheus/alerts.yml"
    fi
    cat <<EOF
scrape_configs:
  # The job name the alert rules expect.
  - job_name: chat-gateway
    metrics_path: /metrics
    static_configs:
EOF
    for i in 0 1 2; do
        printf '      - targets: ["127.0.0.1:%s"]\n        labels: {node: "%s"}\n' "${NODE_PORTS[$i]}" "${NODE_NAMES[$i]}"
    done
    cat <<EOF
  - job_name: haproxy
    metrics_path: /metrics
    static_configs:
      - targets: ["127.0.0.1:$LB_STATS_PORT"]
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:$PROMETHEUS_PORT"]
EOF
} >"$PROMETHEUS_CFG"
if command -v promtool >/dev/null; then
    promtool check config "$PROMETHEUS_CFG" >"$CLUSTER_DIR/prometheus/promtool.log" 2>&1 \
        || { echo "promtool rejects $PROMETHEUS_CFG" >&2; tail_log "$CLUSTER_DIR/prometheus/promtool.log"; exit 1; }
fi
"$PROMETHEUS" --config.file="$PROMETHEUS_CFG" \
    --storage.tsdb.path="$CLUSTER_DIR/prometheus/data" \
    --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" \
    </dev/null >"$CLUSTER_DIR/prometheus/prometheus.log" 2>&1 &
PROMETHEUS_PID=$!
remember "$PROMETHEUS_PID"
log "Prometheus starting on 127.0.0.1:$PROMETHEUS_PORT (pid $PROMETHEUS_PID, log $CLUSTER_DIR/prometheus/prometheus.log)"
await_start Prometheus "$PROMETHEUS_PID" "$CLUSTER_DIR/prometheus/prometheus.log" 60 \
    answers_200 "http://127.0.0.1:$PROMETHEUS_PORT/-/ready"
# Prometheus applies its scrape targets a few seconds after it is ready.
prometheus_scrapes_all() { # Prometheus has the three chat-gateway targets up
    http_get "http://127.0.0.1:$PROMETHEUS_PORT/api/v1/targets?state=active" 2>/dev/null | python3 -c '
import json, sys
try:
    targets = json.load(sys.stdin)["data"]["activeTargets"]
except Exception:
    targets = []
up = sum(1 for t in targets if t["labels"].get("job") == "chat-gateway" and t["health"] == "up")
sys.exit(0 if up == 3 else 1)'
}
await_start "Prometheus (scraping 3 nodes)" "$PROMETHEUS_PID" "$CLUSTER_DIR/prometheus/prometheus.log" 30 prometheus_scrapes_all
log "Prometheus ready: 3/3 nodes scraped"

# --- The env file -----------------------------------------------------------
NODE_URLS=()
for i in 0 1 2; do NODE_URLS+=("http://127.0.0.1:${NODE_PORTS[$i]}"); done
LB_URL="http://127.0.0.1:$LB_PORT"
PROMETHEUS_URL="http://127.0.0.1:$PROMETHEUS_PORT"
ENV_FILE=$CLUSTER_DIR/cluster.env
kv() { # kv KEY VALUE, as KEY="VALUE" (no value here needs escaping; refuse one that would)
    case "$2" in *[\"\\\$\`]*) echo "cannot write $1 to the env file" >&2; exit 1 ;; esac
    printf '%s="%s"\n' "$1" "$2"
}
(
    umask 077
    {
        echo "# Written by scripts/cluster.sh. Source it; stop with: bash scripts/cluster.sh stop $CLUSTER_DIR"
        kv CLUSTER_DIR "$CLUSTER_DIR"
        kv GATEWAY_BIN_USED "$BIN"
        kv JWT_SECRET "$JWT_SECRET"
        kv LB_URL "$LB_URL"
        kv LB_WS_URL "ws://127.0.0.1:$LB_PORT/ws"
        kv LB_PORT "$LB_PORT"
        kv LB_STATS_URL "http://127.0.0.1:$LB_STATS_PORT/stats"
        kv LB_STATS_PORT "$LB_STATS_PORT"
        kv HAPROXY_PID "$HAPROXY_PID"
        kv HAPROXY_CFG "$HAPROXY_CFG"
        kv PROMETHEUS_URL "$PROMETHEUS_URL"
        kv PROMETHEUS_PORT "$PROMETHEUS_PORT"
        kv PROMETHEUS_PID "$PROMETHEUS_PID"
        kv PROMETHEUS_CFG "$PROMETHEUS_CFG"
        kv NODE_NAMES_LIST "${NODE_NAMES[*]}"
        kv NODE_PORTS_LIST "${NODE_PORTS[*]}"
        kv NODE_PIDS_LIST "${NODE_PIDS[*]}"
        kv NODE_URLS_LIST "${NODE_URLS[*]}"
        for i in 0 1 2; do
            kv "NODE_${NODE_NAMES[$i]}_URL" "${NODE_URLS[$i]}"
            kv "NODE_${NODE_NAMES[$i]}_PID" "${NODE_PIDS[$i]}"
        done
        kv DATABASE_URL "$TEST_DATABASE_URL"
        kv PG_PORT "$PG_PORT"
        kv PG_PID "$PG_PID"
        kv REDIS_URL "$TEST_REDIS_URL"
        kv REDIS_PORT "$REDIS_PORT"
        kv REDIS_PID "$REDIS_PID"
        # pid:start-time of each process, so that `stop` never signals a reused pid.
        kv PID_STARTS "$PID_STARTS"
    } >"$ENV_FILE.tmp"
    mv "$ENV_FILE.tmp" "$ENV_FILE"
)

DEMO_TOKEN=$(mint_token 1000 demo)
cat <<EOF

  Load balancer  $LB_URL   ws://127.0.0.1:$LB_PORT/ws?room_id=1&token=...   (HAProxy, round robin)
  HAProxy stats  http://127.0.0.1:$LB_STATS_PORT/stats   (its metrics: /metrics)
  Prometheus     $PROMETHEUS_URL   (targets: $PROMETHEUS_URL/targets; try sum(chat_gateway_connections))

  Three gateway nodes share PostgreSQL and Redis:
EOF
for i in 0 1 2; do
    printf '    node %s   http://127.0.0.1:%s   ws://127.0.0.1:%s/ws?room_id=1&token=...   (metrics: /metrics)\n' \
        "${NODE_NAMES[$i]}" "${NODE_PORTS[$i]}" "${NODE_PORTS[$i]}"
done
cat <<EOF

  PostgreSQL  $TEST_DATABASE_URL
  Redis       $TEST_REDIS_URL
  JWT secret  $JWT_SECRET   (HS256; claims sub, exp, username, nickname)
  Logs        $CLUSTER_DIR/node-{A,B,C}.log, haproxy/haproxy.log, prometheus/prometheus.log
  Env file    $ENV_FILE

  Try it (register through the balancer, chat through it or any node):
    curl -s $LB_URL/api/auth/register -H 'content-type: application/json' \\
         -d '{"username":"alice","password":"password123"}'
    websocat "ws://127.0.0.1:$LB_PORT/ws?room_id=1&token=$DEMO_TOKEN"
  (that token is minted for user 1000 "demo", valid 24 h)

EOF

if [ "$BACKGROUND" = 1 ]; then
    DETACHED=1
    echo "  Running in the background. Stop it with:  bash scripts/cluster.sh stop $CLUSTER_DIR"
    echo
    exit 0
fi
echo "  Ctrl-C stops everything."
echo

# Stay in the foreground until Ctrl-C, or until one of the processes dies by itself.
WATCH_NAMES=("node A" "node B" "node C" HAProxy Prometheus Redis PostgreSQL)
# (the nodes' wrappers: they are this shell's children and exit with the node)
WATCH_PIDS=("${NODE_WRAPPER_PIDS[@]}" "$HAPROXY_PID" "$PROMETHEUS_PID" "$REDIS_PID" "$PG_PID")
WATCH_LOGS=("$CLUSTER_DIR/node-A.log" "$CLUSTER_DIR/node-B.log" "$CLUSTER_DIR/node-C.log"
    "$CLUSTER_DIR/haproxy/haproxy.log" "$CLUSTER_DIR/prometheus/prometheus.log"
    "$CLUSTER_DIR/redis/redis.log" "$CLUSTER_DIR/pg/postgres.log")
set +e
while true; do
    wait -n "${WATCH_PIDS[@]}"
    for i in "${!WATCH_PIDS[@]}"; do
        if ! alive "${WATCH_PIDS[$i]}"; then
            log "${WATCH_NAMES[$i]} (pid ${WATCH_PIDS[$i]}) exited; last lines of its log:"
            tail -n 20 "${WATCH_LOGS[$i]}"
            exit 1
        fi
    done
done
