//! What browsers receive: one JSON object per text frame, with protocol v1's
//! shapes (`{type, room_id, data}`) plus `error`, `pong` and `left_room`.

use crate::error_code::ErrorCode;
use crate::ids::{MessageId, RoomId, UserId};
use serde::{Deserialize, Serialize};

/// A frame from the gateway to a client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// A stored chat message, sent to every connection in the room, the sender included.
    Message { room_id: RoomId, data: MessageData },
    /// A user's first connection entered the room (sent to the others).
    UserJoined {
        room_id: RoomId,
        data: UserJoinedData,
    },
    /// A user's last connection left the room.
    UserLeft { room_id: RoomId, data: UserLeftData },
    /// Who is in the room, each user once; sent right after entering it.
    OnlineUsers {
        room_id: RoomId,
        data: OnlineUsersData,
    },
    /// Presence changes of a large room, coalesced: sent instead of
    /// `user_joined` / `user_left` when the room has many members here.
    PresenceBatch {
        room_id: RoomId,
        data: PresenceBatchData,
    },
    /// This connection is no longer in the room (it asked, or was removed).
    LeftRoom { room_id: RoomId, data: LeftRoomData },
    /// A client frame was rejected; nothing was stored or sent for it.
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room_id: Option<RoomId>,
        data: ErrorData,
    },
    /// The connection asked to resume (or was cut off) further back than the
    /// recovery window: messages from `since_seq + 1` to `resumed_at_seq - 1`
    /// were not delivered; reload them from the history.
    RecoveryPartial {
        room_id: RoomId,
        data: RecoveryPartialData,
    },
    /// Answer to a client `ping`.
    Pong,
    /// A member of the room is typing (sent to the room's other members,
    /// none of the typing user's own connections; not stored).
    Typing { room_id: RoomId, data: TypingData },
    /// The user's read marker in the room moved (sent to the user's other
    /// connections in the room: a badge read on one device clears on the
    /// others).
    Read { room_id: RoomId, data: ReadData },
    /// A message of the room was edited. The edit has its own place in the
    /// room's sequence (`data.seq`), so a client resuming with `since_seq`
    /// gets it exactly once and in order.
    MessageEdited {
        room_id: RoomId,
        data: MessageEditedData,
    },
    /// A message of the room was deleted (it stays in the history as a
    /// tombstone). Like an edit, it has its own place in the sequence.
    MessageDeleted {
        room_id: RoomId,
        data: MessageDeletedData,
    },
}

/// A user as other users see them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserPublic {
    pub id: UserId,
    pub username: String,
    pub nickname: String,
}

/// A stored message, as protocol v1's `message.ToJSON()` plus `room_id`, `seq`
/// and the sender's `client_msg_id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageData {
    pub id: MessageId,
    pub room_id: RoomId,
    pub user_id: UserId,
    /// Position in the room: 1, 2, 3, ... in the order the room's members see them.
    pub seq: i64,
    pub content: String,
    /// RFC 3339, UTC, millisecond precision, e.g. `2026-11-26T18:00:00.123Z`.
    pub created_at: String,
    pub user: UserPublic,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
    /// When the content was last edited (RFC 3339); absent if never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<String>,
    /// A deleted message's tombstone: `content` is empty. Absent if not deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

/// An edit: `id` names the message, `seq` is the edit's own place in the
/// room's sequence (what `since_seq` counts; not the message's seq).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageEditedData {
    pub id: MessageId,
    pub seq: i64,
    /// The new content (empty when the message has been deleted since).
    pub content: String,
    /// RFC 3339, UTC, millisecond precision.
    pub edited_at: String,
}

