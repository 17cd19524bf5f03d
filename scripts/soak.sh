#!/usr/bin/env bash
# A bounded soak of three nodes behind HAProxy: steady connects and
# disconnects, room joins and leaves, and traffic; the nodes' resident memory,
# file descriptors, threads and own gauges must come back to where they were.
#
#   bash scripts/soak.sh                    # builds the gateway (debug) first; 10 minutes
#   SOAK_SECS=60 bash scripts/soak.sh --no-build   # CI: uses $GATEWAY_BIN, or
#                                           # ${CARGO_TARGET_DIR:-target}/debug/gateway, as it is
#
# Starts scripts/cluster.sh --background on free loopback ports (PostgreSQL,
# Redis, nodes A, B, C, HAProxy round robin, Prometheus), then runs
# scripts/soak.py (Python 3; the WebSocket client of scripts/chat_scenario.py,
# on the pinned `websockets` in a venv under the cache directory:
# scripts/cluster-scenario.sh): a warm-up of churn, every client leaves, a "start"
# sample of each node; SOAK_SECS of churn (SOAK_CLIENTS clients at a time
# through the balancer, each living a few seconds: it chats, joins a room and
# leaves it, then closes, or drops its TCP connection); every client leaves,
# an "end" sample. A progress line every 10 s, a start/end table per node
# (RSS, fds, sockets, threads, connections, rooms, presence users, subscribed
# channels), and a failure when, with no client left, a gauge is not 0, fds
# grew by more than 4, threads by more than 4, RSS by more than
# max(8 MiB, 10 %), or a client saw a failure (see soak.py's docstring for
# every knob: SOAK_CLIENTS, SOAK_USERS, SOAK_ROOMS, SOAK_LIFE_SECS,
# SOAK_SEND_EVERY_SECS, SOAK_WARMUP_SECS, SOAK_FD_SLACK, SOAK_RSS_SLACK_MIB, ...).
# Stops the cluster by pid (`cluster.sh stop`) whatever happens. Takes
# SOAK_SECS + SOAK_WARMUP_SECS (default 30) + about 40 s (cluster start and
# stop, two quiet periods); bounded (hard limits: 300 s for the cluster's
# start, SOAK_SECS + SOAK_WARMUP_SECS + 240 s for the rest).
#
# A failed client is reported with every frame it received, the node and
# connection that served it, the room's seqs (stored and delivered) and that
# connection's log lines (scripts/soak_checks.py); the node and HAProxy logs
# are copied to target/artifacts/soak/ either way.
#
# Environment: SOAK_SECS (default 600), GATEWAY_BIN (the binary with
# --no-build), SOAK_KEEP_DIR=1 keeps the cluster's directory; the caller's
# CHAT__* variables reach the nodes (CHAT__LOG__LEVEL defaults to
# gateway::ws=debug,info here).
set -euo pipefail
cd "$(dirname "$0")/.."

SCENARIO=soak
KEEP_VAR=SOAK_KEEP_DIR
ARTIFACTS=target/artifacts/soak
# The connection-level lines a failure report quotes (connects, entries,
# sends, the writer's cursors at close): a few per connection.
export CHAT__LOG__LEVEL=${CHAT__LOG__LEVEL:-gateway::ws=debug,info}
# shellcheck source=scripts/cluster-scenario.sh
source scripts/cluster-scenario.sh

SOAK_SECS=${SOAK_SECS:-600}
SOAK_WARMUP_SECS=${SOAK_WARMUP_SECS:-30}
export SOAK_SECS SOAK_WARMUP_SECS
start_cluster

log "soaking for $SOAK_SECS s after a $SOAK_WARMUP_SECS s warm-up (scripts/soak.py)"
timeout --foreground $(( ${SOAK_SECS%.*} + ${SOAK_WARMUP_SECS%.*} + 240 )) "$SCENARIO_PYTHON" scripts/soak.py "$CLUSTER_DIR"
STATUS_OK=1
