//! May this user enter this room? The same rule for `room_id` at connect and
//! for `join_room`: the room must exist; a banned user is refused until the
//! ban ends; a public room admits anyone and records a `member` row as in
//! protocol v1; a private room needs a row already, and to anyone else looks
//! like a room that does not exist (404 on every route, the handshake and
//! `join_room` included).

use crate::store::{Store, StoreError};
use shared::error_code::ErrorCode;
use shared::ids::{RoomId, UserId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    #[error("room not found")]
    NotFound,
    /// Banned until then (`None`: for good).
    #[error("you are banned from this room {}", until.map_or("for good".to_owned(), |t| format!("until {}", crate::clock::rfc3339(t))))]
    Banned {
        until: Option<chrono::DateTime<chrono::Utc>>,
    },
    #[error("the database is unavailable, try again")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

impl AdmitError {
    pub fn code(self) -> ErrorCode {
        match self {
            AdmitError::NotFound => ErrorCode::RoomNotFound,
            AdmitError::Banned { .. } => ErrorCode::Banned,
            AdmitError::Unavailable => ErrorCode::Unavailable,
            AdmitError::Internal => ErrorCode::Internal,
        }
    }
}

impl From<StoreError> for AdmitError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => AdmitError::NotFound,
            StoreError::Unavailable(why) => {
                tracing::warn!(error = %why, "database unavailable during admission");
                AdmitError::Unavailable
            }
            other => {
                tracing::error!(error = %other, "admission failed");
                AdmitError::Internal
            }
        }
    }
}

/// On success, the room's newest `seq` as read now, before the connection
/// subscribes: delivery starts right after it (see `conn::delivery`).
pub async fn admit(store: &Store, user: UserId, room: RoomId) -> Result<i64, AdmitError> {
    let now = crate::clock::now();
    let entry = store
        .room_entry(room, user, now)
        .await?
        .ok_or(AdmitError::NotFound)?;
    if entry.banned {
        // Rare: a second read for the ban's end. A ban that ended between
        // the two reads is no ban.
        if let Some(ban) = store.active_ban(room, user, now).await? {
            return Err(AdmitError::Banned {
                until: ban.expires_at,
            });
        }
    }
    if entry.role.is_some() {
        return Ok(entry.last_seq);
    }
    if entry.is_private {
        return Err(AdmitError::NotFound);
    }
    store.add_member(room, user, "member", now).await?;
    Ok(entry.last_seq)
}
