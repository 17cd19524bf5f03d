//! Multi-process harness for cluster mode.
//!
//! Every test gets its own temporary directory, its own Redis (one
//! `redis-server`, or three in Redis Cluster mode), a fresh PostgreSQL
//! database (on the server of `TEST_DATABASE_URL`, or on a PostgreSQL cluster
//! of its own when the test stops the database), and N gateway nodes, each a
//! separate `gateway` process configured only through `CHAT__*` variables, so
//! a test can `kill -9` a node or stop a backend under it.
//!
//! Every child process is held by a [`Proc`] guard that kills it on drop, so
//! nothing leaks when a test panics (and nextest's SIGTERM to the test's
//! process group reaches them too). When a test fails, [`Cluster`] prints
//! the tail of every node's log (stderr) on the way out.
//!
//! Services come from `bash scripts/test.sh` (it exports `TEST_DATABASE_URL`
//! and installs `redis-server`); without them the tests fail and say so.
//!
//! The harness is split by what each part manages: [`processes`] (child
//! processes, free ports, short commands), [`redis`], [`postgres`], [`node`]
//! (one gateway process), [`cluster`] (the [`Cluster`] that owns them all),
//! [`users`] (tokens) and [`ws_client`] (the WebSocket client). Tests import
//! everything from here, and so do the submodules from one another.

#![allow(dead_code)]

mod cluster;
mod node;
mod postgres;
mod processes;
mod redis;
mod users;
mod ws_client;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub use crate::certs::TestCerts;
pub use crate::sentinel::SentinelSet;
pub use cluster::{Cluster, Opts, RedisMode};
pub use node::GatewayNode;
// What `GatewayNode::ready_checks` returns; no test names the type yet.
#[allow(unused_imports)]
pub use node::ReadyChecks;
pub use postgres::{PgServer, TestDb};
pub use processes::{Proc, free_port, run_cmd, run_cmd_within, tail};
pub use redis::{RedisCluster, RedisServer, redis_cluster_url, require_redis};
pub use users::{User, mint};
pub use ws_client::{FrameReader, WsClient, send_on};

/// Shared by every node of a test and by the tokens the test mints.
pub const SECRET: &str = "cluster-test-secret-0123456789abcdef";
/// How long a test waits for a frame it expects.
pub const WAIT: Duration = Duration::from_secs(10);

pub const HOW_TO_RUN: &str = "run the suite with `bash scripts/test.sh` (it installs and starts \
     PostgreSQL and Redis and exports TEST_DATABASE_URL), or start them the same way by hand \
     (source scripts/services.sh; ensure_service_binaries; start_postgres) and export TEST_DATABASE_URL";

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Unique within this test process (nextest runs one test per process; the
/// pid makes names unique across processes).
fn unique() -> u32 {
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

pub use crate::eventually::eventually;
