//! The Redis bus: one channel per room (`{prefix}:{room:N}`), PUBLISH or
//! sharded SPUBLISH. Choose it for more than one node. Delivery is
//! at-most-once, as Redis pub/sub is: a node disconnected from Redis misses
//! what was published meanwhile. After a reconnect `redis::resubscribe`
//! re-subscribes, and once Redis confirmed it the node catches up from the
//! history.
//!
//! Publishing a chat message, an edit or a deletion also updates the room's
//! recent-messages cache, in the same script (see `lua/publish.lua` and
//! `recent_cache`).

use super::{Bus, BusError};
use crate::redis::RedisConn;
use async_trait::async_trait;
use fred::prelude::*;
use fred::types::scripts::Script;
use shared::bus_envelope::BusEnvelope;
use shared::ids::RoomId;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Notify, mpsc};

const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(3);

fn publish_script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| Script::from_lua(include_str!("lua/publish.lua")))
}

pub struct RedisBus {
    redis: RedisConn,
}

impl RedisBus {
    /// Publish, updating the recent-messages cache as `recent_cache` says.
    async fn publish_with_cache(
        &self,
        envelope: BusEnvelope,
        first_publish: bool,
    ) -> Result<(), BusError> {
        let room = envelope.room;
        let cache = crate::recent_cache::update_for(&envelope.event, first_publish);
        let keys = &self.redis.keys;
        let args: Vec<Value> = vec![
            keys.room_channel(room).into(),
            Value::Bytes(envelope.encode().into()),
            cache.push.into(),
            if self.redis.sharded { "1" } else { "0" }.into(),
            cache.replace_id.into(),
            cache.replacement.into(),
            cache.rev.into(),
        ];
        let _receivers: i64 = self
            .redis
            .eval("publish", publish_script(), vec![keys.recent(room)], args)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Start forwarding received envelopes to `tx` (the node's router);
    /// `lost` is rung when messages were dropped for falling behind.
    pub fn start(redis: RedisConn, tx: mpsc::Sender<BusEnvelope>, lost: Arc<Notify>) -> Self {
        tokio::spawn(forward(redis.clone(), tx, lost));
        RedisBus { redis }
    }
}

/// Subscriber messages → decoded envelopes → the router. Runs until the node stops.
async fn forward(redis: RedisConn, tx: mpsc::Sender<BusEnvelope>, lost: Arc<Notify>) {
    let mut rx = redis.subscriber.message_rx();
    loop {
        let message = match rx.recv().await {
            Ok(m) => m,
            Err(RecvError::Lagged(n)) => {
                // A later message of the same room would reveal the gap; the
                // last ones of a room would wait for it: catch up now.
                tracing::error!(
                    missed = n,
                    "bus receiver lagged; every connection catches up from the history"
                );
                crate::metrics::metrics().bus_receiver_lagged.inc();
                lost.notify_one();
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let Some(bytes) = message.value.as_bytes() else {
            tracing::warn!(channel = %message.channel, "non-binary bus message ignored");
            continue;
        };
        match BusEnvelope::decode(bytes) {
            Ok(envelope) if redis.keys.room_of_channel(&message.channel) == Some(envelope.room) => {
                if tx.send(envelope).await.is_err() {
                    return;
                }
            }
            Ok(_) => {
                tracing::warn!(channel = %message.channel, "envelope for another room ignored")
            }
            Err(e) => {
                tracing::warn!(channel = %message.channel, error = %e, "undecodable bus envelope ignored")
            }
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(e.to_string())
}

#[async_trait]
impl Bus for RedisBus {
    async fn publish(&self, envelope: BusEnvelope) -> Result<(), BusError> {
        self.publish_with_cache(envelope, true).await
    }

    async fn republish(&self, envelope: BusEnvelope) -> Result<(), BusError> {
        self.publish_with_cache(envelope, false).await
    }

    async fn forget_recent(&self, room: RoomId) -> Result<(), BusError> {
        self.redis.forget_recent(room).await.map_err(unavailable)
    }

    async fn subscribe(&self, room: RoomId) -> Result<(), BusError> {
        let channel = self.redis.keys.room_channel(room);
        let sub = &self.redis.subscriber;
        let result = if self.redis.sharded {
            tokio::time::timeout(SUBSCRIBE_TIMEOUT, sub.ssubscribe(channel.clone())).await
        } else {
            // fred resolves SUBSCRIBE once it is written, not when Redis has
            // run it. The caller then reads the history and counts on every
            // later publish arriving live; a PING on the same connection
            // returns only after Redis ran the SUBSCRIBE before it.
            tokio::time::timeout(SUBSCRIBE_TIMEOUT, async {
                sub.subscribe(channel.clone()).await?;
                sub.ping::<fred::types::Value>(None).await.map(drop)
            })
            .await
        };
        match result {
            Ok(Ok(())) => Ok(()),
            other => {
                // A timed-out SUBSCRIBE may still run later: cancel it the same way.
                let _ = self.unsubscribe(room).await;
                Err(match other {
                    Ok(Err(e)) => unavailable(e),
                    _ => unavailable("subscribe timed out"),
                })
            }
        }
    }

    async fn unsubscribe(&self, room: RoomId) -> Result<(), BusError> {
        let channel = self.redis.keys.room_channel(room);
        let sub = &self.redis.subscriber;
        let result = if self.redis.sharded {
            tokio::time::timeout(SUBSCRIBE_TIMEOUT, sub.sunsubscribe(channel)).await
        } else {
            tokio::time::timeout(SUBSCRIBE_TIMEOUT, sub.unsubscribe(channel)).await
        };
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(unavailable(e)),
            Err(_) => Err(unavailable("unsubscribe timed out")),
        }
    }

    fn connected(&self) -> bool {
        self.redis.client.is_connected() && self.redis.subscriber.is_connected()
    }

    async fn ready(&self) -> bool {
        self.redis.ready().await
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}
