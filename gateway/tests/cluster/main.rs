//! Cluster-mode scenario tests: every test runs its gateway nodes as separate
//! `gateway` processes (configured only through `CHAT__*` variables) on a
//! Redis of its own (one server, or a 3-master Redis Cluster) and a fresh
//! PostgreSQL database, and talks to them over real HTTP and WebSockets.
//! Nodes and backends can be killed and restarted mid-test.
//!
//! Needs PostgreSQL (`TEST_DATABASE_URL`) and `redis-server`: run
//! `bash scripts/test.sh`, or only this binary once services are up:
//! `cargo nextest run -p gateway --test cluster`.
//! `TEST_LOG=gateway=debug,info` raises the nodes' log level; a failing test
//! prints the tail of every node's log.

mod certs;
#[path = "../common/eventually.rs"]
mod eventually;
#[path = "../common/free_port.rs"]
mod free_port;
mod helpers;
#[path = "../common/presence_frames.rs"]
mod presence_frames;
#[path = "../common/raw_ws.rs"]
mod raw_ws;
mod sentinel;
#[path = "../common/ws_refusal.rs"]
mod ws_refusal;

mod chat_features;
mod evictions;
mod fanout;
mod guarantees;
mod late_subscribe;
mod managed_backends;
mod outages;
mod presence;
mod publish_cost;
mod redis_cluster;
mod redis_proxy;
mod subscriptions;
