//! Evictions: a kick, a room deletion, a REST leave or an account deletion
//! takes connections out of a room.
//!
//! In two steps, because the router must never wait. At once, with no
//! `.await` (on the router task, or in the request that removed the
//! membership): the connections leave the hub's room, and each gets an
//! `Untrack` and its `left_room` queued. Everything the router handles after
//! the event therefore misses them, and anything already queued behind the
//! `Untrack` is dropped by their writer: a message stored after the removal
//! can never reach them. They stop counting as in the room for their own
//! sends too. Then, in a task under the room's lock: their room
//! bookkeeping, presence and `user_left`, and the bus unsubscription when the
//! room emptied (the hub keeps the emptied entry until then, so a re-join in
//! between neither subscribes twice nor loses the subscription).

use super::Node;
use crate::conn::ConnHandle;
use crate::conn::outbound::Outbound;
use shared::bus_envelope::BusEvent;
use shared::ids::{RoomId, UserId};
use shared::server_frame::{LeaveReason, LeftRoomData, ServerFrame};
use std::sync::Arc;

impl Node {
    /// Evict this node's connections of `user` from `room`. Returns how many.
    pub fn evict_user(self: &Arc<Self>, room: RoomId, user: UserId, reason: LeaveReason) -> usize {
        self.entries.evicted(room, user);
        self.evict_where(room, reason, |c| c.user().id == user)
    }

    /// Evict every connection of this node from `room`. Returns how many.
    pub fn evict_room(self: &Arc<Self>, room: RoomId, reason: LeaveReason) -> usize {
        self.entries.closed(room);
        self.evict_where(room, reason, |_| true)
    }

    /// The synchronous step (see the module comment). Only connections still
    /// in the hub are evicted, so the same eviction arriving twice (done
    /// locally by the request, then again from the bus) tells them once.
    pub(super) fn evict_where(
        self: &Arc<Self>,
        room: RoomId,
        reason: LeaveReason,
        which: impl Fn(&ConnHandle) -> bool,
    ) -> usize {
        let conns = self.hub.take(room, which);
        if conns.is_empty() {
            return 0;
        }
        for conn in &conns {
            // Nor may it send to the room any more.
            conn.remove_room(room);
            conn.push(Outbound::Untrack { room });
            conn.send(&ServerFrame::LeftRoom {
                room_id: room,
                data: LeftRoomData { reason },
            });
        }
        let n = conns.len();
        let node = Arc::clone(self);
        tokio::spawn(async move {
            for conn in conns {
                node.finish_eviction(&conn, room).await;
                if reason == LeaveReason::AccountDeleted {
                    conn.close(shared::close_codes::ACCOUNT_DELETED);
                }
            }
        });
        n
    }

    /// The slow step: what `leave` does besides the hub, for a connection
    /// already taken out of it.
    async fn finish_eviction(&self, conn: &ConnHandle, room: RoomId) {
        let removed = {
            let _room = self.room_locks.lock(room).await;
            if self.hub.drop_if_empty(room) {
                self.entries.forget(room);
                match self.bus.unsubscribe(room).await {
                    Ok(()) => crate::metrics::metrics().bus_subscribed_channels.dec(),
                    Err(e) => tracing::warn!(room = %room, error = %e, "could not unsubscribe"),
                }
            }
            if self.hub.contains(room, conn.id()) {
                // It entered the room again meanwhile: that entry owns its presence now.
                return;
            }
            // Also undoes an `enter` that was between its hub join and this
            // bookkeeping when the eviction came.
            conn.remove_room(room);
            self.presence.remove(room, conn.key(), conn.user().id).await
        };
        match removed {
            Ok(true) => {
                let left = BusEvent::UserLeft {
                    user_id: conn.user().id,
                };
                if let Err(e) = self.publish(room, left).await {
                    tracing::warn!(room = %room, error = %e, "could not announce user_left");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(room = %room, error = %e, "could not remove presence"),
        }
    }

    /// After `conn` entered `room`: is its user still a member? A kick (or a
    /// room deletion) that committed between admission and the hub join
    /// found nothing to evict; from the hub join on, every later one finds
    /// the connection. So a membership gone now is evicted here.
    ///
    /// A member this node knows (see `entry_cache`) needs no read: any
    /// eviction of it heard so far dropped it from the cache, and any heard
    /// from now on finds the connection in the hub.
    pub(super) async fn still_member(self: &Arc<Self>, conn: &ConnHandle, room: RoomId) -> Recheck {
        let user = conn.user().id;
        if let Some(newest) = self.entries.member(room, user) {
            return Recheck::Member {
                newest: Some(newest),
            };
        }
        let ticket = self.entries.ticket(room);
        let reason = match self.store.room_entry(room, user, crate::clock::now()).await {
            Ok(Some(entry)) if entry.role.is_some() => {
                if let Some(ticket) = ticket
                    && !entry.banned
                {
                    self.entries.learn(ticket, user, entry.last_seq);
                }
                return Recheck::Member {
                    newest: Some(entry.last_seq),
                };
            }
            Ok(Some(entry)) if entry.banned => LeaveReason::Banned,
            Ok(Some(_)) => LeaveReason::Kicked,
            Ok(None) => LeaveReason::RoomDeleted,
            Err(e) => {
                tracing::warn!(room = %room, error = %e, "could not re-check the membership after entering");
                return Recheck::Member { newest: None };
            }
        };
        let id = conn.id();
        self.evict_where(room, reason, |c| c.id() == id);
        Recheck::Evicted
    }
}

/// What [`Node::still_member`] found.
pub(super) enum Recheck {
    /// Still a member. `newest`: the room's newest seq, read in the same
    /// statement after subscribing (every later message comes live); `None`
    /// when the database could not be asked, which keeps the connection
    /// (admission just succeeded) and leaves the fill to read the seq.
    Member { newest: Option<i64> },
    /// Gone meanwhile: evicted (it got its `left_room`).
    Evicted,
}

#[cfg(test)]
#[path = "evict_tests.rs"]
mod tests;
