#!/usr/bin/env bash
# Rolling restart under traffic: three nodes behind HAProxy are restarted one
# by one (SIGTERM, drain, exit 0, start, ready) while clients chat through the
# balancer and resume; no client may lose or duplicate a message.
#
#   bash scripts/rolling-restart.sh             # builds the gateway (debug) first
#   bash scripts/rolling-restart.sh --no-build  # uses $GATEWAY_BIN, or
#                                               # ${CARGO_TARGET_DIR:-target}/debug/gateway, as it is
#
# Starts scripts/cluster.sh --background on free loopback ports (PostgreSQL,
# Redis, nodes A, B, C, HAProxy round robin with /readyz health checks,
# Prometheus) with a short drain window, then runs scripts/rolling_restart.py
# (Python 3; the WebSocket client of scripts/chat_scenario.py, on the pinned
# `websockets` in a venv under the cache directory: scripts/cluster-scenario.sh):
# ~40 clients in two rooms, 20 messages/s, each client reconnecting with
# since_seq after every close and the senders resending unacknowledged
# messages with the same client_msg_id, while `cluster.sh restart DIR A`,
# then B, then C run. It asserts that each node exits with status 0 within the
# drain window + 3 s, that the clients saw close code 1012 (and no other), that
# every client received seqs 1..N of its room exactly once and in order, and
# that every acknowledged message is in the history exactly once (see the
# docstring of rolling_restart.py for the full list). Stops the cluster by pid
# (`cluster.sh stop`) whatever happens; on a failure it prints the last lines
# of each log first. About 60 s after the build; bounded (cluster start 300 s,
# scenario RR_TIMEOUT_SECS, 150 s).
#
# Environment: GATEWAY_BIN (the binary with --no-build);
# CHAT__SERVER__DRAIN_WINDOW_SECS (default here 2) and
# CHAT__SERVER__SHUTDOWN_TIMEOUT_SECS (default here 5) for the nodes; RR_*
# for the scenario (rolling_restart.py: RR_RECEIVERS, RR_SENDERS, RR_ROOMS,
# RR_RATE, RR_WARMUP_SECS, RR_BETWEEN_SECS, RR_STOP_MARGIN_SECS,
# RR_TIMEOUT_SECS); ROLLING_KEEP_DIR=1 keeps the cluster's directory (logs).
set -euo pipefail
cd "$(dirname "$0")/.."

SCENARIO=rolling-restart
KEEP_VAR=ROLLING_KEEP_DIR
# shellcheck source=scripts/cluster-scenario.sh
source scripts/cluster-scenario.sh

export CHAT__SERVER__DRAIN_WINDOW_SECS=${CHAT__SERVER__DRAIN_WINDOW_SECS:-2}
export CHAT__SERVER__SHUTDOWN_TIMEOUT_SECS=${CHAT__SERVER__SHUTDOWN_TIMEOUT_SECS:-5}
start_cluster "drain window $CHAT__SERVER__DRAIN_WINDOW_SECS s"

log "running the scenario (scripts/rolling_restart.py)"
timeout --foreground $(( ${RR_TIMEOUT_SECS:-150} + 30 )) "$SCENARIO_PYTHON" scripts/rolling_restart.py "$CLUSTER_DIR"
STATUS_OK=1
