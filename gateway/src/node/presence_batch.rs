//! Presence changes of large rooms, coalesced.
//!
//! Protocol v1 (the gin-chat-room protocol, `shared/README.md`) tells every
//! member of a room about every arrival: a
//! `user_joined` per newcomer to each member, so N clients entering one room
//! cost N²/2 frames (10,000 → 50 million). In a room with more than
//! `presence.large_room` members on this node, the node instead collects
//! the changes (each user's latest state) and sends one `presence_batch`
//! every `presence.batch_ms`: a storm costs one frame per member per batch.
//! A room keeps batching until its pending batch went out, so a batch and a
//! later single event can never overtake each other.

use super::Node;
use crate::hub::Broadcast;
use bytestring::ByteString;
use shared::ids::{RoomId, UserId};
use shared::server_frame::{PresenceBatchData, ServerFrame, UserPublic};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The changes of one room since its last batch.
#[derive(Default)]
pub struct PendingBatch {
    joined: BTreeMap<UserId, UserPublic>,
    left: BTreeSet<UserId>,
}

/// A presence change, as the router hands it over.
pub enum Change {
    Joined(UserPublic),
    Left(UserId),
}

impl Node {
    /// Take `change` into the room's batch when the room is large here (or
    /// already batching). False: send it on its own, as protocol v1 does.
    pub(super) fn batch_presence(&self, room: RoomId, change: Change) -> bool {
        let mut batches = self.presence_batches.lock().expect("presence batches");
        if !batches.contains_key(&room)
            && self.hub.member_count(room) <= self.presence_settings.large_room
        {
            return false;
        }
        let batch = batches.entry(room).or_default();
        match change {
            Change::Joined(user) => {
                batch.left.remove(&user.id);
                batch.joined.insert(user.id, user);
            }
            Change::Left(id) => {
                batch.joined.remove(&id);
                batch.left.insert(id);
            }
        }
        true
    }

    /// Send the pending batches every `presence.batch_ms` until `stop`.
    pub async fn run_presence_batcher(self: Arc<Self>, stop: CancellationToken) {
        let every = Duration::from_millis(self.presence_settings.batch_ms);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.flush_presence_batches(),
                _ = stop.cancelled() => return,
            }
        }
    }

    fn flush_presence_batches(&self) {
        // Under the lock: the router waits rather than overtake a batch with
        // a single event of the same room (the enqueues do not block).
        let mut batches = self.presence_batches.lock().expect("presence batches");
        let max = self.presence_settings.snapshot_max_users;
        for (room, batch) in std::mem::take(&mut *batches) {
            let truncated = batch.joined.len() > max || batch.left.len() > max;
            let frame = ServerFrame::PresenceBatch {
                room_id: room,
                data: PresenceBatchData {
                    joined: batch.joined.into_values().take(max).collect(),
                    left: batch.left.into_iter().take(max).collect(),
                    truncated,
                },
            };
            self.hub.broadcast(Broadcast {
                room,
                frame: ByteString::from(frame.to_json()),
                seq: None,
                skip: None,
                kind: frame.kind(),
            });
        }
    }
}
