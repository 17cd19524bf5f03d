#!/usr/bin/env bash
# End-to-end check of the local cluster, no Docker:
#
#   bash scripts/e2e-cluster.sh             # builds the gateway (debug) first
#   bash scripts/e2e-cluster.sh --no-build  # uses ${CARGO_TARGET_DIR:-target}/debug/gateway as it is
#
# --no-build is for scripts/test.sh, which has just built the workspace:
# `cargo build -p gateway` alone unifies other crate features than
# `--workspace --tests` and would rebuild much of the dependency tree.
#
# Builds the gateway (debug; honours CARGO_TARGET_DIR), starts
# scripts/cluster.sh --background on free loopback ports (PostgreSQL, Redis,
# three nodes, HAProxy, Prometheus), then runs scripts/e2e-cluster.py (Python 3;
# its WebSocket client, scripts/chat_scenario.py, is on the `websockets`
# library, installed pinned in a venv under the cache directory on the first
# run: scripts/cluster-scenario.sh): 9 users connect THROUGH HAPROXY, every node holds
# some of them (each node's /metrics), they chat in room 1 and every client
# gets every message exactly once, Prometheus reports the three nodes up and
# sum(chat_gateway_connections) equal to the connections held, then 0 after
# they close. Stops the cluster by pid (`cluster.sh stop`) whatever happens;
# on a failure it prints the last lines of each log first. Exits non-zero on
# any failure. About 30 s after the build. E2E_KEEP_DIR=1 keeps the
# cluster's directory (logs).
set -euo pipefail
cd "$(dirname "$0")/.."

SCENARIO=e2e-cluster
KEEP_VAR=E2E_KEEP_DIR
# shellcheck source=scripts/cluster-scenario.sh
source scripts/cluster-scenario.sh

start_cluster

log "running the client (scripts/e2e-cluster.py)"
timeout --foreground 150 "$SCENARIO_PYTHON" scripts/e2e-cluster.py "$ENV_FILE"
STATUS_OK=1
