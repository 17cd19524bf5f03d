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
