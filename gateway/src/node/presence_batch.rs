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
use crate::conn::text_frame::TextFrame;
use crate::hub::{Audience, Broadcast};
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
                frame: TextFrame::new(frame.to_json()),
                seq: None,
                to: Audience::All,
                kind: frame.kind(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::memory::MemoryBus;
    use crate::config::PresenceSettings;
    use crate::conn::outbound::Outbound;
    use crate::presence::memory::MemoryPresence;
    use crate::user_conns::memory::MemoryUserConns;
    use shared::ids::{ConnKey, NodeId};

    fn user(id: i64) -> UserPublic {
        UserPublic {
            id: UserId(id),
            username: format!("u{id}"),
            nickname: format!("U{id}"),
        }
    }

    /// In paused time: a large room's presence changes wait for the batch
    /// window, then leave as one `presence_batch` holding each user's latest
    /// state (joined then left: left); the next window starts empty.
    #[tokio::test]
    async fn a_large_rooms_changes_leave_together_once_per_window() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
        let store = crate::store::Store::connect(&url, 1).await.unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        std::mem::forget(rx);
        let settings = PresenceSettings {
            large_room: 1,
            batch_ms: 500,
            ..PresenceSettings::default()
        };
        let node = Arc::new(Node::new(
            NodeId("n".into()),
            Arc::new(MemoryBus::new(tx)),
            Arc::new(MemoryPresence::default()),
            Arc::new(MemoryUserConns::default()),
            store,
            1000,
            settings,
        ));
        let room = RoomId(1);
        let (a, mut inbox) = crate::conn::ConnHandle::new(
            ConnKey {
                node: node.id().clone(),
                conn: node.next_conn_id(),
            },
            user(1),
            64,
        );
        let (b, _b_inbox) = crate::conn::ConnHandle::new(
            ConnKey {
                node: node.id().clone(),
                conn: node.next_conn_id(),
            },
            user(2),
            64,
        );
        node.hub.join(room, &a);
        node.hub.join(room, &b);

        tokio::time::pause();
        let stop = CancellationToken::new();
        tokio::spawn(Arc::clone(&node).run_presence_batcher(stop.clone()));
        // The interval's first tick is at once, with nothing to send; the
        // next one 500 ms later.
        tokio::time::sleep(Duration::from_millis(1)).await;
        let start = tokio::time::Instant::now();
        assert!(node.batch_presence(room, Change::Joined(user(7))));
        assert!(node.batch_presence(room, Change::Left(UserId(8))));
        assert!(node.batch_presence(room, Change::Joined(user(9))));
        assert!(node.batch_presence(room, Change::Left(UserId(9))));
        let presence =
            |inbox: &mut crate::conn::send_queue::QueueReader| -> Vec<serde_json::Value> {
                std::iter::from_fn(|| inbox.try_recv().ok())
                    .map(|item| match item {
                        Outbound::Presence { frame, .. } => serde_json::from_str(&frame).unwrap(),
                        other => panic!("{other:?}"),
                    })
                    .collect()
            };
        tokio::time::sleep(Duration::from_millis(480)).await;
        assert!(presence(&mut inbox).is_empty(), "nothing before the window");
        tokio::time::sleep(Duration::from_millis(30)).await;
        let batches = presence(&mut inbox);
        assert_eq!(batches.len(), 1, "{batches:?} after {:?}", start.elapsed());
        let data = &batches[0]["data"];
        assert_eq!(batches[0]["type"], "presence_batch");
        assert_eq!(data["joined"], serde_json::json!([user(7)]));
        let mut left: Vec<i64> = data["left"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        left.sort_unstable();
        assert_eq!(left, [8, 9]);
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(
            presence(&mut inbox).is_empty(),
            "an empty window sends nothing"
        );
        stop.cancel();
    }
}
