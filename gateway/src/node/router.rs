//! The router task: envelopes from the bus become client frames, encoded once
//! per envelope and handed to every local member of the room.

use super::Node;
use super::presence_batch::Change;
use crate::conn::text_frame::TextFrame;
use crate::hub::{Audience, Broadcast};
use shared::bus_envelope::{BusEnvelope, BusEvent};
use shared::server_frame::{
    LeaveReason, ReadData, ServerFrame, TypingData, UserJoinedData, UserLeftData,
};
use std::sync::Arc;
use tokio::sync::mpsc;

impl Node {
    /// Run until the bus side of `rx` is dropped.
    pub async fn run_router(self: Arc<Self>, mut rx: mpsc::Receiver<BusEnvelope>) {
        while let Some(envelope) = rx.recv().await {
            self.deliver(envelope);
        }
    }

    pub(super) fn deliver(self: &Arc<Self>, envelope: BusEnvelope) {
        let m = crate::metrics::metrics();
        m.bus_received.inc();
        if let Some(sent) = envelope.sent_at_ms {
            let lag_ms = (crate::clock::now().timestamp_millis() - sent).max(0);
            m.bus_lag.observe(lag_ms as f64 / 1000.0);
        }
        let room = envelope.room;
        let (frame, to) = match envelope.event {
            BusEvent::Message(data) => (
                ServerFrame::Message {
                    room_id: room,
                    data,
                },
                Audience::All,
            ),
            BusEvent::MessageEdited { data, .. } => (
                ServerFrame::MessageEdited {
                    room_id: room,
                    data,
                },
                Audience::All,
            ),
            BusEvent::MessageDeleted { data, .. } => (
                ServerFrame::MessageDeleted {
                    room_id: room,
                    data,
                },
                Audience::All,
            ),
            BusEvent::UserJoined { user, .. }
                if self.batch_presence(room, Change::Joined(user.clone())) =>
            {
                return;
            }
            BusEvent::UserLeft { user_id } if self.batch_presence(room, Change::Left(user_id)) => {
                return;
            }
            BusEvent::UserJoined { user, skip } => {
                let to = match skip {
                    Some(k) if k.node == self.id => Audience::AllBut(k.conn),
                    _ => Audience::All,
                };
                let frame = ServerFrame::UserJoined {
                    room_id: room,
                    data: UserJoinedData { user },
                };
                (frame, to)
            }
            BusEvent::UserLeft { user_id } => (
                ServerFrame::UserLeft {
                    room_id: room,
                    data: UserLeftData { user_id },
                },
                Audience::All,
            ),
            BusEvent::Typing { user } => {
                // Another node relayed it: it passes this node's gate too
                // (and closes it), so a user typing through two nodes still
                // reaches each member at most once per interval.
                if envelope.origin != self.id && !self.typing.allow(user.id, room) {
                    return;
                }
                let to = Audience::AllButUser(user.id);
                let frame = ServerFrame::Typing {
                    room_id: room,
                    data: TypingData { user },
                };
                (frame, to)
            }
            BusEvent::Read { user_id, seq, skip } => {
                let except = skip.filter(|k| k.node == self.id).map(|k| k.conn);
                let to = Audience::User {
                    user: user_id,
                    except,
                };
                let frame = ServerFrame::Read {
                    room_id: room,
                    data: ReadData { seq },
                };
                (frame, to)
            }
            // Synchronously, before the next envelope: a message published
            // after the eviction must find the connections gone (see `evict`).
            BusEvent::Evict { user_id, reason } => {
                self.evict_user(room, user_id, reason);
                return;
            }
            BusEvent::RoomClosed => {
                self.evict_room(room, LeaveReason::RoomDeleted);
                return;
            }
            BusEvent::UserChanged { user_id } => {
                self.users.changed(user_id);
                return;
            }
        };
        let seq = frame.stream_seq();
        if let Some(seq) = seq {
            self.entries.saw(room, seq);
        }
        if let ServerFrame::Message { data, .. } = &frame
            && let Ok(created) = chrono::DateTime::parse_from_rfc3339(&data.created_at)
        {
            let age = chrono::Utc::now().signed_duration_since(created);
            m.broadcast_latency
                .observe(age.num_microseconds().unwrap_or(0).max(0) as f64 / 1e6);
        }
        self.hub.broadcast(Broadcast {
            room,
            frame: TextFrame::new(frame.to_json()),
            seq,
            to,
            kind: frame.kind(),
        });
    }
}
