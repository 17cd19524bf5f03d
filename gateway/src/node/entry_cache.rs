//! What a node remembers of its subscribed rooms, so that a known user's
//! upgrade (or `join_room`) into a room the node already serves reads no
//! SQL for the room: the room's newest seq, and which users were found to be
//! members without a ban in force.
//!
//! Sound because a room is cached only while the node is subscribed to it,
//! so it hears every event that can end a membership: a kick, a ban, a
//! leave, an account deletion (`Evict`) and the room's deletion
//! (`RoomClosed`) all go through [`Node::evict_user`] and
//! [`Node::evict_room`], on the node that made them and, through the bus,
//! on every other. Then:
//!
//! - a cached room is opened and forgotten under the room's lock, together
//!   with the subscription;
//! - an eviction drops the user (a room deletion, everyone) and bumps the
//!   room's generation; an answer read from SQL is kept only if the
//!   generation did not move while it was being read, so a read that raced
//!   an eviction cannot bring the member back;
//! - anything that may have lost events (a re-subscription after a Redis
//!   outage, a router that fell behind) forgets every room;
//! - an entry is trusted for [`TRUST`] at most: an eviction whose publish
//!   failed (the caller is told to retry) is not heard until the retry, and
//!   must not keep a removed member admitted for longer than that.
//!
//! The newest seq is the largest this node has seen, from SQL or live: a
//! message stored and not yet published is newer and arrives live, so a
//! connection that starts after it misses nothing.
//!
//! [`Node::evict_user`]: super::Node::evict_user
//! [`Node::evict_room`]: super::Node::evict_room

use shared::ids::{RoomId, UserId};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a membership read from SQL is trusted without being read again.
pub const TRUST: Duration = Duration::from_secs(30);
/// Members remembered per room, so that a busy room's churn cannot grow
/// the cache without end: past it, further users are simply read from SQL.
const MAX_MEMBERS: usize = 100_000;

#[derive(Default)]
pub struct EntryCache {
    rooms: Mutex<HashMap<RoomId, RoomEntries>>,
    /// Source of generations: every opened room and every eviction gets a
    /// new one, never reused, so a ticket from a forgotten room never
    /// matches a room opened again.
    next_generation: std::sync::atomic::AtomicU64,
}

struct RoomEntries {
    generation: u64,
    /// The largest seq seen; `None` until a read or a message tells.
    newest: Option<i64>,
    /// Members without a ban in force, and when that was read.
    members: HashMap<UserId, Instant>,
}

/// Taken before reading a room entry from SQL: [`EntryCache::learn`] keeps
/// the answer only if nothing was evicted from the room meanwhile.
#[derive(Clone, Copy, Debug)]
pub struct Ticket {
    room: RoomId,
    generation: u64,
}

