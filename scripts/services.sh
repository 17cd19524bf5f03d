# Throwaway PostgreSQL and Redis servers for tests, on free loopback ports in
# a temporary directory. Source it, call `ensure_service_binaries`, then
# `start_postgres` / `start_redis`; `stop_services` (installed as an EXIT trap
# by the callers) stops exactly the processes started here, by pid.

SERVICES_DIR=${SERVICES_DIR:-$(mktemp -d /tmp/chat-services.XXXXXX)}
# PostgreSQL runs as the `postgres` user, which must be able to reach its directory.
chmod 755 "$SERVICES_DIR"
SERVICE_PIDS=()
PG_BIN=${PG_BIN:-}

log() { echo "==> [$(date +%H:%M:%S)] $*"; }

apt_install() {
    if [ "$(id -u)" != 0 ]; then
        echo "need root to apt-get install $*" >&2
        return 1
    fi
    log "installing $* with apt-get (first run on this machine)"
    if [ -z "${APT_UPDATED:-}" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

find_pg_bin() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        if [ -x "$d/initdb" ] && [ -x "$d/postgres" ]; then
            PG_BIN=$d
        fi
    done
    [ -n "$PG_BIN" ]
}

ensure_service_binaries() {
    find_pg_bin || { apt_install postgresql && find_pg_bin; } || { echo "PostgreSQL is unavailable" >&2; return 1; }
    command -v redis-server >/dev/null || apt_install redis-server || { echo "Redis is unavailable" >&2; return 1; }
    command -v redis-cli >/dev/null || apt_install redis-tools
    # Throwaway certificates for the TLS backends of the cluster tests.
    command -v openssl >/dev/null || apt_install openssl
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_for() { # wait_for SECONDS command...
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.1
    done
}

# Exports TEST_DATABASE_URL (the `postgres` database of a fresh cluster).
start_postgres() {
    local dir="$SERVICES_DIR/pg" port
    port=$(free_port)
    mkdir -p "$dir"
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$dir"
    runuser -u postgres -- "$PG_BIN/initdb" -D "$dir/data" -A trust -U postgres >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log"; return 1; }
    runuser -u postgres -- "$PG_BIN/postgres" -D "$dir/data" -p "$port" -k "$dir" \
        -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300 >"$dir/postgres.log" 2>&1 &
    SERVICE_PIDS+=($!)
    PG_PID=$!
    PG_PORT=$port
    wait_for 30 "$PG_BIN/pg_isready" -h 127.0.0.1 -p "$port" || { cat "$dir/postgres.log"; return 1; }
    export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
    log "PostgreSQL on 127.0.0.1:$port (pid $PG_PID)"
}

# Exports TEST_REDIS_URL.
start_redis() {
    local dir="$SERVICES_DIR/redis" port
    port=$(free_port)
    mkdir -p "$dir"
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
        --logfile "$dir/redis.log" --daemonize no &
    SERVICE_PIDS+=($!)
    REDIS_PID=$!
    REDIS_PORT=$port
    wait_for 30 redis-cli -p "$port" ping || { cat "$dir/redis.log"; return 1; }
    export TEST_REDIS_URL="redis://127.0.0.1:$port"
    log "Redis on 127.0.0.1:$port (pid $REDIS_PID)"
}

stop_services() {
    local pid
    for pid in "${SERVICE_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${SERVICE_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    SERVICE_PIDS=()
    rm -rf "$SERVICES_DIR"
}
