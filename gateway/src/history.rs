//! A room's message history, newest first, in pages: the one read path for
//! the REST history (and later resume and gap filling).
//!
//! In cluster mode the room's last 100 messages, edits and deletions are also
//! in Redis (written by the bus's publish script, in `recent_cache`'s
//! format). A page is served from there only when the cache provably holds
//! exactly what SQL would return: the cached entries below the cursor must
//! have the contiguous `seq` values right below it (seq numbers are gap-free
//! per room in SQL, and an edit or a deletion holds one). A message stored
//! while Redis was down is missing from the cache, breaks the run, and sends
//! the read to SQL. User
//! profiles come from the users table either way, so a renamed user reads the
//! same from both.

use crate::clock;
use crate::recent_cache::Entry;
use crate::redis::RedisConn;
use crate::store::{MessageKind, MessageRecord, Store, StoreError};
use fred::prelude::*;
use shared::ids::{MessageId, RoomId, UserId};
use shared::server_frame::{
    MessageData, MessageDeletedData, MessageEditedData, ServerFrame, UserPublic,
};
use std::collections::HashMap;

/// The largest page a caller may ask for (and the size of the cache).
pub const MAX_PAGE: u64 = 100;

#[derive(Clone)]
pub struct History {
    store: Store,
    cache: Option<RedisConn>,
}

/// Where a page came from (for tests and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cache,
    Sql,
}

impl History {
    pub fn new(store: Store, cache: Option<RedisConn>) -> Self {
        History { store, cache }
    }

    /// Messages of `room` older than `before` (or the newest), newest first.
    pub async fn page(
        &self,
        room: RoomId,
        before: Option<MessageId>,
        limit: u64,
    ) -> Result<(Vec<MessageData>, Source), StoreError> {
        let limit = limit.clamp(1, MAX_PAGE);
        if let Some(page) = self.cached_page(room, before, limit).await? {
            let ids: Vec<UserId> = page.iter().map(|m| m.user_id).collect();
            let profiles = self.profiles(&ids).await?;
            let page = page
                .into_iter()
                .map(|mut m| {
                    if let Some(p) = profiles.get(&m.user_id) {
                        m.user = p.clone();
                    }
                    m
                })
                .collect();
            return Ok((page, Source::Cache));
        }
        let records = self.store.messages_before(room, before, limit).await?;
        Ok((self.with_profiles(records).await?, Source::Sql))
    }

    /// The cached page, if the cache covers it exactly.
    async fn cached_page(
        &self,
        room: RoomId,
        before: Option<MessageId>,
        limit: u64,
    ) -> Result<Option<Vec<MessageData>>, StoreError> {
        let Some(redis) = &self.cache else {
            return Ok(None);
        };
        let raw: Vec<String> = match redis
            .client
            .lrange(redis.keys.recent(room), 0, MAX_PAGE as i64 - 1)
            .await
        {
            Ok(raw) => raw,
            Err(e) => {
                tracing::debug!(room = %room, error = %e, "recent-messages cache unavailable; reading SQL");
                return Ok(None);
            }
        };
        let mut cached: Vec<Entry> = raw
            .iter()
            .filter_map(|s| serde_json::from_str(s).ok())
            .collect();
        cached.sort_by_key(|e| std::cmp::Reverse(e.seq()));
        // A message's entry pushed twice (an old build's republish) is one.
        cached.dedup_by_key(|e| e.seq());
        // The seq right above the page.
        let top = match before {
            Some(id) => match cached
                .iter()
                .find(|e| matches!(e, Entry::Message(m) if m.id == id))
            {
                Some(e) => e.seq(),
                None => return Ok(None),
            },
            None => match self.store.find_room(room).await? {
                Some(r) => r.last_seq + 1,
                None => return Err(StoreError::NotFound),
            },
        };
        // Walk down from `top`: every seq must be there (an edit or a
        // deletion holds one too), until the page is full or seq 1 passed.
        let mut page = Vec::new();
        let mut expected = top - 1;
        for entry in cached.into_iter().filter(|e| e.seq() < top) {
            if page.len() as u64 == limit || expected < 1 {
                break;
            }
            if entry.seq() != expected {
                return Ok(None);
            }
            expected -= 1;
            if let Entry::Message(m) = entry {
                page.push(m);
            }
        }
        let complete = page.len() as u64 == limit || expected < 1;
        Ok(complete.then_some(page))
    }

