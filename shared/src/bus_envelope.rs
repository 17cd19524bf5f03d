//! What crosses the bus between gateway nodes: a versioned MessagePack
//! envelope per room event. The receiving node turns the event into a
//! [`ServerFrame`](crate::server_frame::ServerFrame) and encodes it once for
//! all of its local members of the room.

use crate::ids::{ConnKey, NodeId, RoomId, UserId};
use crate::server_frame::{
    LeaveReason, MessageData, MessageDeletedData, MessageEditedData, UserPublic,
};
use serde::{Deserialize, Serialize};

/// The envelope version this build writes and reads. A node refuses (and
/// counts) envelopes of another version instead of misreading them.
pub const BUS_VERSION: u8 = 1;

/// One room event on the bus.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BusEnvelope {
    pub v: u8,
    /// The node that published it.
    pub origin: NodeId,
    pub room: RoomId,
    pub event: BusEvent,
    /// When the publishing node sent it (Unix ms, its clock): the receiver
    /// measures the bus's lag from it. Absent from older nodes' envelopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at_ms: Option<i64>,
}

/// The room events nodes tell each other.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum BusEvent {
    /// A stored chat message.
    Message(MessageData),
    /// A user's first connection (cluster-wide) entered the room; `skip` is
    /// that connection, which gets `online_users` instead.
    UserJoined {
        user: UserPublic,
        skip: Option<ConnKey>,
    },
    /// A user's last connection (cluster-wide) left the room.
    UserLeft { user_id: UserId },
    /// Every connection of `user_id` must leave the room (kick, removal).
    Evict {
        user_id: UserId,
        reason: LeaveReason,
    },
    /// The room is gone: every connection leaves it.
    RoomClosed,
    /// On the node channel (room 0, which every node subscribes to): the
    /// user's nickname changed or the account was deleted; a node that
    /// remembers the user reads it again. (A node of an older build cannot
    /// decode it and ignores it; its cache trusts a read 30 s at most.)
    UserChanged { user_id: UserId },
    /// The user is typing in the room: every local member but the user's
    /// own connections gets `typing`. (A node of an older build cannot
    /// decode it and counts it as a bad envelope.)
    Typing { user: UserPublic },
    /// The user's read marker in the room moved to `seq`: the user's
    /// connections in the room but `skip` (the one that moved it) get `read`.
    Read {
        user_id: UserId,
        seq: i64,
        skip: Option<ConnKey>,
    },
    /// A stored message was edited: `data` is the edit, with its own `seq`;
    /// `message` is the message as it now is (what Redis's recent-messages
    /// cache holds for it).
    MessageEdited {
        data: MessageEditedData,
        message: MessageData,
    },
    /// A stored message was deleted: `data` is the deletion, with its own
    /// `seq`; `message` is the tombstone.
    MessageDeleted {
        data: MessageDeletedData,
        message: MessageData,
    },
}

impl BusEvent {
    /// The event's place in the room's sequence, for the events that have one.
    pub fn stream_seq(&self) -> Option<i64> {
        match self {
            BusEvent::Message(m) => Some(m.seq),
            BusEvent::MessageEdited { data, .. } => Some(data.seq),
            BusEvent::MessageDeleted { data, .. } => Some(data.seq),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BusDecodeError {
    #[error("bus envelope is not valid MessagePack: {0}")]
    Malformed(#[from] rmp_serde::decode::Error),
    #[error("bus envelope version {0} is not supported (this node speaks {BUS_VERSION})")]
    Version(u8),
}

impl BusEnvelope {
    pub fn new(origin: NodeId, room: RoomId, event: BusEvent) -> Self {
        let sent_at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_millis() as i64);
        BusEnvelope {
            v: BUS_VERSION,
            origin,
            room,
            event,
            sent_at_ms,
        }
    }

    /// MessagePack with field names, so that a newer node may add fields.
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).expect("bus envelopes always serialise")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, BusDecodeError> {
        #[derive(Deserialize)]
        struct Version {
            v: u8,
        }
        let Version { v } = rmp_serde::from_slice(bytes)?;
        if v != BUS_VERSION {
            return Err(BusDecodeError::Version(v));
        }
        Ok(rmp_serde::from_slice(bytes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ConnId, MessageId};

    fn user() -> UserPublic {
        UserPublic {
            id: UserId(9),
            username: "nine".into(),
            nickname: "Nine".into(),
        }
    }

    #[test]
    fn every_event_round_trips() {
        let node = NodeId("n1".into());
        let events = [
            BusEvent::Message(MessageData {
                id: MessageId(1),
                room_id: RoomId(2),
                user_id: UserId(9),
                seq: 4,
                content: "hi".into(),
                created_at: "2026-01-01T00:00:00.000Z".into(),
                user: user(),
                client_msg_id: Some("x".into()),
                edited_at: None,
                deleted: false,
            }),
            BusEvent::UserJoined {
                user: user(),
                skip: Some(ConnKey {
                    node: node.clone(),
                    conn: ConnId(3),
                }),
            },
            BusEvent::UserLeft { user_id: UserId(9) },
            BusEvent::Evict {
                user_id: UserId(9),
                reason: LeaveReason::Kicked,
            },
            BusEvent::RoomClosed,
            BusEvent::UserChanged { user_id: UserId(9) },
            BusEvent::Typing { user: user() },
            BusEvent::Read {
                user_id: UserId(9),
                seq: 17,
                skip: None,
            },
        ];
        for event in events {
            let env = BusEnvelope::new(node.clone(), RoomId(2), event);
            assert_eq!(BusEnvelope::decode(&env.encode()).unwrap(), env);
        }
    }

    #[test]
    fn an_envelope_from_a_node_without_the_publish_time_still_decodes() {
        #[derive(Serialize)]
        struct Older {
            v: u8,
            origin: NodeId,
            room: RoomId,
            event: BusEvent,
        }
        let older = Older {
            v: BUS_VERSION,
            origin: NodeId("old".into()),
            room: RoomId(3),
            event: BusEvent::RoomClosed,
        };
        let env = BusEnvelope::decode(&rmp_serde::to_vec_named(&older).unwrap()).unwrap();
        assert_eq!((env.room, env.sent_at_ms), (RoomId(3), None));
        let new = BusEnvelope::new(NodeId("new".into()), RoomId(3), BusEvent::RoomClosed);
        assert!(new.sent_at_ms.is_some_and(|ms| ms > 1_700_000_000_000));
    }

    #[test]
    fn other_versions_and_garbage_are_refused() {
        let mut env = BusEnvelope::new(NodeId("n".into()), RoomId(1), BusEvent::RoomClosed);
        env.v = 2;
        assert!(matches!(
            BusEnvelope::decode(&env.encode()),
            Err(BusDecodeError::Version(2))
        ));
        assert!(matches!(
            BusEnvelope::decode(b"\xc1garbage"),
            Err(BusDecodeError::Malformed(_))
        ));
        assert!(BusEnvelope::decode(&[]).is_err());
    }
}
