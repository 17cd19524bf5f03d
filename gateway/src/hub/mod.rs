//! The local hub: which of this node's connections are in which room.
//!
//! Sharded by room (64 shards, each its own `RwLock`), so joins in one room
//! never wait for a broadcast in another. Locks are std locks held only for
//! map work and non-blocking enqueues: never across an `.await`, never around
//! I/O. A broadcast hands the same refcounted bytes to every member. Rooms
//! that empty are removed, so the maps never only grow.

use crate::conn::outbound::Outbound;
use crate::conn::{ConnHandle, Push};
use bytestring::ByteString;
use shared::ids::{ConnId, RoomId};
use std::collections::HashMap;
use std::sync::RwLock;

const SHARDS: usize = 64;

type Members = HashMap<ConnId, ConnHandle>;

pub struct Hub {
    shards: Box<[RwLock<HashMap<RoomId, Members>>]>,
}

/// What one broadcast did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub queued: usize,
    /// Members whose queue was full; they are being closed as slow consumers.
    pub slow: usize,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
        }
    }
}

impl Hub {
    fn shard(&self, room: RoomId) -> &RwLock<HashMap<RoomId, Members>> {
        &self.shards[(room.0 as u64 % SHARDS as u64) as usize]
    }

    /// Add a connection to a room. Returns true when the room had no entry
    /// (the node must start receiving the room from the bus). An entry left
    /// empty by [`take`](Self::take) still counts as subscribed: its
    /// eviction cleanup has not unsubscribed yet.
    pub fn join(&self, room: RoomId, conn: &ConnHandle) -> bool {
        let mut shard = self.shard(room).write().expect("hub shard");
        let first = !shard.contains_key(&room);
        shard
            .entry(room)
            .or_default()
            .insert(conn.id(), conn.clone());
        if first {
            crate::metrics::metrics().rooms.inc();
        }
        first
    }

    /// Take the connections `which` selects out of `room` at once, and return
    /// them: no broadcast after this call reaches them. The room's entry
    /// stays, even empty, until [`drop_if_empty`](Self::drop_if_empty): the
    /// bus subscription it stands for is undone later, under the room's lock.
    pub fn take(&self, room: RoomId, which: impl Fn(&ConnHandle) -> bool) -> Vec<ConnHandle> {
        let mut shard = self.shard(room).write().expect("hub shard");
        let Some(members) = shard.get_mut(&room) else {
            return Vec::new();
        };
        let ids: Vec<ConnId> = members
            .iter()
            .filter(|(_, c)| which(c))
            .map(|(id, _)| *id)
            .collect();
        ids.iter().filter_map(|id| members.remove(id)).collect()
    }

    /// Remove the room's entry if it has no member left. Returns true when
    /// it did (the node may stop receiving the room).
    pub fn drop_if_empty(&self, room: RoomId) -> bool {
        let mut shard = self.shard(room).write().expect("hub shard");
        if shard.get(&room).is_some_and(|m| m.is_empty()) {
            shard.remove(&room);
            crate::metrics::metrics().rooms.dec();
            return true;
        }
        false
    }

    /// Whether `conn` is in `room` here.
    pub fn contains(&self, room: RoomId, conn: ConnId) -> bool {
        let shard = self.shard(room).read().expect("hub shard");
        shard.get(&room).is_some_and(|m| m.contains_key(&conn))
    }

    /// Remove a connection from a room. Returns true when the room has no
    /// local member left (the node may stop receiving it).
    pub fn leave(&self, room: RoomId, conn: ConnId) -> bool {
        let mut shard = self.shard(room).write().expect("hub shard");
        let Some(members) = shard.get_mut(&room) else {
            return false;
        };
        if members.remove(&conn).is_none() {
            return false;
        }
        if members.is_empty() {
            shard.remove(&room);
            crate::metrics::metrics().rooms.dec();
            return true;
        }
        false
    }

    /// Enqueue `frame` for every local member of `room` except `skip`.
    /// A chat message carries its `seq` so each connection's writer can keep
    /// the room's order and drop duplicates.
    pub fn broadcast(
        &self,
        room: RoomId,
        frame: &ByteString,
        seq: Option<i64>,
        skip: Option<ConnId>,
    ) -> Delivery {
        let shard = self.shard(room).read().expect("hub shard");
        let mut d = Delivery::default();
        let Some(members) = shard.get(&room) else {
            return d;
        };
        for (id, conn) in members {
            if Some(*id) == skip {
                continue;
            }
            let item = match seq {
                Some(seq) => Outbound::Message {
                    room,
                    seq,
                    frame: frame.clone(),
                },
                None => Outbound::Presence {
                    room,
                    frame: frame.clone(),
                },
            };
            match conn.push(item) {
                Push::Queued => d.queued += 1,
                Push::Slow => d.slow += 1,
                Push::Closed => {}
            }
        }
        d
    }

    /// How many local connections are in `room`.
    pub fn member_count(&self, room: RoomId) -> usize {
        let shard = self.shard(room).read().expect("hub shard");
        shard.get(&room).map_or(0, |m| m.len())
    }

