//! The node: glue between the local [`Hub`], the [`Bus`], [`Presence`] and
//! the store. Entering and leaving rooms happens here and nowhere else.
//!
//! Entering a room: hub join (+ bus subscribe if it is the room's first local
//! member, under the room's lock) → presence add → `online_users` to the
//! newcomer → `user_joined` to the room if it is the user's first connection
//! there. Leaving is the mirror image. Room events (messages, joins, leaves)
//! are always *published* and reach local members through the bus like
//! everyone else's, so every member of a room sees the same order per node.

mod entry_cache;
mod evict;
mod message_edits;
mod messages;
mod presence_batch;
mod presence_keeper;
mod read_marks;
mod republish;
mod room_locks;
mod router;
mod typing;
mod user_cache;

pub use message_edits::ChangeError;
pub use messages::{DEDUP_WINDOW, Posted, SendError};
pub use read_marks::MarkReadError;

use crate::admission::AdmitError;
use crate::auth::ResolveError;
use crate::auth::token::{Subject, Verified};
use crate::bus::{Bus, BusError};
use crate::config::PresenceSettings;
use crate::conn::ConnHandle;
use crate::conn::outbound::Outbound;
use crate::hub::Hub;
use crate::presence::{Presence, PresenceError};
use crate::store::Store;
use crate::user_conns::UserConns;
use crate::user_status::UserStatus;
use presence_batch::PendingBatch;
use room_locks::RoomLocks;
use shared::bus_envelope::{BusEnvelope, BusEvent};
use shared::ids::{ConnId, NodeId, RoomId, UserId};
use shared::server_frame::{LeaveReason, LeftRoomData, OnlineUsersData, ServerFrame, UserPublic};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// The channel every node subscribes to for events about no room (room
/// ids start at 1).
pub const NODE_CHANNEL: RoomId = RoomId(0);

pub struct Node {
    id: NodeId,
    pub hub: Hub,
    bus: Arc<dyn Bus>,
    presence: Arc<dyn Presence>,
    store: Store,
    room_locks: RoomLocks,
    pub user_status: Arc<UserStatus>,
    /// Who holds how many connections, for the per-user cap.
    pub user_conns: Arc<dyn UserConns>,
    next_conn: AtomicU64,
    max_content_chars: usize,
    /// Large rooms: snapshot size and coalesced presence events.
    presence_settings: PresenceSettings,
    /// Presence changes of large rooms waiting for the next batch.
    presence_batches: Mutex<HashMap<RoomId, PendingBatch>>,
    /// Stored messages being published again in the background (one task each).
    republishing: republish::InFlight,
    /// Subscribed rooms' newest seq and known members (see `entry_cache`).
    entries: entry_cache::EntryCache,
    /// Users read for upgrades (see `user_cache`).
    users: user_cache::UserCache,
    /// Who typed where lately (see `typing`).
    typing: typing::TypingGate,
    /// Cancelled when the node stops: every session closes with 1012.
    pub shutdown: CancellationToken,
}

#[derive(Debug, thiserror::Error)]
pub enum EnterError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Presence(#[from] PresenceError),
}

impl Node {
    pub fn new(
        id: NodeId,
        bus: Arc<dyn Bus>,
        presence: Arc<dyn Presence>,
        user_conns: Arc<dyn UserConns>,
        store: Store,
        max_content_chars: usize,
        presence_settings: PresenceSettings,
    ) -> Self {
        Node {
            id,
            hub: Hub::default(),
            bus,
            presence,
            store,
            room_locks: RoomLocks::default(),
            user_status: Arc::new(UserStatus::default()),
            user_conns,
            next_conn: AtomicU64::new(1),
            max_content_chars,
            presence_settings,
            presence_batches: Mutex::new(HashMap::new()),
            republishing: Default::default(),
            entries: Default::default(),
            users: Default::default(),
            typing: Default::default(),
            shutdown: CancellationToken::new(),
        }
    }

    pub fn id(&self) -> &NodeId {
        &self.id
    }

