//! Posting a chat message: validate, store, then publish. The one path for
//! WebSocket and REST sends. The caller has already checked that the sender
//! is in the room: membership is checked when a connection enters a room, not
//! with a query per message.
//!
//! # Guarantees and what a node's death does to them
//!
//! The path of a message, and what happens if the node taking it dies
//! (kill -9) right after each step:
//!
//! 1. **Received and validated.** Nothing stored: the sender sees no answer
//!    and its connection drop; it resends after reconnecting (with the same
//!    `client_msg_id`, so a message that did make it is not stored twice).
//! 2. **Committed to SQL** (`insert_message`: the room's next `seq` and the
//!    row, in one transaction). From here the message is durable and has its
//!    place in the room's order. If the node dies before publishing, nobody
//!    is told live and the sender gets no acknowledgement. The next message
//!    of the room reveals a gap to every connection, which fills it from SQL
//!    before delivering anything newer. In a quiet room nothing follows, so
//!    the sender's retry is what brings it out: a resend with the same
//!    `client_msg_id` (to any node) returns the stored original to the
//!    sender *and publishes it again*, so the other members get it too
//!    (whoever had it already drops the copy by its `seq`).
//! 3. **Published** (one Redis PUBLISH, or the in-process bus). Every node
//!    with members in the room receives it, including this one. If the node
//!    dies now, the others deliver it to their members; the sender, if it was
//!    connected to the dead node, has no acknowledgement, and its retry
//!    returns the original (published again, dropped as a copy by everyone
//!    who has it).
//! 4. **Enqueued to each local member** by each node's router; the sender's
//!    echo is its acknowledgement, so *an acknowledged message is always in
//!    SQL*. A node that dies here takes only its own connections' queues
//!    with it; those clients resume elsewhere with `since_seq` and get
//!    everything after it from SQL.
//! 5. **Written to each socket** in `seq` order, duplicates dropped (see
//!    `conn::delivery`). A death between the write and the client reading it
//!    is the same for the client as one before it: it resumes with the last
//!    `seq` it saw, and a sender without its acknowledgement retries.
//!
//! The REST path (`POST /api/rooms/{id}/messages`) takes the same steps 1 to
//! 3; then the response is the acknowledgement: 201 with the stored message
//! (200 with the original for a retry of a stored `client_msg_id`). A node
//! dying at any step before the response is written leaves the client with
//! a failed request; it retries with the same `client_msg_id` and gets the
//! message stored once, published again as in step 2. (A message sent
//! without a `client_msg_id`, over either path, cannot be recognised: its
//! retry is stored as a new message.)
//!
//! # Exactly one answer, and nothing reported sent that was not
//!
//! When the bus is known to be down the message is refused (`unavailable`)
//! before step 2: nothing is stored, that error is the one answer. If the
//! publish fails after the commit anyway (Redis lost between the check and
//! the PUBLISH, a timeout), the message is durable: the sender is answered
//! with the stored message, as for any other, and `node::republish` retries
//! the publish in the background until it goes through (bounded); nodes that
//! lost Redis also catch up from the history once they re-subscribed. It is
//! never answered `unavailable`, which would be a second answer once the
//! message reached the sender anyway.

use super::Node;
use super::republish::Publish;
use crate::domain::{BodyError, ClientMsgId, MessageBody};
use crate::store::{MessageRecord, StoreError};
use shared::error_code::ErrorCode;
use shared::ids::RoomId;
use shared::server_frame::{MessageData, UserPublic};

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("{0:?}")]
    Body(BodyError),
    #[error("client_msg_id must be 1 to 64 printable ASCII characters")]
    ClientMsgId,
    /// The id names another message of the sender's (another room, or other
    /// content) within the deduplication window: this is not a retry.
    #[error(
        "client_msg_id was used within the last 10 minutes for a different message (another room or other content); send it with a new id"
    )]
    ClientMsgIdReused,
    #[error("room not found")]
    RoomNotFound,
    #[error("the message could not be stored or sent, try again")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

impl SendError {
    pub fn code(&self) -> ErrorCode {
        match self {
            SendError::Body(BodyError::Empty) => ErrorCode::ContentEmpty,
            SendError::Body(BodyError::TooLong { .. }) => ErrorCode::ContentTooLong,
            SendError::Body(BodyError::ControlCharacters) => ErrorCode::InvalidContent,
            SendError::ClientMsgId => ErrorCode::InvalidClientMsgId,
            SendError::ClientMsgIdReused => ErrorCode::ClientMsgIdReused,
            SendError::RoomNotFound => ErrorCode::RoomNotFound,
            SendError::Unavailable => ErrorCode::Unavailable,
            SendError::Internal => ErrorCode::Internal,
        }
    }