/// A deletion: `id` names the message, `seq` is the deletion's own place in
/// the room's sequence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageDeletedData {
    pub id: MessageId,
    pub seq: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserJoinedData {
    pub user: UserPublic,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypingData {
    pub user: UserPublic,
}

/// A read marker: the newest `seq` of the room the user has read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadData {
    pub seq: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserLeftData {
    pub user_id: UserId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnlineUsersData {
    pub users: Vec<UserPublic>,
    /// Set when `users` is cut short (a large room): how many users are
    /// present in all; the whole list is `GET /api/rooms/{id}/online`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_count: Option<u64>,
}

/// Who came and who went in a large room since the last batch, each user in
/// at most one of the lists (their latest state). `truncated`: more changed
/// than the lists hold; reload the list to be exact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceBatchData {
    pub joined: Vec<UserPublic>,
    pub left: Vec<UserId>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// Why a connection is no longer in a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// The client sent `leave_room`.
    Left,
    /// A room owner or admin removed the user.
    Kicked,
    /// The room was deleted.
    RoomDeleted,
    /// The user deleted their account (the connection then closes with 4001).
    AccountDeleted,
    /// A room owner or admin banned the user: no join or connect until the
    /// ban ends.
    Banned,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftRoomData {
    pub reason: LeaveReason,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryPartialData {
    pub since_seq: i64,
    pub resumed_at_seq: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorData {
    pub code: ErrorCode,
    pub message: String,
    /// The rejected frame's `client_msg_id`.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

impl ServerFrame {
    /// An `error` frame.
    pub fn error(
        room_id: Option<RoomId>,
        code: ErrorCode,
        message: impl Into<String>,
        reference: Option<String>,
    ) -> Self {
        ServerFrame::Error {
            room_id,
            data: ErrorData {
                code,
                message: message.into(),
                reference,
            },
        }
    }

    /// The frame as JSON text. Serialising these types cannot fail (string
    /// keys, no maps with non-string keys, no floats).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("server frames always serialise")
    }

    /// The frame's `type` string, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ServerFrame::Message { .. } => "message",
            ServerFrame::UserJoined { .. } => "user_joined",
            ServerFrame::UserLeft { .. } => "user_left",
            ServerFrame::OnlineUsers { .. } => "online_users",
            ServerFrame::PresenceBatch { .. } => "presence_batch",
            ServerFrame::LeftRoom { .. } => "left_room",
            ServerFrame::RecoveryPartial { .. } => "recovery_partial",
            ServerFrame::Error { .. } => "error",
            ServerFrame::Pong => "pong",
            ServerFrame::Typing { .. } => "typing",
            ServerFrame::Read { .. } => "read",
            ServerFrame::MessageEdited { .. } => "message_edited",
            ServerFrame::MessageDeleted { .. } => "message_deleted",
        }
    }

    /// The frame's place in its room's sequence, for the frames that have
    /// one (`message`, `message_edited`, `message_deleted`).
    pub fn stream_seq(&self) -> Option<i64> {
        match self {
            ServerFrame::Message { data, .. } => Some(data.seq),
            ServerFrame::MessageEdited { data, .. } => Some(data.seq),
            ServerFrame::MessageDeleted { data, .. } => Some(data.seq),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(id: i64) -> UserPublic {
        UserPublic {
            id: UserId(id),
            username: format!("u{id}"),
            nickname: format!("N{id}"),
        }
    }

    fn message() -> MessageData {
        MessageData {
            id: MessageId(1),
            room_id: RoomId(1),
            user_id: UserId(1),
            seq: 1,
            content: "Hello, World!".into(),
            created_at: "2023-01-01T00:00:00.000Z".into(),
            user: user(1),
            client_msg_id: None,
            edited_at: None,
            deleted: false,
        }
    }

    #[test]
    fn message_has_the_v1_shape() {
        let v: serde_json::Value = serde_json::from_str(
            &ServerFrame::Message {
                room_id: RoomId(1),
                data: message(),
            }
            .to_json(),
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"type":"message","room_id":1,"data":{
                "id":1,"room_id":1,"user_id":1,"seq":1,"content":"Hello, World!",
                "created_at":"2023-01-01T00:00:00.000Z",
                "user":{"id":1,"username":"u1","nickname":"N1"}}})
        );
    }

    #[test]
    fn presence_frames_have_the_seed_shape() {
        let joined = ServerFrame::UserJoined {
            room_id: RoomId(1),
            data: UserJoinedData { user: user(2) },
        };
        assert_eq!(
            serde_json::to_value(&joined).unwrap(),
            json!({"type":"user_joined","room_id":1,"data":{"user":{"id":2,"username":"u2","nickname":"N2"}}})
        );
        let left = ServerFrame::UserLeft {
            room_id: RoomId(1),
            data: UserLeftData { user_id: UserId(2) },
        };
        assert_eq!(
            serde_json::to_value(&left).unwrap(),
            json!({"type":"user_left","room_id":1,"data":{"user_id":2}})
        );
        let online = ServerFrame::OnlineUsers {
            room_id: RoomId(1),
            data: OnlineUsersData {
                users: vec![user(1), user(2)],
                online_count: None,
            },
        };
        assert_eq!(
            serde_json::to_value(&online).unwrap()["data"]["users"][1]["username"],
            json!("u2")
        );
    }

    #[test]
    fn error_frame_shape() {
        let e = ServerFrame::error(
            Some(RoomId(3)),
            ErrorCode::NotInRoom,
            "not in room 3",
            Some("c1".into()),
        );
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"type":"error","room_id":3,"data":{"code":"not_in_room","message":"not in room 3","ref":"c1"}})
        );
        let bare = ServerFrame::error(None, ErrorCode::InvalidJson, "x", None);
        assert_eq!(
            serde_json::to_value(&bare).unwrap(),
            json!({"type":"error","data":{"code":"invalid_json","message":"x"}})
        );
    }

    #[test]
    fn every_frame_round_trips() {
        let mut with_ref = message();
        with_ref.client_msg_id = Some("abc".into());
        let frames = [
            ServerFrame::Message {
                room_id: RoomId(1),
                data: with_ref,
            },
            ServerFrame::UserJoined {
                room_id: RoomId(1),
                data: UserJoinedData { user: user(5) },
            },
            ServerFrame::UserLeft {
                room_id: RoomId(1),
                data: UserLeftData { user_id: UserId(5) },
            },
            ServerFrame::OnlineUsers {
                room_id: RoomId(1),
                data: OnlineUsersData {
                    users: vec![],
                    online_count: Some(12_000),
                },
            },
            ServerFrame::PresenceBatch {
                room_id: RoomId(1),
                data: PresenceBatchData {
                    joined: vec![],
                    left: vec![UserId(4)],
                    truncated: true,
                },
            },
            ServerFrame::LeftRoom {
                room_id: RoomId(2),
                data: LeftRoomData {
                    reason: LeaveReason::Kicked,
                },
            },
            ServerFrame::error(None, ErrorCode::RateLimited, "slow down", None),
            ServerFrame::error(
                Some(RoomId(3)),
                ErrorCode::TooManyRooms,
                "a connection may be in at most 1 rooms",
                Some("c-1".into()),
            ),
            ServerFrame::RecoveryPartial {
                room_id: RoomId(1),
                data: RecoveryPartialData {
                    since_seq: 4,
                    resumed_at_seq: 900,
                },
            },
            ServerFrame::Pong,
            ServerFrame::Typing {
                room_id: RoomId(1),
                data: TypingData { user: user(6) },
            },
            ServerFrame::Read {
                room_id: RoomId(1),
                data: ReadData { seq: 12 },
            },
            ServerFrame::MessageEdited {
                room_id: RoomId(1),
                data: MessageEditedData {
                    id: MessageId(8),
                    seq: 13,
                    content: "fixed".into(),
                    edited_at: "2026-12-05T10:00:00.000Z".into(),
                },
            },
            ServerFrame::MessageDeleted {
                room_id: RoomId(1),
                data: MessageDeletedData {
                    id: MessageId(8),
                    seq: 14,
                },
            },
        ];
        let mut covered = [false; VARIANTS];
        for f in frames {
            covered[variant(&f)] = true;
            let text = f.to_json();
            let back: ServerFrame = serde_json::from_str(&text).unwrap();
            assert_eq!(back, f, "{text}");
            assert!(text.contains(&format!("\"type\":\"{}\"", f.kind())));
        }
        assert_eq!(
            covered, [true; VARIANTS],
            "a frame variant is not round-tripped"
        );
    }

    const VARIANTS: usize = 13;

    /// No wildcard arm: a new frame variant does not compile until it is
    /// listed here, and the test above then fails until it round-trips it.
    fn variant(f: &ServerFrame) -> usize {
        match f {
            ServerFrame::Message { .. } => 0,
            ServerFrame::UserJoined { .. } => 1,
            ServerFrame::UserLeft { .. } => 2,
            ServerFrame::OnlineUsers { .. } => 3,
            ServerFrame::PresenceBatch { .. } => 4,
            ServerFrame::LeftRoom { .. } => 5,
            ServerFrame::Error { .. } => 6,
            ServerFrame::RecoveryPartial { .. } => 7,
            ServerFrame::Pong => 8,
            ServerFrame::Typing { .. } => 9,
            ServerFrame::Read { .. } => 10,
            ServerFrame::MessageEdited { .. } => 11,
            ServerFrame::MessageDeleted { .. } => 12,
        }
    }
}
