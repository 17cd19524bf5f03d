#!/usr/bin/env bash
# RFC 6455 conformance of the gateway's own WebSocket transport: the
# Autobahn|Testsuite fuzzing client (sections 1-10, and 12-13: permessage-deflate
# with each kind of offer; 11 does not exist) against
# `gateway/examples/autobahn_echo.rs`, an echo endpoint built from the same
# listener, upgrade, negotiation, frame reader and frame writer as /ws.
#
#   bash scripts/autobahn.sh              # builds the example (debug) first
#   bash scripts/autobahn.sh --no-build   # uses target/debug/examples/autobahn_echo
#
# Installs the suite when missing: Python 2.7 from pyenv (2.7.18), a
# virtualenv with autobahntestsuite 25.10.1 under the cache directory
# ($CHAT_CACHE_DIR, default ~/.cache/chat-gateway). Writes the HTML report
# to target/artifacts/autobahn/ and fails unless every case ended OK,
# NON-STRICT or INFORMATIONAL. Sections 12-13 repeat 18 message sizes for
# each of 12 offers; the default run keeps messages of 16 bytes to 32 KiB
# whole (cases x.y.1-8) and of 8 to 32 KiB in 256-byte fragments (x.y.11-13):
# 132 of the 216, 1,000 messages each, which takes about
# 2 minutes in all; AUTOBAHN_FULL=1 runs all 517 cases (about 13 minutes,
# nearly all of it in the Python client). Bounded (20 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
SCRIPT=autobahn
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
parse_build_args "$@"
VERSION=25.10.1
VENV=$CACHE_DIR/autobahn-$VERSION
OUT=target/artifacts/autobahn

if [ ! -x "$VENV/bin/wstest" ]; then
    log "installing autobahntestsuite $VERSION (Python 2.7) into $VENV"
    command -v pyenv >/dev/null || [ -x "$HOME/.pyenv/bin/pyenv" ] || { echo "pyenv with Python 2.7.18 is needed" >&2; exit 1; }
    export PYENV_VERSION=2.7.18
    export PATH="$HOME/.pyenv/shims:$HOME/.pyenv/bin:$PATH"
    python --version 2>&1 | grep -q '^Python 2\.7' || { echo "Python 2.7.18 is not installed in pyenv" >&2; exit 1; }
    python -m pip install --user -q --disable-pip-version-check 'virtualenv<20.22' 2>/dev/null
    python -m virtualenv -q "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "autobahntestsuite==$VERSION" 2>/dev/null
fi

BIN=${CARGO_TARGET_DIR:-target}/debug/examples/autobahn_echo
if [ "$BUILD" = 1 ]; then
    log "building the echo endpoint"
    cargo build -p gateway --example autobahn_echo --locked -q
fi
[ -x "$BIN" ] || { echo "no echo endpoint at $BIN (build it: cargo build -p gateway --example autobahn_echo)" >&2; exit 1; }

PORT=$(free_port)
WORK=$(mktemp -d /tmp/chat-autobahn.XXXXXX)
"$BIN" "127.0.0.1:$PORT" >"$WORK/echo.log" 2>&1 &
ECHO_PID=$!
trap 'kill "$ECHO_PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.1
done

rm -rf "$OUT" && mkdir -p "$OUT"
if [ "${AUTOBAHN_FULL:-0}" = 1 ]; then
    DEFLATE_CASES='"12.*", "13.*"'
else
    DEFLATE_CASES=$(python3 -c 'import json; print(", ".join(json.dumps(f"{s}.{g}.{i}") for s, n in ((12, 5), (13, 7)) for g in range(1, n + 1) for i in [*range(1, 9), 11, 12, 13]))')
fi
cat >"$WORK/spec.json" <<JSON
{
  "outdir": "$PWD/$OUT",
  "servers": [{"agent": "chat-gateway", "url": "ws://127.0.0.1:$PORT"}],
  "cases": ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "8.*", "9.*", "10.*", $DEFLATE_CASES],
  "exclude-cases": [],
  "exclude-agent-cases": {}
}
JSON
log "fuzzing client against ws://127.0.0.1:$PORT (sections 1-10 and 12-13; the report is written at the end)"
( cd "$WORK" && timeout 1200 "$VENV/bin/wstest" -m fuzzingclient -s spec.json >wstest.log 2>&1 ) &
RUN=$!
started=$SECONDS
while kill -0 "$RUN" 2>/dev/null; do
    sleep 1
    [ $(( (SECONDS - started) % 30 )) = 29 ] && log "running ($((SECONDS - started + 1)) s)"
done
wait "$RUN" || { tail -20 "$WORK/wstest.log"; echo "wstest failed" >&2; exit 1; }

python3 - "$OUT/index.json" <<'PY'
import collections, json, sys
results = json.load(open(sys.argv[1]))["chat-gateway"]
counts = collections.Counter(r["behavior"] for r in results.values())
bad = {case: r["behavior"] for case, r in results.items()
       if r["behavior"] not in ("OK", "NON-STRICT", "INFORMATIONAL")}
print(f"autobahn: {len(results)} cases: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
if bad:
    key = lambda c: [int(x) for x in c.split(".")]
    for case in sorted(bad, key=key)[:40]:
        print(f"  case {case}: {bad[case]}")
    sys.exit(1)
PY
log "passed; report in $OUT/index.html"
