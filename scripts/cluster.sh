#!/usr/bin/env bash
# A local three-node cluster to try cluster mode by hand:
#
#   bash scripts/cluster.sh            # debug build
#   bash scripts/cluster.sh --release  # release build
#
# Builds the gateway, starts a throwaway PostgreSQL and Redis on free loopback
# ports (scripts/services.sh; installs them with apt-get when missing, so run
# it as root the first time), starts nodes A, B and C on ports 8081, 8082 and
# 8083 (a free port instead of any that is taken) with one generated JWT
# secret, waits until every node's /readyz answers 200, and prints the URLs.
# It runs in the foreground: Ctrl-C (or SIGTERM) stops everything it started,
# by pid.
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=debug
CARGO_FLAGS=()
for arg in "$@"; do
    case "$arg" in
        --release) PROFILE=release; CARGO_FLAGS+=(--release) ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done

source scripts/services.sh

NODE_NAMES=(A B C)
NODE_PORTS=()
NODE_PIDS=()

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    local pid i
    if [ ${#NODE_PIDS[@]} -gt 0 ]; then
        log "stopping the gateway nodes (SIGTERM)"
        for pid in "${NODE_PIDS[@]}"; do
            kill -TERM "$pid" 2>/dev/null || true
        done
        for i in $(seq 1 150); do
            local alive=0
            for pid in "${NODE_PIDS[@]}"; do
                kill -0 "$pid" 2>/dev/null && alive=1
            done
            [ $alive = 1 ] || break
            sleep 0.1
        done
        for pid in "${NODE_PIDS[@]}"; do
            if kill -0 "$pid" 2>/dev/null; then
                log "node pid $pid did not stop in 15 s; killing it"
                kill -KILL "$pid" 2>/dev/null || true
            fi
            wait "$pid" 2>/dev/null || true
        done
    fi
    log "stopping PostgreSQL and Redis"
    stop_services
    log "stopped"
    exit "$status"
}
trap cleanup EXIT
trap 'echo; exit 130' INT
trap 'exit 143' TERM

port_free() {
    python3 -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1",int(sys.argv[1]))); s.close()' "$1" 2>/dev/null
}

http_status() { # http_status URL → prints the status code (000 when unreachable)
    if command -v curl >/dev/null; then
        curl -s -o /dev/null -m 5 -w '%{http_code}' "$1" || true
    else
        python3 - "$1" <<'PY' || true
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=5).status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")
PY
    fi
}

# HS256 token for a demo user, signed with the cluster's secret (python3 stdlib).
mint_token() { # mint_token ID USERNAME
    python3 - "$JWT_SECRET" "$1" "$2" <<'PY'
import base64, hashlib, hmac, json, sys, time
secret, uid, name = sys.argv[1], sys.argv[2], sys.argv[3]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64(json.dumps({"sub": uid, "exp": int(time.time()) + 86400,
                       "username": name, "nickname": name.capitalize()}).encode())
sig = b64(hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
print(f"{head}.{body}.{sig}")
PY
}

log "building the gateway ($PROFILE)"
cargo build -p gateway --locked "${CARGO_FLAGS[@]}"
BIN="${CARGO_TARGET_DIR:-target}/$PROFILE/gateway"
[ -x "$BIN" ] || { echo "no binary at $BIN" >&2; exit 1; }

ensure_service_binaries
start_postgres
start_redis

JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

for i in 0 1 2; do
    want=$((8081 + i))
    if port_free "$want"; then
        NODE_PORTS+=("$want")
    else
        NODE_PORTS+=("$(free_port)")
        log "port $want is taken; node ${NODE_NAMES[$i]} uses ${NODE_PORTS[$i]}"
    fi
done

start_node() { # start_node INDEX
    local i=$1 name=${NODE_NAMES[$1]} port=${NODE_PORTS[$1]}
    local logfile="$SERVICES_DIR/node-$name.log"
    CHAT__SERVER__HOST=127.0.0.1 \
    CHAT__SERVER__PORT="$port" \
    CHAT__DATABASE__URL="$TEST_DATABASE_URL" \
    CHAT__REDIS__URL="$TEST_REDIS_URL" \
    CHAT__AUTH__JWT_SECRET="$JWT_SECRET" \
    CHAT__SERVER__ALLOWED_ORIGINS="${CHAT__SERVER__ALLOWED_ORIGINS:-*}" \
    CHAT__LOG__LEVEL="${CHAT__LOG__LEVEL:-info}" \
        "$BIN" >"$logfile" 2>&1 &
    NODE_PIDS+=($!)
    log "node $name starting on 127.0.0.1:$port (pid $!, log $logfile)"
}

wait_ready() { # wait_ready INDEX
    local name=${NODE_NAMES[$1]} port=${NODE_PORTS[$1]} pid=${NODE_PIDS[$1]}
    local deadline=$((SECONDS + 60))
    until [ "$(http_status "http://127.0.0.1:$port/readyz")" = 200 ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "node $name exited; its log:" >&2
            tail -n 40 "$SERVICES_DIR/node-$name.log" >&2
            exit 1
        fi
        if [ $SECONDS -ge $deadline ]; then
            echo "node $name is not ready after 60 s; its log:" >&2
            tail -n 40 "$SERVICES_DIR/node-$name.log" >&2
            exit 1
        fi
        sleep 0.2
    done
    log "node $name ready"
}

# A first (it runs the migrations), then B and C together.
start_node 0
wait_ready 0
start_node 1
start_node 2
wait_ready 1
wait_ready 2

DEMO_TOKEN=$(mint_token 1000 demo)
cat <<EOF

  Three gateway nodes share PostgreSQL and Redis:
EOF
for i in 0 1 2; do
    printf '    node %s   http://127.0.0.1:%s   ws://127.0.0.1:%s/ws?room_id=1&token=...\n' \
        "${NODE_NAMES[$i]}" "${NODE_PORTS[$i]}" "${NODE_PORTS[$i]}"
done
cat <<EOF

  PostgreSQL  $TEST_DATABASE_URL
  Redis       $TEST_REDIS_URL
  JWT secret  $JWT_SECRET   (HS256; claims sub, exp, username, nickname)
  Logs        $SERVICES_DIR/node-{A,B,C}.log

  Try it (register on one node, chat through another):
    curl -s http://127.0.0.1:${NODE_PORTS[0]}/api/auth/register -H 'content-type: application/json' \\
         -d '{"username":"alice","password":"password123"}'
    websocat "ws://127.0.0.1:${NODE_PORTS[1]}/ws?room_id=1&token=$DEMO_TOKEN"
  (that token is minted for user 1000 "demo", valid 24 h)

  Ctrl-C stops everything.
EOF

# Stay in the foreground until Ctrl-C, or until a node dies by itself.
set +e
while true; do
    wait -n "${NODE_PIDS[@]}"
    for i in 0 1 2; do
        if ! kill -0 "${NODE_PIDS[$i]}" 2>/dev/null; then
            log "node ${NODE_NAMES[$i]} (pid ${NODE_PIDS[$i]}) exited; last lines of its log:"
            tail -n 20 "$SERVICES_DIR/node-${NODE_NAMES[$i]}.log"
            exit 1
        fi
    done
done