impl EntryCache {
    fn generation(&self) -> u64 {
        self.next_generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, HashMap<RoomId, RoomEntries>> {
        self.rooms.lock().expect("entry cache lock")
    }

    /// The room was just subscribed (under its lock).
    pub fn open(&self, room: RoomId) {
        let generation = self.generation();
        self.rooms().insert(
            room,
            RoomEntries {
                generation,
                newest: None,
                members: HashMap::new(),
            },
        );
    }

    /// The room was unsubscribed (under its lock): events stop coming.
    pub fn forget(&self, room: RoomId) {
        self.rooms().remove(&room);
    }

    /// Events may have been lost: trust nothing cached.
    pub fn forget_all(&self) {
        self.rooms().clear();
    }

    /// The room's newest seq if `user` is a member trusted still.
    pub fn member(&self, room: RoomId, user: UserId) -> Option<i64> {
        let rooms = self.rooms();
        let entries = rooms.get(&room)?;
        let read = entries.members.get(&user)?;
        (read.elapsed() < TRUST).then_some(entries.newest?)
    }

    /// Before reading the room entry from SQL; `None` if the room is not cached.
    pub fn ticket(&self, room: RoomId) -> Option<Ticket> {
        let generation = self.rooms().get(&room)?.generation;
        Some(Ticket { room, generation })
    }

    /// SQL said `user` is a member without a ban, and the room's newest seq
    /// was `newest`: kept if nothing was evicted since the ticket.
    pub fn learn(&self, ticket: Ticket, user: UserId, newest: i64) {
        let mut rooms = self.rooms();
        let Some(entries) = rooms.get_mut(&ticket.room) else {
            return;
        };
        entries.newest = Some(entries.newest.map_or(newest, |n| n.max(newest)));
        if entries.generation != ticket.generation {
            return;
        }
        if entries.members.len() < MAX_MEMBERS || entries.members.contains_key(&user) {
            entries.members.insert(user, Instant::now());
        }
    }

    /// A message of the room went by (the router, for every message).
    pub fn saw(&self, room: RoomId, seq: i64) {
        if let Some(entries) = self.rooms().get_mut(&room) {
            entries.newest = Some(entries.newest.map_or(seq, |n| n.max(seq)));
        }
    }

    /// `user` left the room, was kicked or banned, or deleted their account.
    pub fn evicted(&self, room: RoomId, user: UserId) {
        let generation = self.generation();
        if let Some(entries) = self.rooms().get_mut(&room) {
            entries.members.remove(&user);
            entries.generation = generation;
        }
    }

    /// The room was deleted: nobody is a member.
    pub fn closed(&self, room: RoomId) {
        let generation = self.generation();
        if let Some(entries) = self.rooms().get_mut(&room) {
            entries.members.clear();
            entries.generation = generation;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOM: RoomId = RoomId(7);
    const ALICE: UserId = UserId(1);
    const BOB: UserId = UserId(2);

    #[test]
    fn nothing_is_known_of_a_room_that_is_not_subscribed() {
        let cache = EntryCache::default();
        assert!(cache.ticket(ROOM).is_none());
        cache.saw(ROOM, 5);
        assert_eq!(cache.member(ROOM, ALICE), None);
    }

    #[test]
    fn a_member_read_from_sql_is_known_with_the_newest_seq_seen() {
        let cache = EntryCache::default();
        cache.open(ROOM);
        let ticket = cache.ticket(ROOM).unwrap();
        cache.learn(ticket, ALICE, 10);
        assert_eq!(cache.member(ROOM, ALICE), Some(10));
        cache.saw(ROOM, 12);
        cache.saw(ROOM, 11);
        assert_eq!(cache.member(ROOM, ALICE), Some(12), "the largest seq seen");
        assert_eq!(cache.member(ROOM, BOB), None, "never read: SQL decides");
    }

    #[test]
    fn a_read_that_raced_an_eviction_is_not_kept() {
        let cache = EntryCache::default();
        cache.open(ROOM);
        // Alice's read starts; meanwhile Bob is kicked.
        let ticket = cache.ticket(ROOM).unwrap();
        cache.evicted(ROOM, BOB);
        cache.learn(ticket, ALICE, 3);
        assert_eq!(cache.member(ROOM, ALICE), None);
        // The next read, after the eviction, is kept.
        let ticket = cache.ticket(ROOM).unwrap();
        cache.learn(ticket, ALICE, 3);
        assert_eq!(cache.member(ROOM, ALICE), Some(3));
    }

    #[test]
    fn evictions_and_deletion_drop_members() {
        let cache = EntryCache::default();
        cache.open(ROOM);
        for user in [ALICE, BOB] {
            let ticket = cache.ticket(ROOM).unwrap();
            cache.learn(ticket, user, 1);
        }
        cache.evicted(ROOM, ALICE);
        assert_eq!(cache.member(ROOM, ALICE), None);
        assert_eq!(cache.member(ROOM, BOB), Some(1));
        cache.closed(ROOM);
        assert_eq!(cache.member(ROOM, BOB), None);
    }

    #[test]
    fn a_forgotten_room_takes_its_members_and_old_tickets_with_it() {
        let cache = EntryCache::default();
        cache.open(ROOM);
        let old = cache.ticket(ROOM).unwrap();
        cache.learn(old, ALICE, 1);
        cache.forget(ROOM);
        assert_eq!(cache.member(ROOM, ALICE), None);
        cache.open(ROOM);
        cache.learn(old, BOB, 1);
        assert_eq!(cache.member(ROOM, BOB), None, "a ticket of the room before");
        cache.forget_all();
        assert!(cache.ticket(ROOM).is_none());
    }

    #[test]
    fn an_entry_is_trusted_for_a_while_only() {
        let cache = EntryCache::default();
        cache.open(ROOM);
        let ticket = cache.ticket(ROOM).unwrap();
        cache.learn(ticket, ALICE, 1);
        cache
            .rooms()
            .get_mut(&ROOM)
            .unwrap()
            .members
            .insert(ALICE, Instant::now() - TRUST);
        assert_eq!(cache.member(ROOM, ALICE), None);
    }
}
