//! Read markers, the live half: a moved marker is stored, then published on
//! the room's channel so that the user's other connections in the room, on
//! every node, get `read` (a badge read on the phone clears on the laptop).
//! The stored marker is the truth: `GET /api/rooms` shows it with the unread
//! count, so a device not in the room, or one that missed the event while
//! the bus was down, reads it there.

use super::Node;
use crate::store::{ReadMark, StoreError};
use shared::bus_envelope::BusEvent;
use shared::error_code::ErrorCode;
use shared::ids::{ConnKey, RoomId, UserId};

/// Why a read marker was not stored.
#[derive(Debug, thiserror::Error)]
pub enum MarkReadError {
    #[error("not a member of room {0}")]
    NotMember(RoomId),
    #[error("could not store the read marker, try again")]
    Unavailable(#[source] StoreError),
}

impl MarkReadError {
    pub fn code(&self) -> ErrorCode {
        match self {
            MarkReadError::NotMember(_) => ErrorCode::NotInRoom,
            MarkReadError::Unavailable(_) => ErrorCode::Unavailable,
        }
    }
}

impl Node {
    /// Move `user`'s marker in `room` to `seq` (see `Store::mark_read`) and,
    /// if it moved, tell the user's connections in the room but `from`.
    pub async fn mark_read(
        &self,
        user: UserId,
        room: RoomId,
        seq: i64,
        from: Option<ConnKey>,
    ) -> Result<ReadMark, MarkReadError> {
        let mark = match self.store.mark_read(room, user, seq).await {
            Ok(mark) => mark,
            Err(StoreError::NotFound) => return Err(MarkReadError::NotMember(room)),
            Err(e) => return Err(MarkReadError::Unavailable(e)),
        };
        if mark.moved {
            let event = BusEvent::Read {
                user_id: user,
                seq: mark.seq,
                skip: from,
            };
            if let Err(e) = self.publish(room, event).await {
                // Stored: the other devices read it from the room list.
                tracing::warn!(room = %room, error = %e, "could not announce a read marker");
            }
        }
        Ok(mark)
    }
}
