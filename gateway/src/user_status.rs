//! `users.is_online` / `last_seen`, kept as protocol v1 has them but off the hot path:
//! connects and disconnects only mark a user in a coalescing map, and one
//! background task writes the latest state per user. A user who reconnects
//! ten times in a second costs at most a couple of database writes, and the
//! map holds at most one entry per user, so it is bounded.

use crate::store::Store;
use chrono::{DateTime, Utc};
use shared::ids::UserId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
pub struct UserStatus {
    /// Open connections per user on this node. std Mutex, never held across `.await`.
    counts: Mutex<HashMap<UserId, usize>>,
    /// Latest unwritten state per user.
    pending: Mutex<HashMap<UserId, (bool, DateTime<Utc>)>>,
    wake: Notify,
}

impl UserStatus {
    pub fn connected(&self, user: UserId) {
        let first = {
            let mut counts = self.counts.lock().expect("status lock");
            let n = counts.entry(user).or_insert(0);
            *n += 1;
            *n == 1
        };
        if first {
            crate::metrics::metrics().presence_users.inc();
            self.mark(user, true);
        }
    }

    pub fn disconnected(&self, user: UserId) {
        let last = {
            let mut counts = self.counts.lock().expect("status lock");
            match counts.get_mut(&user) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                Some(_) => {
                    counts.remove(&user);
                    true
                }
                None => false,
            }
        };
        if last {
            crate::metrics::metrics().presence_users.dec();
            self.mark(user, false);
        }
    }

    fn mark(&self, user: UserId, online: bool) {
        self.pending
            .lock()
            .expect("status lock")
            .insert(user, (online, crate::clock::now()));
        self.wake.notify_one();
    }

    /// Write pending states until `stop`, then write what is left once more.
    pub async fn run(self: Arc<Self>, store: Store, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = self.wake.notified() => self.flush(&store).await,
                _ = stop.cancelled() => break,
            }
        }
        self.flush(&store).await;
    }

    async fn flush(&self, store: &Store) {
        let batch: Vec<_> = {
            let mut pending = self.pending.lock().expect("status lock");
            pending
                .drain()
                .map(|(user, (on, at))| (user, on, at))
                .collect()
        };
        if batch.is_empty() {
            return;
        }
        if let Err(e) = store.set_users_online(&batch).await {
            tracing::warn!(users = batch.len(), error = %e, "could not record online status");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ten connections of one user coalesce into one pending entry; the
    /// flag follows the first connect and the last disconnect only; and a
    /// stop writes what is still pending.
    #[tokio::test]
    async fn reconnects_coalesce_and_a_stop_writes_what_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
        let store = Store::connect(&url, 2).await.unwrap();
        store.migrate().await.unwrap();
        let user = store
            .create_user("s", "h", "S", crate::clock::now())
            .await
            .unwrap()
            .id;
        let online =
            |store: Store| async move { store.find_user(user).await.unwrap().unwrap().is_online };
        let status = Arc::new(UserStatus::default());
        for _ in 0..10 {
            status.connected(user);
        }
        for _ in 0..9 {
            status.disconnected(user);
        }
        assert_eq!(
            status.pending.lock().unwrap().len(),
            1,
            "one entry per user"
        );
        // Not written yet: the writer is not running.
        assert!(!online(store.clone()).await);
        let stop = CancellationToken::new();
        stop.cancel();
        // Stopped before it started: it still writes what is pending.
        Arc::clone(&status).run(store.clone(), stop).await;
        assert!(online(store.clone()).await, "one connection is still open");
        status.disconnected(user);
        let stop = CancellationToken::new();
        stop.cancel();
        Arc::clone(&status).run(store.clone(), stop).await;
        assert!(!online(store.clone()).await, "the last one closed");
        assert!(status.pending.lock().unwrap().is_empty());
    }
}
