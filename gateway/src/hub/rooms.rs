//! The room map: which of this node's connections are in which room,
//! grouped by the worker thread that holds them.
//!
//! Sharded by room (64 shards, each its own `RwLock`), so joins in one room
//! never wait for a broadcast in another. Locks are std locks held only for
//! map work and non-blocking enqueues: never across an `.await`, never around
//! I/O. Rooms that empty are removed, so the maps never only grow.

use super::Broadcast;
use crate::conn::outbound::Outbound;
use crate::conn::worker::WorkerId;
use crate::conn::{ConnHandle, Enqueued};
use shared::ids::{ConnId, RoomId};
use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

const SHARDS: usize = 64;

pub(super) struct Rooms {
    shards: Box<[RwLock<HashMap<RoomId, Room>>]>,
    /// Ticks at every join. A broadcast reads it when it is handed over,
    /// and a worker delivers it only to members that joined by then: a
    /// connection that entered after a broadcast left the node does not get
    /// it late (it reads it from the history, or it predates its join).
    /// Both happen under the room's shard lock, which orders them.
    clock: AtomicU64,
}

/// One room's local members, one group per worker that holds some (as
/// many groups as workers at most: a handful).
#[derive(Default)]
pub(super) struct Room {
    pub(super) groups: Vec<Group>,
}

pub(super) struct Group {
    pub(super) worker: WorkerId,
    pub(super) members: HashMap<ConnId, Member>,
}

pub(super) struct Member {
    conn: ConnHandle,
    /// The clock when it joined.
    since: u64,
}

/// What one delivery did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub queued: usize,
    /// Members whose queue was full; they are being closed as slow consumers.
    pub slow: usize,
}

impl Default for Rooms {
    fn default() -> Self {
        Rooms {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            clock: AtomicU64::new(0),
        }
    }
}

impl Rooms {
    pub(super) fn shard(&self, room: RoomId) -> &RwLock<HashMap<RoomId, Room>> {
        &self.shards[(room.0 as u64 % SHARDS as u64) as usize]
    }

    pub(super) fn shards(&self) -> impl Iterator<Item = &RwLock<HashMap<RoomId, Room>>> {
        self.shards.iter()
    }

    /// The clock for a broadcast handed over now (under the room's shard lock).
    pub(super) fn now(&self) -> u64 {
        self.clock.load(Ordering::SeqCst)
    }

    /// The clock for a join now (under the room's shard lock, for writing).
    pub(super) fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Deliver `b`, handed over at `stamp`, to the members `worker` holds
    /// now that had joined by then.
    pub(super) fn deliver(&self, worker: WorkerId, b: &Broadcast, stamp: u64) -> Delivery {
        let shard = self.shard(b.room).read().expect("hub shard");
        match shard.get(&b.room).and_then(|r| r.group(worker)) {
            Some(group) => group.deliver(b, stamp),
            None => Delivery::default(),
        }
    }
}

impl Room {
    pub(super) fn len(&self) -> usize {
        self.groups.iter().map(|g| g.members.len()).sum()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    pub(super) fn contains(&self, conn: ConnId) -> bool {
        self.groups.iter().any(|g| g.members.contains_key(&conn))
    }

    pub(super) fn members(&self) -> impl Iterator<Item = &ConnHandle> {
        self.groups
            .iter()
            .flat_map(|g| g.members.values().map(|m| &m.conn))
    }

    fn group(&self, worker: WorkerId) -> Option<&Group> {
        self.groups.iter().find(|g| g.worker == worker)
    }

    /// Add `conn`, joined at clock `since`.
    pub(super) fn insert(&mut self, conn: &ConnHandle, since: u64) {
        let worker = conn.worker();
        let at = match self.groups.iter().position(|g| g.worker == worker) {
            Some(at) => at,
            None => {
                self.groups.push(Group {
                    worker,
                    members: HashMap::new(),
                });
                self.groups.len() - 1
            }
        };
        let member = Member {
            conn: conn.clone(),
            since,
        };
        self.groups[at].members.insert(conn.id(), member);
    }

    /// Remove `conn`; a group left empty goes with it.
    pub(super) fn remove(&mut self, conn: ConnId) -> Option<ConnHandle> {
        let at = self
            .groups
            .iter()
            .position(|g| g.members.contains_key(&conn))?;
        let removed = self.groups[at].members.remove(&conn).map(|m| m.conn);
        if self.groups[at].members.is_empty() {
            self.groups.swap_remove(at);
        }
        removed
    }
}

impl Group {
    /// Enqueue `b` for every member of its audience that had joined by `stamp`.
    pub(super) fn deliver(&self, b: &Broadcast, stamp: u64) -> Delivery {
        let mut d = Delivery::default();
        for (id, Member { conn, since }) in &self.members {
            if *since > stamp || !b.to.includes(*id, conn) {
                continue;
            }
            let item = match b.seq {
                Some(seq) => Outbound::Message {
                    room: b.room,
                    seq,
                    frame: b.frame.clone(),
                },
                None => Outbound::Presence {
                    room: b.room,
                    frame: b.frame.clone(),
                },
            };
            match conn.push(item) {
                Enqueued::Queued => d.queued += 1,
                Enqueued::Slow => d.slow += 1,
                Enqueued::Closed => {}
            }
        }
        d
    }

    /// The worker fell too far behind to take `b`: its members cannot get
    /// it in order, so they go as slow consumers (they resume from their
    /// last seq on reconnecting).
    pub(super) fn overflow(&self) -> Delivery {
        for member in self.members.values() {
            member.conn.close_slow();
        }
        Delivery {
            queued: 0,
            slow: self.members.len(),
        }
    }
}
