# Shell code the test wrappers share. Source it from the repository root
# after setting SCRIPT (the name in log lines):
#
#   parse_build_args "$@"   # --no-build (BUILD=0), --help (the caller's
#                           # header comment), anything else is an error
#   log "text"              # ==> [12:00:00] SCRIPT: text
#   gateway_binary [PROFILE] # BIN: $GATEWAY_BIN, else
#                           # ${CARGO_TARGET_DIR:-target}/PROFILE/gateway
#                           # (debug by default), built first unless
#                           # BUILD=0 or GATEWAY_BIN is set
#
# --no-build is for scripts/test.sh, which has just built the workspace:
# `cargo build -p gateway` alone unifies other crate features than
# `--workspace --tests` and would rebuild much of the dependency tree.

log() { echo "==> [$(date +%H:%M:%S)] $SCRIPT: $*"; }

# The calling script's header: its comment lines after the shebang.
print_help() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
}

parse_build_args() {
    BUILD=1
    local arg
    for arg in "$@"; do
        case "$arg" in
            --no-build) BUILD=0 ;;
            -h|--help) print_help; exit 0 ;;
            *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
        esac
    done
}

gateway_binary() {
    local profile=${1:-debug}
    BIN=${GATEWAY_BIN:-${CARGO_TARGET_DIR:-target}/$profile/gateway}
    if [ "${BUILD:-1}" = 1 ] && [ -z "${GATEWAY_BIN:-}" ]; then
        log "building the gateway ($profile)"
        if [ "$profile" = release ]; then
            cargo build --release -p gateway --locked
        else
            cargo build -p gateway --locked
        fi
    else
        log "using the gateway already built at $BIN"
    fi
    [ -x "$BIN" ] || { echo "no gateway binary at $BIN" >&2; exit 1; }
}

# print_tails FILE...: the last lines of each log that exists (on a failure).
print_tails() {
    local f
    for f in "$@"; do
        [ -f "$f" ] || continue
        echo "---- last lines of $f ----"
        tail -n 15 "$f"
    done
}

# finish STATUS: the closing line (how long it took, and since the build
# when `built` is set; `started` is $SECONDS at the start), then exit STATUS.
finish() {
    local status=$1 since_build=
    [ -z "${built:-}" ] || since_build=" ($((SECONDS - built)) s after the build)"
    if [ "$status" = 0 ]; then
        log "passed in $((SECONDS - started)) s$since_build"
    else
        log "FAILED (exit $status) after $((SECONDS - started)) s"
    fi
    exit "$status"
}

# on_exit FUNCTION: FUNCTION runs at exit, Ctrl-C and TERM included (as
# exit 130 and 143), so that what the script started is always stopped.
on_exit() {
    trap "$1" EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# CACHE_DIR: where tools are installed once per machine.
CACHE_DIR=${CHAT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/chat-gateway}

# free_port: a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# pip_venv DIR SPEC...: a Python venv in DIR holding the pip packages SPEC
# (pinned, name==version), made once per machine: it is made again only
# when SPEC changes or an earlier install was cut short (the stamp file is
# written last). Installs python3-venv with apt-get (as root) when Debian's
# python3 lacks venv's pip bootstrap.
pip_venv() {
    local dir=$1
    shift
    [ "$(cat "$dir/.installed" 2>/dev/null)" = "$*" ] && return 0
    log "installing $* into $dir (first run on this machine)"
    rm -rf "$dir"
    mkdir -p "$(dirname "$dir")"
    if ! python3 -m venv "$dir" >/dev/null 2>&1; then
        rm -rf "$dir"
        [ "$(id -u)" = 0 ] || { echo "python3 -m venv failed; install python3-venv (needs root)" >&2; return 1; }
        log "python3 -m venv failed; installing python3-venv with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
        python3 -m venv "$dir" || { echo "cannot create a venv in $dir" >&2; return 1; }
    fi
    "$dir/bin/pip" install --quiet --disable-pip-version-check "$@" || { echo "pip install $* failed" >&2; return 1; }
    echo "$*" >"$dir/.installed"
}

# wait_ready URL PID [SECONDS]: until URL answers 200; fails (exit 1) when
# the process PID exits first or SECONDS (default 60) pass.
wait_ready() {
    local url=$1 pid=$2 deadline=$((SECONDS + ${3:-60}))
    until [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$url" || true)" = 200 ]; do
        kill -0 "$pid" 2>/dev/null || { log "pid $pid exited before $url was ready"; exit 1; }
        [ $SECONDS -lt $deadline ] || { log "$url was not ready within ${3:-60} s"; exit 1; }
        sleep 0.2
    done
}

# stop_pid PID [NAME]: TERM, up to 20 s to exit (a node drains first),
# then KILL; reaps it. Only for a process this script started.
stop_pid() {
    local pid=$1
    [ -n "$pid" ] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        log "stopping ${2:-pid $pid} (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 200); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}
