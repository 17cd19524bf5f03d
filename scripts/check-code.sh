#!/usr/bin/env bash
# Code checks the test command enforces: formatting, clippy with warnings as
# errors, and no source, test or script file over MAX_LINES lines unless
# listed below with its reason. (Import cycles between the gateway's
# top-level modules are a test: gateway/tests/layers.rs.)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

MAX_LINES=700
# path: why it is longer
LONG_FILES=(
    "gateway/src/config.rs: every CHAT__ setting, its default and its check in one place (one struct per section)"
    "scripts/cluster.sh: a whole local cluster (Redis, PostgreSQL, three nodes, HAProxy from deploy/, Prometheus), started, reported and stopped"
    "deploy/checks.py: one subcommand per deployment check, sharing their fixtures"
)

if ! cargo clippy --version >/dev/null 2>&1 || ! cargo fmt --version >/dev/null 2>&1; then
    log "installing clippy and rustfmt"
    rustup component add clippy rustfmt >/dev/null
fi

log "format: cargo fmt --all --check"
cargo fmt --all --check

log "lints: cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked --quiet -- -D warnings

log "file lengths: at most $MAX_LINES lines unless listed in scripts/check-code.sh"
too_long=0
while read -r lines path; do
    [ "$path" = total ] && continue
    [ "$lines" -le "$MAX_LINES" ] && continue
    if printf '%s\n' "${LONG_FILES[@]}" | grep -q "^$path: "; then
        continue
    fi
    echo "  $path: $lines lines (split it, or list it with a reason)" >&2
    too_long=1
done < <(git ls-files --cached --others --exclude-standard '*.rs' '*.sh' '*.py' '*.js' |
    while read -r f; do [ -f "$f" ] && echo "$f"; done | xargs wc -l)
for entry in "${LONG_FILES[@]}"; do
    path=${entry%%:*}
    if [ ! -f "$path" ] || [ "$(wc -l < "$path")" -le "$MAX_LINES" ]; then
        echo "  $path is listed as long but is not: take it off the list" >&2
        too_long=1
    fi
done
[ "$too_long" = 0 ]
log "code checks passed"
