//! The users this node has read for upgrades, so that a known user's
//! upgrade reads nothing from SQL (with `entry_cache`, when the room is
//! served too).
//!
//! What can change a user the handshake looks at: the nickname
//! (`PATCH /api/users/me`) and the account's deletion. Either one is
//! published on the node channel ([`NODE_CHANNEL`](super::NODE_CHANNEL),
//! which every node subscribes to at start) as `UserChanged`, and every
//! node drops the user. As with `entry_cache`: a read that raced a change
//! is not kept (a generation count), a re-subscription forgets everything
//! (events may have been lost), and a read is trusted for [`TRUST`] at most
//! (a change whose publish failed reaches the other nodes no later).
//! Deleted accounts are never cached: their refusal always comes from SQL.

use shared::ids::UserId;
use shared::server_frame::UserPublic;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a user read from SQL is trusted without being read again.
pub const TRUST: Duration = Duration::from_secs(30);
/// Users remembered at most; past it, expired ones are dropped, and if none
/// are, a new one is simply not remembered.
const MAX_USERS: usize = 200_000;

#[derive(Default)]
pub struct UserCache {
    users: Mutex<HashMap<UserId, (UserPublic, Instant)>>,
    /// Bumped by every change: a read taken before one is not kept.
    generation: AtomicU64,
}

/// Taken before reading a user from SQL.
#[derive(Clone, Copy, Debug)]
pub struct Ticket(u64);

impl UserCache {
    fn users(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, (UserPublic, Instant)>> {
        self.users.lock().expect("user cache lock")
    }

    /// The user, if read less than [`TRUST`] ago and unchanged since.
    pub fn get(&self, id: UserId) -> Option<UserPublic> {
        let users = self.users();
        let (user, read) = users.get(&id)?;
        (read.elapsed() < TRUST).then(|| user.clone())
    }

    pub fn ticket(&self) -> Ticket {
        Ticket(self.generation.load(Ordering::Acquire))
    }

    /// SQL said this (a user not deleted): kept if nothing changed since the ticket.
    pub fn learn(&self, ticket: Ticket, user: UserPublic) {
        let mut users = self.users();
        // Under the lock, as `changed` bumps it: no change slips in between.
        if self.generation.load(Ordering::Acquire) != ticket.0 {
            return;
        }
        if users.len() >= MAX_USERS && !users.contains_key(&user.id) {
            users.retain(|_, (_, read)| read.elapsed() < TRUST);
            if users.len() >= MAX_USERS {
                return;
            }
        }
        users.insert(user.id, (user, Instant::now()));
    }

    /// The user's nickname changed, or the account was deleted.
    pub fn changed(&self, id: UserId) {
        let mut users = self.users();
        self.generation.fetch_add(1, Ordering::AcqRel);
        users.remove(&id);
    }

    /// Events may have been lost: trust nothing cached.
    pub fn forget_all(&self) {
        let mut users = self.users();
        self.generation.fetch_add(1, Ordering::AcqRel);
        users.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: i64, nickname: &str) -> UserPublic {
        UserPublic {
            id: UserId(id),
            username: format!("u{id}"),
            nickname: nickname.into(),
        }
    }

    #[test]
    fn a_user_read_is_kept_until_it_changes() {
        let cache = UserCache::default();
        assert_eq!(cache.get(UserId(1)), None);
        cache.learn(cache.ticket(), user(1, "Ann"));
        assert_eq!(cache.get(UserId(1)), Some(user(1, "Ann")));
        cache.changed(UserId(1));
        assert_eq!(cache.get(UserId(1)), None);
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_kept() {
        let cache = UserCache::default();
        let ticket = cache.ticket();
        cache.changed(UserId(1)); // e.g. the account deleted while it was read
        cache.learn(ticket, user(1, "Ann"));
        assert_eq!(cache.get(UserId(1)), None);
    }

    #[test]
    fn forgetting_all_drops_everyone_and_older_reads() {
        let cache = UserCache::default();
        cache.learn(cache.ticket(), user(1, "Ann"));
        let ticket = cache.ticket();
        cache.forget_all();
        cache.learn(ticket, user(2, "Bob"));
        assert_eq!((cache.get(UserId(1)), cache.get(UserId(2))), (None, None));
    }

    #[test]
    fn a_read_is_trusted_for_a_while_only() {
        let cache = UserCache::default();
        cache.learn(cache.ticket(), user(1, "Ann"));
        cache.users().get_mut(&UserId(1)).unwrap().1 = Instant::now() - TRUST;
        assert_eq!(cache.get(UserId(1)), None);
    }
}
