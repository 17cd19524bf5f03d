#!/usr/bin/env bash
# The benchmarks behind loadtest/BENCHMARKS.md, on loopback, with the Rust
# load generator (loadtest/loadgen). Each run prints the generator's progress
# and one JSON summary line; all summaries are also appended to
# $OUT (default loadtest/results.jsonl, not committed).
#
#   bash loadtest/bench.sh                 # everything (~10 min after the build)
#   bash loadtest/bench.sh idle fanout500  # only these runs
#   bash loadtest/bench.sh --no-build ...  # use target/release as it is
#
# Runs: idle (10k then 19k idle connections: memory per connection,
# connection rate cold and warm), storm (10,000 clients into one room),
# quiet (one room of 10, one sender at 5/s: latency), fanout500 (one
# 500-member room, one sender, window 32), fanout1000 (one 1,000-member
# room), fanout5000 (one 5,000-member room, window 8), small (100 rooms of
# 10, 100 senders at 20/s), rooms1000 (1,000 rooms of 10, 1,000 senders at
# 5/s), persist (messages stored per
# second: 200 rooms of 2, every member sending, window 32), roomlist
# (`GET /api/rooms` for a user in 64 rooms with 1,500 unread messages each:
# loadtest/room_list.py), deflate (one 500-member room, one sender at 200/s,
# 400 then 64 bytes of content, without and with permessage-deflate; a
# fixed rate, because inflating costs the generator more than it costs the
# gateway) on one node with SQLite; cluster (three nodes, PostgreSQL + Redis, via scripts/cluster.sh:
# fanout500, small and persist again with each room spread over the nodes).
#
# Every process started here is stopped here, by pid. The gateway gets the
# limits a load test needs (no per-IP connection or message rate limits, a
# 20,000 connection cap); everything else is the shipped default.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
log() { echo "==> [$(date +%H:%M:%S)] $*"; }

BUILD=1
RUNS=()
for a in "$@"; do
    case "$a" in
        --no-build) BUILD=0 ;;
        -h|--help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) RUNS+=("$a") ;;
    esac