    /// Every local connection in `room`.
    pub fn members(&self, room: RoomId) -> Vec<ConnHandle> {
        let shard = self.shard(room).read().expect("hub shard");
        shard
            .get(&room)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn has_members(&self, room: RoomId) -> bool {
        self.shard(room)
            .read()
            .expect("hub shard")
            .get(&room)
            .is_some_and(|m| !m.is_empty())
    }

    /// The rooms with at least one local member.
    pub fn rooms(&self) -> Vec<RoomId> {
        let mut rooms = Vec::new();
        for shard in self.shards.iter() {
            rooms.extend(shard.read().expect("hub shard").keys().copied());
        }
        rooms
    }

    /// Rooms with at least one local member.
    pub fn room_count(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().expect("hub shard").len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::ids::{ConnKey, NodeId, UserId};
    use shared::server_frame::UserPublic;

    fn conn(id: u64, user: i64, queue: usize) -> (ConnHandle, crate::conn::outbox::Inbox) {
        let u = UserPublic {
            id: UserId(user),
            username: format!("u{user}"),
            nickname: "n".into(),
        };
        ConnHandle::new(
            ConnKey {
                node: NodeId("n".into()),
                conn: ConnId(id),
            },
            u,
            queue,
        )
    }

    #[test]
    fn first_join_and_last_leave_are_reported_and_empty_rooms_vanish() {
        let hub = Hub::default();
        let (a, _ra) = conn(1, 1, 4);
        let (b, _rb) = conn(2, 2, 4);
        assert!(hub.join(RoomId(7), &a));
        assert!(!hub.join(RoomId(7), &b));
        assert_eq!(hub.room_count(), 1);
        assert!(!hub.leave(RoomId(7), a.id()));
        assert!(!hub.leave(RoomId(7), a.id()), "leaving twice is a no-op");
        assert!(hub.leave(RoomId(7), b.id()));
        assert_eq!(hub.room_count(), 0);
        assert!(!hub.has_members(RoomId(7)));
    }

    #[test]
    fn taken_connections_get_no_broadcast_and_the_entry_waits_for_its_cleanup() {
        let hub = Hub::default();
        let (a, mut ra) = conn(1, 1, 4);
        let (b, _rb) = conn(2, 2, 4);
        hub.join(RoomId(3), &a);
        hub.join(RoomId(3), &b);
        let taken = hub.take(RoomId(3), |c| c.user().id == UserId(1));
        assert_eq!(taken.iter().map(|c| c.id()).collect::<Vec<_>>(), [a.id()]);
        assert!(!hub.contains(RoomId(3), a.id()));
        hub.broadcast(RoomId(3), &"after".into(), None, None);
        assert!(ra.try_recv().is_err(), "taken out before the broadcast");
        assert_eq!(hub.take(RoomId(3), |_| true).len(), 1);
        assert!(!hub.has_members(RoomId(3)));
        assert!(
            !hub.join(RoomId(3), &a),
            "the emptied entry is still subscribed: re-joining must not subscribe again"
        );
        assert!(!hub.drop_if_empty(RoomId(3)), "not empty any more");
        hub.take(RoomId(3), |_| true);
        assert!(hub.drop_if_empty(RoomId(3)));
        assert_eq!(hub.room_count(), 0);
    }

    #[test]
    fn broadcast_reaches_members_of_that_room_only() {
        let hub = Hub::default();
        let (a, mut ra) = conn(1, 1, 4);
        let (b, mut rb) = conn(2, 2, 4);
        let (c, mut rc) = conn(3, 3, 4);
        hub.join(RoomId(1), &a);
        hub.join(RoomId(1), &b);
        hub.join(RoomId(65), &c); // same shard as room 1
        let d = hub.broadcast(RoomId(1), &"hello".into(), None, Some(b.id()));
        assert_eq!(d, Delivery { queued: 1, slow: 0 });
        assert!(
            matches!(ra.try_recv().unwrap(), Outbound::Presence { frame: f, .. } if f == "hello")
        );
        assert!(rb.try_recv().is_err());
        assert!(rc.try_recv().is_err());
    }

    #[test]
    fn a_full_member_is_reported_slow_and_others_still_get_it() {
        let hub = Hub::default();
        let (a, _ra) = conn(1, 1, 1);
        let (b, mut rb) = conn(2, 2, 8);
        hub.join(RoomId(1), &a);
        hub.join(RoomId(1), &b);
        hub.broadcast(RoomId(1), &"1".into(), None, None);
        let d = hub.broadcast(RoomId(1), &"2".into(), None, None);
        assert_eq!(d, Delivery { queued: 1, slow: 1 });
        assert!(a.is_closing());
        assert!(matches!(rb.try_recv().unwrap(), Outbound::Presence { frame: f, .. } if f == "1"));
        assert!(matches!(rb.try_recv().unwrap(), Outbound::Presence { frame: f, .. } if f == "2"));
    }
}