    /// Words for the client.
    pub fn message(&self) -> String {
        match self {
            SendError::Body(BodyError::Empty) => "content is empty".into(),
            SendError::Body(BodyError::TooLong { max_chars }) => {
                format!("content is longer than {max_chars} characters")
            }
            SendError::Body(BodyError::ControlCharacters) => {
                "content may not contain control characters other than newline and tab".into()
            }
            other => other.to_string(),
        }
    }
}

impl From<StoreError> for SendError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => SendError::RoomNotFound,
            StoreError::Unavailable(why) => {
                tracing::warn!(error = %why, "database unavailable while storing a message");
                SendError::Unavailable
            }
            other => {
                tracing::error!(error = %other, "could not store a message");
                SendError::Internal
            }
        }
    }
}

/// How long a `client_msg_id` identifies a message: a retry within this
/// window gets the original back instead of storing a second copy.
pub const DEDUP_WINDOW: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// The outcome of a send.
#[derive(Debug, Clone)]
pub struct Posted {
    pub message: MessageData,
    /// A retry of a message already stored: nothing new was stored; the
    /// original was published again (connections that have it drop the copy).
    pub duplicate: bool,
}

impl Node {
    /// Store `content` from `user` in `room` and broadcast it to the room;
    /// with a `client_msg_id` already used within [`DEDUP_WINDOW`], return
    /// the original instead (also when the retry races the original on
    /// another node: the unique index decides).
    pub async fn post_message(
        &self,
        user: &UserPublic,
        room: RoomId,
        content: &str,
        client_msg_id: Option<&str>,
    ) -> Result<Posted, SendError> {
        let body = MessageBody::parse(content, self.max_content_chars).map_err(SendError::Body)?;
        let client_msg_id = client_msg_id
            .map(ClientMsgId::parse)
            .transpose()
            .map_err(|_| SendError::ClientMsgId)?;
        // Known to be cut off from the other nodes: refuse before storing, so
        // that a message is never stored, reported failed, and delivered later.
        // A retry of a message stored before the cut still gets its original.
        if !self.bus.connected() {
            if let Some(id) = &client_msg_id
                && let Some(original) = self.claimed(user, id).await?
            {
                return self.retry(original, user, room, &body).await;
            }
            return Err(SendError::Unavailable);
        }
        // No lookup before the insert: the unique (sender, client_msg_id)
        // index finds a retry, so a first send costs one transaction.
        let m = crate::metrics::metrics();
        let mut released = false;
        let stored = loop {
            let insert = self.store.insert_message(
                room,
                user.id,
                body.as_str(),
                client_msg_id.as_ref().map(ClientMsgId::as_str),
                crate::clock::now(),
            );
            match crate::metrics::timed(&m.db_seconds, "insert_message", insert).await {
                Err(StoreError::Conflict) if !released && let Some(id) = &client_msg_id => {
                    match self.claimed(user, id).await? {
                        Some(original) => return self.retry(original, user, room, &body).await,
                        // The earlier use is outside the window and was released: store anew.
                        None => released = true,
                    }
                }
                other => break other?,
            }
        };
        let data = message_data(stored, user);
        // Stored, so acknowledged whatever the publish does (see the module
        // documentation): a failed publish is retried in the background.
        if self.publish_stored(&data, Publish::First).await {
            m.messages_published.inc();
        }
        Ok(Posted {
            message: data,
            duplicate: false,
        })
    }

    /// The sender's message with this id inside the window; an older one
    /// gives the id up.
    async fn claimed(
        &self,
        user: &UserPublic,
        id: &ClientMsgId,
    ) -> Result<Option<MessageRecord>, SendError> {
        match self
            .store
            .message_by_client_msg_id(user.id, id.as_str())
            .await?
        {
            Some(m) if crate::clock::now() - m.created_at < DEDUP_WINDOW => Ok(Some(m)),
            Some(m) => {
                self.store.release_client_msg_id(m.id).await?;
                Ok(None)
            }
            None => Ok(None),
        }
    }
}

impl Node {
    /// A send whose `client_msg_id` is taken by `original`. A retry repeats
    /// the original's room and content: then the original goes back to the
    /// sender and out on the bus again, in case its first publish never
    /// happened (the node died after the commit): in a quiet room no later
    /// message would reveal the gap to the other members. Anything else is a
    /// reused id, refused: answering it with the original would report a
    /// message sent that was not, and the original belongs to another room's
    /// sequence (a connection's cursor for this room must never see its seq).
    async fn retry(
        &self,
        original: MessageRecord,
        user: &UserPublic,
        room: RoomId,
        body: &MessageBody,
    ) -> Result<Posted, SendError> {
        if original.room_id != room || original.content != body.as_str() {
            return Err(SendError::ClientMsgIdReused);
        }
        let message = message_data(original, user);
        self.publish_stored(&message, Publish::Again).await;
        Ok(Posted {
            message,
            duplicate: true,
        })
    }
}

fn message_data(stored: MessageRecord, user: &UserPublic) -> MessageData {
    crate::history::message_data(stored, user.clone())
}