done
[ ${#RUNS[@]} -gt 0 ] || RUNS=(idle storm quiet fanout500 fanout1000 fanout5000 small rooms1000 persist roomlist deflate cluster)
OUT=${OUT:-$ROOT/loadtest/results.jsonl}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
GATEWAY=$TARGET/release/gateway
LOADGEN=$TARGET/release/loadgen

if [ $BUILD = 1 ]; then
    log "building the gateway and the load generator (release)"
    cargo build --release --locked -p gateway -p loadgen
fi

WORK=$(mktemp -d /tmp/chat-bench.XXXXXX)
chmod 755 "$WORK" # PostgreSQL (cluster run) runs as the postgres user
GATEWAY_PID=
CLUSTER_DIR=
cleanup() {
    [ -z "$GATEWAY_PID" ] || { kill "$GATEWAY_PID" 2>/dev/null; wait "$GATEWAY_PID" 2>/dev/null || true; }
    [ -z "$CLUSTER_DIR" ] || bash scripts/cluster.sh stop "$CLUSTER_DIR" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

export CHAT__LIMITS__CONNECT_RATE_PER_IP=0
export CHAT__LIMITS__MSG_RATE=0
export CHAT__LIMITS__AUTH_RATE_PER_IP=0
# loadgen's setup creates every room as one user, through REST.
export CHAT__LIMITS__REST_WRITE_RATE=0
export CHAT__LIMITS__MAX_ROOMS_PER_USER=1000000
export CHAT__LIMITS__FRAME_RATE=0
export CHAT__LIMITS__READ_BYTES_RATE=0
export CHAT__LIMITS__MAX_CONNECTIONS=20000
export CHAT__LOG__LEVEL=warn
SECRET=bench-secret-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')

start_node() { # a fresh single node on SQLite (the embedded default)
    stop_node
    rm -rf "$WORK/node" && mkdir -p "$WORK/node"
    CHAT__SERVER__PORT=$PORT CHAT__AUTH__JWT_SECRET=$SECRET \
        CHAT__DATABASE__URL="sqlite://$WORK/node/chat.db?mode=rwc" \
        "$GATEWAY" >"$WORK/node/gateway.log" 2>&1 &
    GATEWAY_PID=$!
    for _ in $(seq 100); do
        curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    cat "$WORK/node/gateway.log"; return 1
}
stop_node() {
    [ -z "$GATEWAY_PID" ] || { kill "$GATEWAY_PID" 2>/dev/null; wait "$GATEWAY_PID" 2>/dev/null || true; }
    GATEWAY_PID=
}

record() { # record NAME JSON: one summary line, printed and appended to $OUT
    echo "{\"run\":\"$1\",\"at\":\"$(date -u +%FT%TZ)\",\"result\":$2}" | tee -a "$OUT"
}

measure() { # measure NAME URLS SECRET PIDS loadgen-args...: one measured run
    local name=$1 urls=$2 secret=$3 pids=$4 line
    shift 4
    log "$name: loadgen $*"
    line=$("$LOADGEN" "$@" --url "$urls" --secret "$secret" --gateway-pid "$pids") || {
        echo "$line"; log "$name: FAILED (loss, duplicates, refusals or drops; see above)"; return 1; }
    record "$name" "$line"
}

run() { # run NAME loadgen-args...: one measured run on a fresh single node
    start_node
    measure "$1" "http://127.0.0.1:$PORT" "$SECRET" "$GATEWAY_PID" "${@:2}"
}

want() { local r; for r in "${RUNS[@]}"; do [ "$r" = "$1" ] && return 0; done; return 1; }

if want idle; then
    run idle10k connect --conns 10000 --room-size 10 --sources 127.0.0.1-4
    [ -n "${SKIP19K:-}" ] || run idle19k connect --conns 19000 --room-size 10 --procs 2 --sources 127.0.0.1-8
fi
# The fan-out runs on one node, NAME then loadgen's arguments.
FANOUT_RUNS=(
    "storm connect --conns 10000 --room-size 10000 --passes 2 --sources 127.0.0.1-4"
    "quiet fanout --rooms 1 --room-size 10 --senders 1 --rate 5 --duration 20"
    "fanout500 fanout --rooms 1 --room-size 500 --senders 1 --window 32 --duration 20"
    "fanout1000 fanout --rooms 1 --room-size 1000 --senders 1 --window 32 --duration 20"
    "fanout5000 fanout --rooms 1 --room-size 5000 --senders 1 --window 8 --duration 20 --sources 127.0.0.1-2"
    "small fanout --rooms 100 --room-size 10 --senders 1 --rate 20 --duration 20"
    "rooms1000 fanout --rooms 1000 --room-size 10 --senders 1 --rate 5 --duration 20 --sources 127.0.0.1-2"
    "persist fanout --rooms 200 --room-size 2 --senders 2 --window 32 --duration 20"
)
for spec in "${FANOUT_RUNS[@]}"; do
    read -r -a words <<<"$spec"
    if want "${words[0]}"; then run "${words[@]}"; fi
done
if want deflate; then
    for size in 400 64; do
        for offer in false true; do
            run "deflate$size-$([ $offer = true ] && echo on || echo off)" fanout --rooms 1 --room-size 500 \
                --senders 1 --rate 200 --duration 20 --size "$size" --deflate "$offer"
        done
    done
fi
stop_node

if want roomlist; then
    start_node
    log "roomlist: loadtest/room_list.py (64 rooms, 1,500 messages each)"
    line=$(python3 loadtest/room_list.py "http://127.0.0.1:$PORT" --rooms 64 --backlog 1500 | tee /dev/stderr | tail -1)
    record roomlist "$line"
fi
if want cluster; then
    log "cluster: three nodes on PostgreSQL + Redis (scripts/cluster.sh --release)"
    CLUSTER_DIR=$WORK/cluster
    bash scripts/cluster.sh --release --no-build --background --any-ports --dir "$CLUSTER_DIR" >"$WORK/cluster.log" 2>&1 \
        || { cat "$WORK/cluster.log"; exit 1; }
    # shellcheck disable=SC1091
    source "$CLUSTER_DIR/cluster.env"
    URLS=$(echo "$NODE_URLS_LIST" | tr ' ' ',')
    PIDS=$(echo "$NODE_PIDS_LIST" | tr ' ' ',')
    crun() { measure "$1" "$URLS" "$JWT_SECRET" "$PIDS" "${@:2}"; }
    crun cluster-fanout500 fanout --rooms 1 --room-size 500 --senders 1 --window 32 --duration 20
    crun cluster-small fanout --rooms 100 --room-size 10 --senders 1 --rate 20 --duration 20
    crun cluster-persist fanout --rooms 200 --room-size 2 --senders 2 --window 32 --duration 20
fi
log "done; summaries appended to $OUT"
