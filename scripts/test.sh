#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what is missing
# (PostgreSQL, Redis, cargo-nextest, Chromium, playwright-core), starts
# throwaway servers on free loopback ports, runs every test, and stops what it
# started.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
trap stop_services EXIT

started=$SECONDS
# A fresh clone builds once: incremental caches would only take disk
# (1.8 GB of the debug build), and disk is what CI ran short of.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
log "toolchain: $(cargo --version)"
log "deployment files (rule tests, Kubernetes schemas, policy lint)"
bash scripts/check-deploy.sh
bash scripts/check-code.sh

ensure_service_binaries
start_postgres
start_redis

if ! cargo nextest --version >/dev/null 2>&1; then
    log "installing cargo-nextest"
    cargo install --locked cargo-nextest >/dev/null
fi

log "building the workspace and its tests (disk free: $(df -h --output=avail . | tail -1 | tr -d ' '))"
cargo build --workspace --tests --examples --locked 2>&1 | grep -E '^(error|warning: unused)|Finished|Compiling (gateway|chat-shared|migrations)' || true
cargo build --workspace --tests --examples --locked --quiet

nextest() { cargo nextest run --locked --no-fail-fast --failure-output final --status-level fail --final-status-level slow "$@"; }

log "1/3 every test: unit, store (SQLite and PostgreSQL), API scenarios on the embedded default, cluster scenarios"
nextest --workspace -E 'not binary(attacks)'

log "2/3 the same API scenarios in cluster mode (Redis bus and presence, PostgreSQL)"
# `--workspace` with a filter, not `-p gateway`: the same feature set as the
# build above, so nothing is compiled again.
TEST_BACKEND=redis nextest --workspace -E 'package(gateway) & binary(api)'

log "3/3 the attack battery: one hostile client at a time against a gateway process, alone (timings)"
nextest --workspace -E 'package(gateway) & binary(attacks)' --test-threads 1

log "RFC 6455 conformance: Autobahn|Testsuite against the gateway's own transport"
bash scripts/autobahn.sh --no-build

log "end-to-end: three nodes behind HAProxy, scraped by a real Prometheus"
bash scripts/e2e-cluster.sh --no-build

log "browser: the chat page in Chromium (playwright-core) against the local cluster"
bash scripts/browser-test.sh --no-build

log "rolling restart: three nodes behind HAProxy restarted one by one under traffic; nothing lost or duplicated"
bash scripts/rolling-restart.sh --no-build

log "soak (short): churn over three nodes; memory, fds, threads and gauges back to where they were"
SOAK_SECS=60 SOAK_WARMUP_SECS=10 bash scripts/soak.sh --no-build

log "k6 smoke: every load-test scenario for a few seconds against one node and the local cluster, thresholds on"
bash scripts/k6-smoke.sh --no-build

log "property-based API test against a live node (schemathesis over /api/openapi.json)"
bash scripts/schemathesis.sh

log "all tests passed in $((SECONDS - started)) s (build directory: $(du -sh target | cut -f1))"
