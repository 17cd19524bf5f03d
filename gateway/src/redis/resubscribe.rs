//! Re-subscribing after the subscriber connection came back, and telling the
//! node when Redis has run it.
//!
//! fred's own `manage_subscriptions` re-subscribes from a task of its own and
//! tells nobody when it is done. The node refilled every connection from the
//! history at the reconnect itself, so a message published after that read
//! but before the SUBSCRIBE took effect was missed live and absent from the
//! refill: it arrived only when a later message revealed the gap, and the
//! last message of a room never did. Here the refill is rung only once Redis
//! has confirmed the re-subscription: a PING answered on the subscriber
//! connection comes after the SUBSCRIBE before it (as in
//! `bus::redis::RedisBus::subscribe`). Everything published after that point
//! arrives live; everything before it is in the history the refill reads.

use super::RedisConn;
use fred::prelude::*;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::sync::broadcast::error::RecvError;

/// One re-subscription attempt, SUBSCRIBE and its confirmation.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between failed attempts while the connection stays up.
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// Run until the node stops: after every reconnect of the subscriber
/// connection, re-subscribe every tracked channel, wait for Redis to confirm,
/// then ring `resubscribed` (the node refills its connections from the history).
pub async fn run(redis: RedisConn, resubscribed: Arc<Notify>) {
    let mut reconnects = redis.subscriber.reconnect_rx();
    loop {
        match reconnects.recv().await {
            // Several reconnects in a row: one re-subscription covers them.
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
        crate::metrics::metrics().bus_reconnects.inc();
        loop {
            match tokio::time::timeout(ATTEMPT_TIMEOUT, resubscribe(&redis)).await {
                Ok(Ok(channels)) => {
                    tracing::info!(channels, "re-subscribed after a reconnect");
                    resubscribed.notify_one();
                    break;
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "re-subscription failed"),
                Err(_) => tracing::warn!("re-subscription timed out"),
            }
            if !redis.subscriber.is_connected() {
                // Gone again: the next reconnect starts over.
                break;
            }
            tokio::time::sleep(RETRY_AFTER).await;
        }
    }
}

/// SUBSCRIBE (or SSUBSCRIBE) every tracked channel; returns how many once
/// Redis has run them.
async fn resubscribe(redis: &RedisConn) -> FredResult<usize> {
    let sub = &redis.subscriber;
    if redis.sharded {
        // Each room's channel has a slot of its own: one SSUBSCRIBE each,
        // answered by the shard that owns it.
        let channels = sub.tracked_shard_channels();
        for channel in &channels {
            sub.ssubscribe(channel.to_string()).await?;
        }
        return Ok(channels.len());
    }
    let channels: Vec<String> = sub
        .tracked_channels()
        .into_iter()
        .map(|c| c.to_string())
        .collect();
    if !channels.is_empty() {
        sub.subscribe(channels.clone()).await?;
    }
    // fred resolves SUBSCRIBE once written; the PING's answer follows Redis
    // running it.
    sub.ping::<Value>(None).await?;
    Ok(channels.len())
}
