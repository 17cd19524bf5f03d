//! Cluster-wide claims in Redis: one sorted set per user (conn → expiry),
//! each claim checked and taken in one script. The node remembers its own
//! claims to refresh them.

use super::{Unavailable, UserConns};
use crate::redis::RedisConn;
use async_trait::async_trait;
use fred::prelude::*;
use fred::types::scripts::Script;
use shared::ids::{ConnKey, UserId};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

pub struct RedisUserConns {
    redis: RedisConn,
    ttl: Duration,
    /// This node's claims, to refresh. std Mutex: never held across `.await`.
    mine: Mutex<HashMap<UserId, Vec<ConnKey>>>,
}

fn claim_script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| Script::from_lua(include_str!("lua/claim.lua")))
}

fn refresh_script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| Script::from_lua(include_str!("lua/refresh.lua")))
}

fn unavailable(e: impl std::fmt::Display) -> Unavailable {
    Unavailable(e.to_string())
}

impl RedisUserConns {
    pub fn new(redis: RedisConn, ttl: Duration) -> Self {
        RedisUserConns {
            redis,
            ttl,
            mine: Mutex::new(HashMap::new()),
        }
    }

    fn ttl_ms(&self) -> i64 {
        self.ttl.as_millis() as i64
    }

    /// Runs `script` (timed as `op`) on `user`'s sorted set of claims.
    async fn run_on(
        &self,
        op: &'static str,
        script: &Script,
        user: UserId,
        args: Vec<Value>,
    ) -> Result<i64, Unavailable> {
        let keys = vec![self.redis.keys.user_conns(user)];
        self.redis
            .eval(op, script, keys, args)
            .await
            .map_err(unavailable)
    }
}

#[async_trait]
impl UserConns for RedisUserConns {
    async fn claim(&self, user: UserId, conn: &ConnKey, max: usize) -> Result<bool, Unavailable> {
        let args: Vec<Value> = vec![
            conn.to_string().into(),
            (max as i64).into(),
            self.ttl_ms().into(),
        ];
        let claimed = self
            .run_on("user_conns_claim", claim_script(), user, args)
            .await?;
        if claimed == 1 {
            self.mine
                .lock()
                .expect("user conns lock")
                .entry(user)
                .or_default()
                .push(conn.clone());
        }
        Ok(claimed == 1)
    }

    async fn release(&self, user: UserId, conn: &ConnKey) {
        {
            let mut mine = self.mine.lock().expect("user conns lock");
            if let Some(conns) = mine.get_mut(&user) {
                conns.retain(|c| c != conn);
                if conns.is_empty() {
                    mine.remove(&user);
                }
            }
        }
        let removed: Result<i64, _> = self
            .redis
            .client
            .zrem(self.redis.keys.user_conns(user), conn.to_string())
            .await;
        if let Err(e) = removed {
            tracing::debug!(user_id = %user, error = %e, "connection claim not released; it expires");
        }
    }

    async fn refresh(&self) -> Result<(), Unavailable> {
        let claims: Vec<(UserId, Vec<ConnKey>)> = self
            .mine
            .lock()
            .expect("user conns lock")
            .iter()
            .map(|(u, c)| (*u, c.clone()))
            .collect();
        for (user, conns) in claims {
            let mut args: Vec<Value> = Vec::with_capacity(1 + conns.len());
            args.push(self.ttl_ms().into());
            args.extend(conns.iter().map(|c| Value::from(c.to_string())));
            self.run_on("user_conns_refresh", refresh_script(), user, args)
                .await?;
        }
        Ok(())
    }
}
