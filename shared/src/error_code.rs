//! The `code` of an `error` frame (and of a REST error body).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a client frame was rejected. Stable strings: clients switch on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The text frame is not JSON.
    InvalidJson,
    /// JSON, but not a frame: no `type`, a missing field, a field of the wrong type.
    InvalidFrame,
    /// A `type` this protocol version does not know.
    UnknownType,
    /// A binary frame; protocol v1 is JSON in text frames.
    BinaryNotSupported,
    /// `message` without `room_id` while the connection is in several rooms (or none).
    RoomRequired,
    /// The connection has not joined the room it addressed.
    NotInRoom,
    /// No such room.
    RoomNotFound,
    /// The user may not enter that room.
    Forbidden,
    /// The user is banned from that room (until the message says).
    Banned,
    /// The content is empty once trimmed (or only invisible characters).
    ContentEmpty,
    /// The content is longer than the configured limit.
    ContentTooLong,
    /// The content holds control characters other than newline and tab.
    InvalidContent,
    /// `client_msg_id` is empty or longer than 64 characters.
    InvalidClientMsgId,
    /// `client_msg_id` names another of the sender's messages (another room,
    /// or other content) sent within the deduplication window.
    ClientMsgIdReused,
    /// The connection is already in the maximum number of rooms.
    TooManyRooms,
    /// Too many frames too fast.
    RateLimited,
    /// A backend (database, Redis) is unavailable; the frame was not carried out
    /// (a message was not broadcast, though it may already be stored).
    Unavailable,
    /// An unexpected failure on the node.
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidFrame => "invalid_frame",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::BinaryNotSupported => "binary_not_supported",
            ErrorCode::RoomRequired => "room_required",
            ErrorCode::NotInRoom => "not_in_room",
            ErrorCode::RoomNotFound => "room_not_found",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Banned => "banned",
            ErrorCode::ContentEmpty => "content_empty",
            ErrorCode::ContentTooLong => "content_too_long",
            ErrorCode::InvalidContent => "invalid_content",
            ErrorCode::InvalidClientMsgId => "invalid_client_msg_id",
            ErrorCode::ClientMsgIdReused => "client_msg_id_reused",
            ErrorCode::TooManyRooms => "too_many_rooms",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_str_matches_serde() {
        for code in [
            ErrorCode::InvalidJson,
            ErrorCode::InvalidFrame,
            ErrorCode::UnknownType,
            ErrorCode::BinaryNotSupported,
            ErrorCode::RoomRequired,
            ErrorCode::NotInRoom,
            ErrorCode::RoomNotFound,
            ErrorCode::Forbidden,
            ErrorCode::Banned,
            ErrorCode::ContentEmpty,
            ErrorCode::ContentTooLong,
            ErrorCode::InvalidContent,
            ErrorCode::InvalidClientMsgId,
            ErrorCode::ClientMsgIdReused,
            ErrorCode::TooManyRooms,
            ErrorCode::RateLimited,
            ErrorCode::Unavailable,
            ErrorCode::Internal,
        ] {
            assert_eq!(
                serde_json::to_string(&code).unwrap(),
                format!("\"{}\"", code.as_str())
            );
        }
    }
}