    async fn profiles(&self, ids: &[UserId]) -> Result<HashMap<UserId, UserPublic>, StoreError> {
        let mut unique = ids.to_vec();
        unique.sort();
        unique.dedup();
        Ok(self
            .store
            .find_users(&unique)
            .await?
            .into_iter()
            .map(|u| {
                (
                    u.id,
                    UserPublic {
                        id: u.id,
                        username: u.username,
                        nickname: u.nickname,
                    },
                )
            })
            .collect())
    }

    async fn with_profiles(
        &self,
        records: Vec<MessageRecord>,
    ) -> Result<Vec<MessageData>, StoreError> {
        let ids: Vec<UserId> = records.iter().map(|r| r.user_id).collect();
        let profiles = self.profiles(&ids).await?;
        Ok(records
            .into_iter()
            .map(|r| {
                let user = profile_or_placeholder(&profiles, r.user_id);
                message_data(r, user)
            })
            .collect())
    }

    /// The room's newest seq (0 for an empty room).
    pub async fn last_seq(&self, room: RoomId) -> Result<i64, StoreError> {
        Ok(self.store.find_room(room).await?.map_or(0, |r| r.last_seq))
    }

    /// The room's stream after `after`, oldest first, at most `limit`
    /// frames: its messages as they now are, and the edits and deletions,
    /// each at its own seq.
    pub async fn after_seq(
        &self,
        room: RoomId,
        after: i64,
        limit: u64,
    ) -> Result<Vec<ServerFrame>, StoreError> {
        let records = self.store.messages_after_seq(room, after, limit).await?;
        let ids: Vec<UserId> = records
            .iter()
            .filter(|r| r.kind == MessageKind::Message)
            .map(|r| r.user_id)
            .collect();
        let profiles = self.profiles(&ids).await?;
        Ok(records
            .into_iter()
            .map(|r| stream_frame(r, &profiles))
            .collect())
    }

    /// Drop a deleted room's cached messages.
    pub async fn forget(&self, room: RoomId) {
        if let Some(redis) = &self.cache {
            let _ = redis.forget_recent(room).await;
        }
    }
}

/// A stored message as clients see it, sent by `user`.
pub fn message_data(r: MessageRecord, user: UserPublic) -> MessageData {
    MessageData {
        id: r.id,
        room_id: r.room_id,
        user_id: r.user_id,
        seq: r.seq,
        content: r.content,
        created_at: clock::rfc3339(r.created_at),
        user,
        client_msg_id: r.client_msg_id,
        edited_at: r.edited_at.map(clock::rfc3339),
        deleted: r.deleted_at.is_some(),
    }
}

/// An edit or deletion event row as its frame's data (`None` for a message).
pub fn change_frame(r: &MessageRecord) -> Option<ServerFrame> {
    let (room_id, id, seq) = (r.room_id, r.target?, r.seq);
    match r.kind {
        MessageKind::Message => None,
        MessageKind::Edited => Some(ServerFrame::MessageEdited {
            room_id,
            data: MessageEditedData {
                id,
                seq,
                content: r.content.clone(),
                edited_at: clock::rfc3339(r.created_at),
            },
        }),
        MessageKind::Deleted => Some(ServerFrame::MessageDeleted {
            room_id,
            data: MessageDeletedData { id, seq },
        }),
    }
}

/// A row of the room's stream as the frame that delivers it.
fn stream_frame(r: MessageRecord, profiles: &HashMap<UserId, UserPublic>) -> ServerFrame {
    if let Some(frame) = change_frame(&r) {
        return frame;
    }
    let user = profile_or_placeholder(profiles, r.user_id);
    ServerFrame::Message {
        room_id: r.room_id,
        data: message_data(r, user),
    }
}

/// The user's profile, or a stand-in if the row is gone.
fn profile_or_placeholder(profiles: &HashMap<UserId, UserPublic>, id: UserId) -> UserPublic {
    profiles.get(&id).cloned().unwrap_or_else(|| UserPublic {
        id,
        username: format!("user{id}"),
        nickname: String::new(),
    })
}
