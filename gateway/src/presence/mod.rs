//! Who is in which room, across every node.
//!
//! Entries are per connection ([`ConnKey`]) so a user with several tabs, on
//! one node or several, is present until their *last* connection leaves;
//! `add`/`remove` report those first/last transitions, which is exactly when
//! `user_joined` / `user_left` are announced.
//!
//! Shared backends give entries a TTL: every node refreshes its own entries
//! and prunes expired ones, so a node killed without cleaning up vanishes
//! from presence within the TTL. The in-process backend needs neither.

pub mod memory;
pub mod redis;

use async_trait::async_trait;
use shared::ids::{ConnKey, RoomId, UserId};
use shared::server_frame::UserPublic;

#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    #[error("presence unavailable: {0}")]
    Unavailable(String),
}

/// Part of a room's presence list.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OnlineList {
    pub users: Vec<UserPublic>,
    /// Users present in all (`users` may hold fewer).
    pub total: u64,
}

/// The size of a room's presence.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PresenceCounts {
    pub connections: u64,
    pub users: u64,
}

#[async_trait]
pub trait Presence: Send + Sync + 'static {
    /// Record `conn` of `user` in `room`. True when it is the user's first
    /// connection in the room.
    async fn add(
        &self,
        room: RoomId,
        conn: &ConnKey,
        user: &UserPublic,
    ) -> Result<bool, PresenceError>;
    /// Forget `conn` in `room`. True when it was the user's last connection there.
    async fn remove(
        &self,
        room: RoomId,
        conn: &ConnKey,
        user: UserId,
    ) -> Result<bool, PresenceError>;
    /// The users present in `room`, each once, ordered by id: at most `max`
    /// of them, with the number present in all.
    async fn users(&self, room: RoomId, max: usize) -> Result<OnlineList, PresenceError>;
    /// How many connections and distinct users `room` has, on every node.
    async fn counts(&self, room: RoomId) -> Result<PresenceCounts, PresenceError>;
    /// Re-assert this node's entries in `room` (heartbeat; after a reconnect).
    /// Returns the users who were absent and are present again.
    async fn refresh(
        &self,
        room: RoomId,
        entries: &[(ConnKey, UserPublic)],
    ) -> Result<Vec<UserPublic>, PresenceError>;
    /// Drop expired entries (of dead nodes). Returns the users with no entry left.
    async fn prune(&self, room: RoomId) -> Result<Vec<UserId>, PresenceError>;
}