    pub fn next_conn_id(&self) -> ConnId {
        ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed))
    }

    pub async fn bus_ready(&self) -> bool {
        self.bus.ready().await
    }

    /// Put `conn` in `room` (the caller has checked the user may enter):
    /// it gets `online_users`, then every message after `after` (the last
    /// seq the client saw, or the room's newest when it joins afresh), then
    /// the live stream, with no gap and no duplicate at the switch-over (see
    /// `conn::delivery`). Entering a room it is already in resumes from
    /// `after` the same way.
    pub async fn enter(
        self: &Arc<Self>,
        conn: &ConnHandle,
        room: RoomId,
        after: i64,
    ) -> Result<(), EnterError> {
        // Tracked before the first live message can be queued.
        conn.push(Outbound::Track { room, since: after });
        if conn.in_room(room) {
            let online = self.send_online_users(conn, room).await;
            conn.push(Outbound::Fill { room, newest: None });
            return Ok(online?);
        }
        let added = {
            // One lock for hub, bus and presence (see `leave`).
            let _room = self.room_locks.lock(room).await;
            if self.hub.join(room, conn) {
                if let Err(e) = self.bus.subscribe(room).await {
                    self.hub.leave(room, conn.id());
                    conn.push(Outbound::Untrack { room });
                    return Err(e.into());
                }
                crate::metrics::metrics().bus_subscribed_channels.inc();
                self.entries.open(room);
            }
            conn.add_room(room);
            self.presence.add(room, conn.key(), conn.user()).await
        };
        let first = match added {
            Ok(first) => first,
            Err(e) => {
                self.leave(conn, room, None).await;
                return Err(e.into());
            }
        };
        // Evicted meanwhile (it got its `left_room`), or a removal that
        // committed before the hub join: not in the room, announce nothing.
        if !self.hub.contains(room, conn.id()) {
            return Ok(());
        }
        let evict::Recheck::Member { newest } = self.still_member(conn, room).await else {
            return Ok(());
        };
        let online = self.send_online_users(conn, room).await;
        // Subscribed: everything after `after` is now either in the history
        // (up to `newest`, read after subscribing) or on its way live; the
        // writer merges both.
        conn.push(Outbound::Fill { room, newest });
        online?;
        if first {
            let event = BusEvent::UserJoined {
                user: conn.user().clone(),
                skip: Some(conn.key().clone()),
            };
            if let Err(e) = self.publish(room, event).await {
                tracing::warn!(room = %room, error = %e, "could not announce user_joined");
            }
        }
        Ok(())
    }

    /// Subscribe the node channel (every node, at start): where user
    /// changes are told (see `user_cache`).
    /// Not counted in `chat_gateway_bus_subscribed_channels`, which counts
    /// room channels (0 on an idle node).
    pub async fn subscribe_node_channel(&self) -> Result<(), BusError> {
        self.bus.subscribe(NODE_CHANNEL).await
    }

    /// The user a verified token names (see `auth::resolve_user`); a local
    /// user this node read recently is answered without SQL (see
    /// `user_cache`). Deleted accounts are refused, always from SQL.
    pub async fn resolve_user(&self, token: &Verified) -> Result<UserPublic, ResolveError> {
        let local = match token.subject {
            Subject::Local(id) => Some(id),
            Subject::External { .. } => None,
        };
        if let Some(user) = local.and_then(|id| self.users.get(id)) {
            return Ok(user);
        }
        let ticket = self.users.ticket();
        let user = crate::auth::resolve_user(&self.store, token).await?;
        let public = UserPublic {
            id: user.id,
            username: user.username,
            nickname: user.nickname,
        };
        if local.is_some() {
            self.users.learn(ticket, public.clone());
        }
        Ok(public)
    }

    /// The user's nickname changed or the account was deleted: this node
    /// forgets the user at once, the others when they get the node
    /// channel's `UserChanged` (or after `user_cache::TRUST` at the latest).
    pub async fn user_changed(&self, user: UserId) -> Result<(), BusError> {
        self.users.changed(user);
        self.publish(NODE_CHANNEL, BusEvent::UserChanged { user_id: user })
            .await
    }

    /// May `user` enter `room` (see `admission`)? The room's newest seq if
    /// so. A member this node already knows in a room it is subscribed to
    /// is answered without SQL (see `entry_cache`).
    pub async fn admit(&self, user: UserId, room: RoomId) -> Result<i64, AdmitError> {
        if let Some(newest) = self.entries.member(room, user) {
            return Ok(newest);
        }
        let ticket = self.entries.ticket(room);
        let newest = crate::admission::admit(&self.store, user, room).await?;
        if let Some(ticket) = ticket {
            self.entries.learn(ticket, user, newest);
        }
        Ok(newest)
    }

    /// Send `conn` the users present in `room`.
    pub async fn send_online_users(
        &self,
        conn: &ConnHandle,
        room: RoomId,
    ) -> Result<(), PresenceError> {
        let list = self
            .presence
            .users(room, self.presence_settings.snapshot_max_users)
            .await?;
        let online_count = (list.total > list.users.len() as u64).then_some(list.total);
        let frame = ServerFrame::OnlineUsers {
            room_id: room,
            data: OnlineUsersData {
                users: list.users,
                online_count,
            },
        };
        crate::metrics::metrics()
            .frames_sent
            .with_label_values(&[frame.kind()])
            .inc();
        conn.push(Outbound::Snapshot {
            room,
            frame: frame.to_json().into(),
        });
        Ok(())
    }

    /// Take `conn` out of `room`; with a `reason`, tell the connection so.
    /// Returns false if it was not in the room. Never fails: a backend error
    /// is logged, and presence entries then expire by their TTL.
    pub async fn leave(
        &self,
        conn: &ConnHandle,
        room: RoomId,
        reason: Option<LeaveReason>,
    ) -> bool {
        let removed = {
            // One lock for hub, bus and presence: the presence keeper must not
            // re-add an entry from a member list taken before this leave.
            let _room = self.room_locks.lock(room).await;
            if !conn.remove_room(room) {
                return false;
            }
            conn.push(Outbound::Untrack { room });
            if self.hub.leave(room, conn.id()) {
                self.entries.forget(room);
                match self.bus.unsubscribe(room).await {
                    Ok(()) => crate::metrics::metrics().bus_subscribed_channels.dec(),
                    Err(e) => tracing::warn!(room = %room, error = %e, "could not unsubscribe"),
                }
            }
            self.presence.remove(room, conn.key(), conn.user().id).await
        };
        if let Some(reason) = reason {
            conn.send(&ServerFrame::LeftRoom {
                room_id: room,
                data: LeftRoomData { reason },
            });
        }
        match removed {
            Ok(true) => {
                if let Err(e) = self
                    .publish(
                        room,
                        BusEvent::UserLeft {
                            user_id: conn.user().id,
                        },
                    )
                    .await
                {
                    tracing::warn!(room = %room, error = %e, "could not announce user_left");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(room = %room, error = %e, "could not remove presence"),
        }
        true
    }

    /// Leave every room: the one cleanup path of a closing connection.
    pub async fn leave_all(&self, conn: &ConnHandle) {
        for room in conn.rooms() {
            self.leave(conn, room, None).await;
        }
    }

    /// The users present in `room` (every node's connections): at most
    /// `max`, and how many in all.
    pub async fn online_users(
        &self,
        room: RoomId,
        max: usize,
    ) -> Result<crate::presence::OnlineList, PresenceError> {
        self.presence.users(room, max).await
    }

    /// Ask every local connection to catch up on its rooms from the history
    /// (after the bus reconnected: what was published meanwhile never came).
    pub fn refill_all(&self) {
        // Events may have been missed too: evictions and user changes among them.
        self.entries.forget_all();
        self.users.forget_all();
        for room in self.hub.rooms() {
            for conn in self.hub.members(room) {
                conn.push(Outbound::Fill { room, newest: None });
            }
        }
    }

    /// Publish a room event to every node with members in the room, this one included.
    pub async fn publish(&self, room: RoomId, event: BusEvent) -> Result<(), BusError> {
        let result = self
            .bus
            .publish(BusEnvelope::new(self.id.clone(), room, event))
            .await;
        if result.is_err() {
            crate::metrics::metrics().bus_publish_errors.inc();
        }
        result
    }
}
