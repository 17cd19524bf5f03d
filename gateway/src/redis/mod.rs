//! The Redis connection of a cluster-mode node, shared by the bus and
//! presence: one command client and one subscriber client (`fred`), both
//! reconnecting forever with backoff, commands bounded by a timeout so
//! nothing hangs while Redis is down, and key/channel names in one place.
//!
//! One server, a Redis Cluster or a primary found through Sentinel, each
//! over TLS with a `rediss...` URL (`tls`): the URL's scheme says which
//! (`config::RedisScheme`), fred does the rest.
//!
//! Keys and channels carry a hash tag per room (`{room:N}`), so everything
//! of one room lives on one Redis Cluster slot: Lua scripts over a room's
//! keys, and sharded pub/sub of its channel, work on a cluster.

pub mod keys;
pub mod resubscribe;
pub mod tls;

use crate::config::RedisSettings;
use fred::clients::SubscriberClient;
use fred::prelude::*;
use fred::types::config::{PerformanceConfig, ReconnectPolicy};
use fred::types::scripts::Script;
use shared::ids::RoomId;
use std::time::Duration;

/// How long one Redis command may take before it fails with `unavailable`.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Messages buffered between the subscriber connection and the node's router.
const SUBSCRIBER_BUFFER: usize = 16 * 1024;

#[derive(Clone)]
pub struct RedisConn {
    pub client: Client,
    pub subscriber: SubscriberClient,
    pub keys: keys::Keys,
    pub sharded: bool,
}

impl RedisConn {
    pub async fn connect(settings: &RedisSettings) -> anyhow::Result<Self> {
        let url = settings
            .url
            .as_ref()
            .expect("cluster mode needs redis.url")
            .expose();
        let scheme = crate::config::RedisScheme::of(url).expect("validated with the settings");
        let mut config = Config::from_url(&tls::without_tls_scheme(url))
            .map_err(|e| anyhow::anyhow!("redis.url (CHAT__REDIS__URL): {e}"))?;
        if scheme.tls {
            config.tls = Some(tls::config(settings.tls_ca_file.as_deref())?);
        }
        let mut builder = Builder::from_config(config);
        builder
            .with_performance_config(|p: &mut PerformanceConfig| {
                p.default_command_timeout = COMMAND_TIMEOUT;
                p.broadcast_channel_capacity = SUBSCRIBER_BUFFER;
            })
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_secs(2);
                c.internal_command_timeout = COMMAND_TIMEOUT;
                c.max_command_attempts = 2;
            })
            // Never give up: 0 attempts = unlimited; 100 ms doubling to 2 s.
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 2000, 2));
        let client = builder.build()?;
        let subscriber = builder.build_subscriber_client()?;
        client
            .init()
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to Redis: {e}"))?;
        subscriber
            .init()
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to Redis: {e}"))?;
        // Re-subscribing after a reconnect is `resubscribe::run`'s job, not
        // fred's `manage_subscriptions`: the node must know when it is done.
        Ok(RedisConn {
            client,
            subscriber,
            keys: keys::Keys::new(&settings.key_prefix),
            sharded: settings.sharded_pubsub,
        })
    }

    /// Run a Lua script (EVALSHA, loading it on NOSCRIPT). Fails at once
    /// while the client knows it is disconnected, rather than queueing the
    /// command until Redis is back (a publish reported late is worse than one
    /// reported failed); otherwise bounded by the command timeout.
    /// `op` names the operation in the latency histogram.
    pub async fn eval<R: FromValue>(
        &self,
        op: &'static str,
        script: &Script,
        keys: Vec<String>,
        args: Vec<Value>,
    ) -> FredResult<R> {
        if !self.client.is_connected() {
            return Err(Error::new(ErrorKind::IO, "not connected to Redis"));
        }
        let m = crate::metrics::metrics();
        crate::metrics::timed(&m.redis_seconds, op, self.eval_inner(script, keys, args)).await
    }

    async fn eval_inner<R: FromValue>(
        &self,
        script: &Script,
        keys: Vec<String>,
        args: Vec<Value>,
    ) -> FredResult<R> {
        match script
            .evalsha(&self.client, keys.clone(), args.clone())
            .await
        {
            Err(e) if e.details().starts_with("NOSCRIPT") => {
                script.load(&self.client).await?;
                script.evalsha(&self.client, keys, args).await
            }
            other => other,
        }
    }

    /// Drop `room`'s recent-messages cache (the room was deleted, or the
    /// cache missed an event it cannot get back): pages come from SQL until
    /// it fills again.
    pub async fn forget_recent(&self, room: RoomId) -> Result<(), fred::error::Error> {
        let _: i64 = self.client.del(self.keys.recent(room)).await?;
        Ok(())
    }

    /// Both connections are up and Redis answers a PING.
    pub async fn ready(&self) -> bool {
        if !self.client.is_connected() || !self.subscriber.is_connected() {
            return false;
        }
        matches!(
            tokio::time::timeout(Duration::from_secs(1), self.client.ping::<String>(None)).await,
            Ok(Ok(_))
        )
    }
}
