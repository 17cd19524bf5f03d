//! Presence in Redis, shared by every node: per room a HASH of conns, a ZSET
//! of their expiry times (Redis 7.0 has no per-field HEXPIRE), a HASH of
//! connection counts per user and a HASH of profiles, all under the room's
//! hash tag and changed only by the Lua scripts in `lua/` (atomic, no KEYS or
//! SCAN anywhere). Nodes refresh their entries every TTL/3; entries of a node
//! that died expire after the TTL and are pruned by the survivors (at least
//! every 2 s, see `node::presence_keeper`), who then announce `user_left`.

use super::{OnlineList, Presence, PresenceCounts, PresenceError};
use crate::redis::RedisConn;
use async_trait::async_trait;
use fred::prelude::*;
use fred::types::scripts::Script;
use shared::ids::{ConnKey, RoomId, UserId};
use shared::server_frame::UserPublic;
use std::sync::OnceLock;
use std::time::Duration;

macro_rules! script {
    ($file:literal) => {{
        static SCRIPT: OnceLock<Script> = OnceLock::new();
        SCRIPT.get_or_init(|| {
            Script::from_lua(concat!(
                include_str!("lua/prune_fn.lua"),
                include_str!($file)
            ))
        })
    }};
}

pub struct RedisPresence {
    redis: RedisConn,
    ttl: Duration,
}

impl RedisPresence {
    pub fn new(redis: RedisConn, ttl: Duration) -> Self {
        RedisPresence { redis, ttl }
    }

    fn keys(&self, room: RoomId) -> Vec<String> {
        self.redis.keys.presence(room).to_vec()
    }

    fn ttl_ms(&self) -> i64 {
        self.ttl.as_millis() as i64
    }
}

fn unavailable(e: impl std::fmt::Display) -> PresenceError {
    PresenceError::Unavailable(e.to_string())
}

fn profile(user: &UserPublic) -> String {
    serde_json::to_string(user).expect("profiles serialise")
}

fn parse_profiles(raw: Vec<String>) -> Vec<UserPublic> {
    raw.iter()
        .filter_map(|p| serde_json::from_str(p).ok())
        .collect()
}

#[async_trait]
impl Presence for RedisPresence {
    async fn add(
        &self,
        room: RoomId,
        conn: &ConnKey,
        user: &UserPublic,
    ) -> Result<bool, PresenceError> {
        let args: Vec<Value> = vec![
            conn.to_string().into(),
            user.id.0.into(),
            profile(user).into(),
            self.ttl_ms().into(),
        ];
        let first: i64 = self
            .redis
            .eval(
                "presence_add",
                script!("lua/add.lua"),
                self.keys(room),
                args,
            )
            .await
            .map_err(unavailable)?;
        Ok(first == 1)
    }

    async fn remove(
        &self,
        room: RoomId,
        conn: &ConnKey,
        _user: UserId,
    ) -> Result<bool, PresenceError> {
        let last: i64 = self
            .redis
            .eval(
                "presence_remove",
                script!("lua/remove.lua"),
                self.keys(room),
                vec![conn.to_string().into()],
            )
            .await
            .map_err(unavailable)?;
        Ok(last == 1)
    }

    async fn users(&self, room: RoomId, max: usize) -> Result<OnlineList, PresenceError> {
        let max = max.clamp(1, i64::MAX as usize / 2) as i64;
        let mut raw: Vec<String> = self
            .redis
            .eval(
                "presence_list",
                script!("lua/list.lua"),
                self.keys(room),
                vec![Value::from(max)],
            )
            .await
            .map_err(unavailable)?;
        let total = if raw.is_empty() {
            0
        } else {
            raw.remove(0).parse().unwrap_or(0)
        };
        let mut users = parse_profiles(raw);
        users.sort_by_key(|u| u.id);
        let total = total.max(users.len() as u64);
        Ok(OnlineList { users, total })
    }

    async fn refresh(
        &self,
        room: RoomId,
        entries: &[(ConnKey, UserPublic)],
    ) -> Result<Vec<UserPublic>, PresenceError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let mut args: Vec<Value> = Vec::with_capacity(1 + entries.len() * 3);
        args.push(self.ttl_ms().into());
        for (conn, user) in entries {
            args.push(conn.to_string().into());
            args.push(user.id.0.into());
            args.push(profile(user).into());
        }
        let raw: Vec<String> = self
            .redis
            .eval(
                "presence_refresh",
                script!("lua/refresh.lua"),
                self.keys(room),
                args,
            )
            .await
            .map_err(unavailable)?;
        Ok(parse_profiles(raw))
    }

    async fn counts(&self, room: RoomId) -> Result<PresenceCounts, PresenceError> {
        let [conns, _, users, _] = self.keys(room).try_into().expect("four presence keys");
        let pipe = self.redis.client.pipeline();
        let _: () = pipe.hlen(conns).await.map_err(unavailable)?;
        let _: () = pipe.hlen(users).await.map_err(unavailable)?;
        let (connections, users): (u64, u64) = pipe.all().await.map_err(unavailable)?;
        Ok(PresenceCounts { connections, users })
    }

    async fn prune(&self, room: RoomId) -> Result<Vec<UserId>, PresenceError> {
        let raw: Vec<i64> = self
            .redis
            .eval(
                "presence_prune",
                script!("lua/prune.lua"),
                self.keys(room),
                vec![],
            )
            .await
            .map_err(unavailable)?;
        Ok(raw.into_iter().map(UserId).collect())
    }
}
