//! Editing and deleting a message: check who may, store the change (an
//! event with the room's next seq, see `store::message_edits`), then publish
//! it like a message, so that every member on every node gets
//! `message_edited` / `message_deleted` in order, and a client resuming
//! with `since_seq` gets it from the history. The caller has checked that
//! the user is a member of the room.

use super::Node;
use super::republish::Publish;
use crate::domain::{BodyError, MessageBody};
use crate::history::{change_frame, message_data};
use crate::store::{MessageChange, MessageRecord, StoreError};
use shared::bus_envelope::BusEvent;
use shared::ids::{MessageId, RoomId, UserId};
use shared::server_frame::{MessageData, ServerFrame, UserPublic};
use std::time::Duration;

/// Why a message was not changed.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// No such message in the room, or it is deleted.
    #[error("message not found")]
    NotFound,
    #[error("only the author may edit a message")]
    NotAuthor,
    #[error("only the author or the room's owner and admins may delete a message")]
    NotAllowed,
    #[error("messages can be edited for {0} seconds after they are sent")]
    EditWindowPassed(u64),
    #[error("{0:?}")]
    Body(BodyError),
    #[error("the change could not be stored, try again")]
    Unavailable(#[source] StoreError),
}

impl From<StoreError> for ChangeError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ChangeError::NotFound,
            other => ChangeError::Unavailable(other),
        }
    }
}

impl Node {
    /// Replace the content of `user`'s message `id` in `room`, within
    /// `window` of its sending. The same content again changes nothing.
    pub async fn edit_message(
        &self,
        user: UserId,
        room: RoomId,
        id: MessageId,
        content: &str,
        window: Duration,
    ) -> Result<MessageData, ChangeError> {
        let body =
            MessageBody::parse(content, self.max_content_chars).map_err(ChangeError::Body)?;
        let message = self.live_message(room, id).await?;
        if message.user_id != user {
            return Err(ChangeError::NotAuthor);
        }
        let age = crate::clock::now() - message.created_at;
        if age.to_std().unwrap_or_default() > window {
            return Err(ChangeError::EditWindowPassed(window.as_secs()));
        }
        if message.content == body.as_str() {
            return self.as_sent(message).await;
        }
        let change = self
            .store
            .edit_message(room, id, user, body.as_str(), crate::clock::now())
            .await?;
        self.announce(change).await
    }

    /// Delete message `id` of `room`: its author may, and so may the
    /// room's owner and admins (`moderator`). Deleting a deleted message
    /// again is a success that changes nothing.
    pub async fn delete_message(
        &self,
        user: UserId,
        moderator: bool,
        room: RoomId,
        id: MessageId,
    ) -> Result<(), ChangeError> {
        let message = match self.store.find_message(room, id).await? {
            Some(m) if m.deleted_at.is_some() => return Ok(()),
            Some(m) => m,
            None => return Err(ChangeError::NotFound),
        };
        if message.user_id != user && !moderator {
            return Err(ChangeError::NotAllowed);
        }
        match self
            .store
            .delete_message(room, id, user, crate::clock::now())
            .await
        {
            Ok(change) => self.announce(change).await.map(drop),
            // Deleted meanwhile (another device, a moderator).
            Err(StoreError::NotFound) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The message, if it exists and is not deleted.
    async fn live_message(
        &self,
        room: RoomId,
        id: MessageId,
    ) -> Result<MessageRecord, ChangeError> {
        match self.store.find_message(room, id).await? {
            Some(m) if m.deleted_at.is_none() => Ok(m),
            _ => Err(ChangeError::NotFound),
        }
    }

    /// The message with its author's profile.
    async fn as_sent(&self, message: MessageRecord) -> Result<MessageData, ChangeError> {
        let author = self.store.find_users(&[message.user_id]).await?;
        let user = match author.into_iter().next() {
            Some(u) => UserPublic {
                id: u.id,
                username: u.username,
                nickname: u.nickname,
            },
            None => UserPublic {
                id: message.user_id,
                username: format!("user{}", message.user_id),
                nickname: String::new(),
            },
        };
        Ok(message_data(message, user))
    }

    /// Publish a stored change (retried in the background if the bus is
    /// down: it is stored, so the answer is a success either way).
    async fn announce(&self, change: MessageChange) -> Result<MessageData, ChangeError> {
        let (room, event_id) = (change.event.room_id, change.event.id);
        let message = self.as_sent(change.message).await?;
        let event = match change_frame(&change.event) {
            Some(ServerFrame::MessageEdited { data, .. }) => BusEvent::MessageEdited {
                data,
                message: message.clone(),
            },
            Some(ServerFrame::MessageDeleted { data, .. }) => BusEvent::MessageDeleted {
                data,
                message: message.clone(),
            },
            _ => unreachable!("a change's event row is an edit or a deletion"),
        };
        self.publish_sequenced(room, event_id, event, Publish::First)
            .await;
        Ok(message)
    }
}
