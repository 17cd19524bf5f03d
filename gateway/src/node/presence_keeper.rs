//! The presence keeper: every TTL/3 (and right after the Redis command
//! connection reconnects) the node re-asserts the presence entries of its
//! connections and prunes the expired entries of dead nodes, announcing
//! `user_left` for users who are gone and `user_joined` for users who
//! reappear (after Redis lost its data). It also runs the refill: every
//! connection catches up from the history once the subscriber is receiving
//! again (re-subscription confirmed, or after falling behind).

use super::Node;
use shared::bus_envelope::BusEvent;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

impl Node {
    pub async fn run_presence_keeper(
        self: Arc<Self>,
        every: Duration,
        reassert: Arc<Notify>,
        refill: Arc<Notify>,
        stop: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = reassert.notified() => {
                    tracing::info!("Redis reconnected: re-asserting presence");
                }
                _ = refill.notified() => {
                    // Rung only when the subscriber receives again: anything
                    // published after this history read arrives live.
                    tracing::info!("re-subscribed or fell behind: every connection catches up from the history");
                    self.refill_all();
                    continue;
                }
                _ = stop.cancelled() => return,
            }
            self.keep_presence().await;
        }
    }

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
            match self.presence.prune(room).await {
                Ok(gone) => {
                    for user_id in gone {
                        tracing::info!(room = %room, user_id = %user_id, "presence expired");
                        let _ = self.publish(room, BusEvent::UserLeft { user_id }).await;
                    }
                }
                Err(e) => tracing::warn!(room = %room, error = %e, "presence prune failed"),
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
}
