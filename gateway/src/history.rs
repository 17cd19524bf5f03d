//! A room's message history, newest first, in pages: the one read path for
//! the REST history (and later resume and gap filling).
//!
//! In cluster mode the room's last 100 messages are also in Redis (written by
//! the bus's publish script). A page is served from there only when the cache
//! provably holds exactly what SQL would return: the cached entries below the
//! cursor must have the contiguous `seq` values right below it (seq numbers
//! are gap-free per room in SQL). A message stored while Redis was down is
//! missing from the cache, breaks the run, and sends the read to SQL. User
//! profiles come from the users table either way, so a renamed user reads the
//! same from both.

use crate::clock;
use crate::redis::RedisConn;
use crate::store::{MessageRecord, Store, StoreError};
use fred::prelude::*;
use shared::ids::{MessageId, RoomId, UserId};
use shared::server_frame::{MessageData, UserPublic};
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
        let mut cached: Vec<MessageData> = raw
            .iter()
            .filter_map(|s| serde_json::from_str(s).ok())
            .collect();
        cached.sort_by_key(|m| std::cmp::Reverse(m.seq));
        cached.dedup_by_key(|m| m.seq);
        // The seq right above the page.
        let top = match before {
            Some(id) => match cached.iter().find(|m| m.id == id) {
                Some(m) => m.seq,
                None => return Ok(None),
            },
            None => match self.store.find_room(room).await? {
                Some(r) => r.last_seq + 1,
                None => return Err(StoreError::NotFound),
            },
        };
        let wanted = (limit as i64).min(top - 1).max(0) as usize;
        let page: Vec<MessageData> = cached
            .into_iter()
            .filter(|m| m.seq < top)
            .take(wanted)
            .collect();
        let contiguous = page.len() == wanted
            && page
                .iter()
                .enumerate()
                .all(|(i, m)| m.seq == top - 1 - i as i64);
        Ok(contiguous.then_some(page))
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
            .map(|r| MessageData {
                id: r.id,
                room_id: r.room_id,
                user_id: r.user_id,
                seq: r.seq,
                content: r.content,
                created_at: clock::rfc3339(r.created_at),
                user: profiles
                    .get(&r.user_id)
                    .cloned()
                    .unwrap_or_else(|| UserPublic {
                        id: r.user_id,
                        username: format!("user{}", r.user_id),
                        nickname: String::new(),
                    }),
                client_msg_id: r.client_msg_id,
            })
            .collect())
    }

    /// The room's newest seq (0 for an empty room).
    pub async fn last_seq(&self, room: RoomId) -> Result<i64, StoreError> {
        Ok(self.store.find_room(room).await?.map_or(0, |r| r.last_seq))
    }

    /// Messages with seq > `after`, oldest first, at most `limit`.
    pub async fn after_seq(
        &self,
        room: RoomId,
        after: i64,
        limit: u64,
    ) -> Result<Vec<MessageData>, StoreError> {
        let records = self.store.messages_after_seq(room, after, limit).await?;
        self.with_profiles(records).await
    }

    /// Drop a deleted room's cached messages.
    pub async fn forget(&self, room: RoomId) {
        if let Some(redis) = &self.cache {
            let _: Result<i64, _> = redis.client.del(redis.keys.recent(room)).await;
        }
    }
}
