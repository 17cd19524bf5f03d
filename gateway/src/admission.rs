//! May this user enter this room? The same rule for `room_id` at connect and
//! for `join_room`: the room must exist; a public room admits anyone and
//! records a `member` row as in the seed; a private room needs a row already.

use crate::store::{Store, StoreError};
use shared::error_code::ErrorCode;
use shared::ids::{RoomId, UserId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    #[error("room not found")]
    NotFound,
    #[error("you are not a member of this private room")]
    Forbidden,
    #[error("the database is unavailable, try again")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

impl AdmitError {
    pub fn code(self) -> ErrorCode {
        match self {
            AdmitError::NotFound => ErrorCode::RoomNotFound,
            AdmitError::Forbidden => ErrorCode::Forbidden,
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
/// subscribes: delivery starts right after it (see `ws::delivery`).
pub async fn admit(store: &Store, user: UserId, room: RoomId) -> Result<i64, AdmitError> {
    let record = store.find_room(room).await?.ok_or(AdmitError::NotFound)?;
    if store.member_role(room, user).await?.is_some() {
        return Ok(record.last_seq);
    }
    if record.is_private {
        return Err(AdmitError::Forbidden);
    }
    store
        .add_member(room, user, "member", crate::clock::now())
        .await?;
    Ok(record.last_seq)
}
