//! The presence keeper. Its jobs, on their own clocks and signals:
//! - every TTL/3 (and right after the Redis command connection reconnects)
//!   the node re-asserts the presence entries of its connections, announcing
//!   `user_joined` for users who reappear (after Redis lost its data);
//! - every `min(TTL/3, 2 s)` it prunes the expired entries of dead nodes and
//!   announces `user_left` for users who are gone. Pruning on its own short
//!   clock bounds how long a killed node's users linger (and are counted by
//!   `online_count`) to the TTL plus ~2 s, instead of the TTL plus TTL/3;
//! - the refill: every connection catches up from the history once the
//!   subscriber is receiving again (re-subscription confirmed, or after
//!   falling behind).

use super::Node;
use shared::bus_envelope::BusEvent;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The longest a dead node's expired entries wait for a prune.
const PRUNE_AT_MOST_EVERY: Duration = Duration::from_secs(2);

impl Node {
    /// `refresh_every` is TTL/3; the prune interval is derived from it.
    pub async fn run_presence_keeper(
        self: Arc<Self>,
        refresh_every: Duration,
        reassert: Arc<Notify>,
        refill: Arc<Notify>,
        stop: CancellationToken,
    ) {
        let mut refresh = tokio::time::interval(refresh_every);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut prune = tokio::time::interval(prune_every(refresh_every));
        prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = refresh.tick() => self.keep_presence().await,
                _ = prune.tick() => self.prune_presence().await,
                _ = reassert.notified() => {
                    tracing::info!("Redis reconnected: re-asserting presence");
                    self.keep_presence().await;
                }
                _ = refill.notified() => {
                    // Rung only when the subscriber receives again: anything
                    // published after this history read arrives live.
                    tracing::info!("re-subscribed or fell behind: every connection catches up from the history");
                    self.refill_all();
                }
                _ = stop.cancelled() => return,
            }
        }
    }

    /// Re-assert this node's entries in every room it has members in, and
    /// refresh the gauges.
    async fn keep_presence(&self) {
        let (mut connections, mut users) = (0, 0);
        for room in self.hub.rooms() {
            let refreshed = {
                // Under the room's lock, so a connection leaving right now is
                // not re-added from a stale list.
                let _room = self.room_locks.lock(room).await;
                let entries: Vec<_> = self
                    .hub
                    .members(room)
                    .iter()
                    .map(|c| (c.key().clone(), c.user().clone()))
                    .collect();
                self.presence.refresh(room, &entries).await
            };
            match refreshed {
                Ok(back) => {
                    for user in back {
                        let _ = self
                            .publish(room, BusEvent::UserJoined { user, skip: None })
                            .await;
                    }
                }
                Err(e) => {
                    tracing::warn!(room = %room, error = %e, "presence refresh failed");
                    continue;
                }
            }
            if let Ok(c) = self.presence.counts(room).await {
                connections += c.connections;
                users += c.users;
            }
        }
        if let Err(e) = self.user_conns.refresh().await {
            tracing::warn!(error = %e, "connection claims not refreshed");
        }
        let m = crate::metrics::metrics();
        m.presence_store_connections.set(connections as i64);
        m.presence_store_users.set(users as i64);
    }

    /// Drop expired entries (of dead nodes) in every room this node has
    /// members in, and tell the room who left. The prune script is atomic, so
    /// when several nodes prune the same room each gone user is reported by
    /// exactly one of them.
    async fn prune_presence(&self) {
        for room in self.hub.rooms() {
            match self.presence.prune(room).await {
                Ok(gone) => {
                    for user_id in gone {
                        tracing::info!(room = %room, user_id = %user_id, "presence expired");
                        let _ = self.publish(room, BusEvent::UserLeft { user_id }).await;
                    }
                }
                Err(e) => tracing::warn!(room = %room, error = %e, "presence prune failed"),
            }
        }
    }
}

fn prune_every(refresh_every: Duration) -> Duration {
    refresh_every
        .min(PRUNE_AT_MOST_EVERY)
        .max(Duration::from_millis(100))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_runs_at_most_two_seconds_apart() {
        assert_eq!(prune_every(Duration::from_secs(20)), Duration::from_secs(2));
        assert_eq!(prune_every(Duration::from_secs(1)), Duration::from_secs(1));
        assert_eq!(prune_every(Duration::ZERO), Duration::from_millis(100));
    }
}
