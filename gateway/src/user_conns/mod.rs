//! The per-user connection cap (`limits.max_connections_per_user`): which
//! connections each user holds, node-local on the embedded default and
//! cluster-wide in Redis in cluster mode, so that a user cannot open the cap
//! on every node.
//!
//! A connection claims a place before its upgrade and releases it when it
//! ends. In Redis a claim carries an expiry that the node's presence keeper
//! pushes forward (every TTL/3), so the claims of a node that died go away
//! on their own after `presence.ttl_secs`, like its presence entries.

pub mod memory;
pub mod redis;

use async_trait::async_trait;
use shared::ids::{ConnKey, UserId};

#[derive(Debug, thiserror::Error)]
#[error("the connection registry is unavailable: {0}")]
pub struct Unavailable(pub String);

#[async_trait]
pub trait UserConns: Send + Sync + 'static {
    /// Take a place for `conn` of `user` if the user holds fewer than `max`.
    async fn claim(&self, user: UserId, conn: &ConnKey, max: usize) -> Result<bool, Unavailable>;
    /// Give the place back (never fails: a lost release expires).
    async fn release(&self, user: UserId, conn: &ConnKey);
    /// Keep this node's claims alive (cluster mode; a no-op in memory).
    async fn refresh(&self) -> Result<(), Unavailable>;
}
