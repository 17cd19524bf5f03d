#!/usr/bin/env bash
# Code checks the test command enforces: formatting, clippy with warnings as
# errors, no source, test or script file over MAX_LINES lines unless listed
# below with its reason, and a README Layout table that matches the tree. (Import cycles between the gateway's
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

log "README layout: its paths exist, and the tree's entries are in it"
python3 - <<'PY'
import re, subprocess, sys
readme = open("README.md").read()
table = readme[readme.index("## Layout"):]
rows = [line for line in table.splitlines() if line.startswith("| `")]
listed = [re.match(r"\| `([^`]+)`", row).group(1) for row in rows]
problems = [f"listed but missing: {p}" for p in listed
            if subprocess.run(["test", "-e", p.rstrip("/")]).returncode != 0]
tracked = subprocess.check_output(["git", "ls-files"], text=True).split()
entries = set()
for path in tracked:
    parts = path.split("/")
    if len(parts) == 1 and parts[0] in ("Cargo.lock", "README.md", ".gitignore"):
        continue
    if parts[0] == "scripts" or parts[:2] == ["gateway", "tests"]:
        depth = 2 if parts[0] == "scripts" else 3
        entries.add("/".join(parts[:depth]) + ("/" if len(parts) > depth else ""))
    else:
        entries.add(parts[0] + ("/" if len(parts) > 1 else ""))
problems += [f"in the tree but not in the table: {e}" for e in sorted(entries)
             if f"`{e}`" not in table and f"`{e.rstrip('/')}`" not in table]
for p in problems:
    print("  " + p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
log "code checks passed"
