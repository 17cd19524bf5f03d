//! Node-local claims: the cap holds per node (the embedded default has one).

use super::{Unavailable, UserConns};
use async_trait::async_trait;
use shared::ids::{ConnKey, UserId};
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct MemoryUserConns {
    /// std Mutex: map work only, never held across `.await`. Per user, its
    /// connections: a few at most (`limits.max_connections_per_user`),
    /// held by every connection, so a vector of exactly that many, not a
    /// set's smallest table. Keys, not ids: in tests several in-process
    /// nodes share one.
    users: Mutex<HashMap<UserId, Vec<ConnKey>>>,
}

#[async_trait]
impl UserConns for MemoryUserConns {
    async fn claim(&self, user: UserId, conn: &ConnKey, max: usize) -> Result<bool, Unavailable> {
        let mut users = self.users.lock().expect("user conns lock");
        let conns = users.entry(user).or_default();
        if conns.contains(conn) {
            return Ok(true);
        }
        if conns.len() >= max {
            if conns.is_empty() {
                users.remove(&user);
            }
            return Ok(false);
        }
        conns.reserve_exact(1);
        conns.push(conn.clone());
        Ok(true)
    }

    async fn release(&self, user: UserId, conn: &ConnKey) {
        let mut users = self.users.lock().expect("user conns lock");
        if let Some(conns) = users.get_mut(&user) {
            conns.retain(|c| c != conn);
            if conns.is_empty() {
                users.remove(&user);
            }
        }
    }

    async fn refresh(&self) -> Result<(), Unavailable> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::ids::{ConnId, NodeId};

    fn key(n: u64) -> ConnKey {
        ConnKey {
            node: NodeId("n1".into()),
            conn: ConnId(n),
        }
    }

    #[tokio::test]
    async fn caps_and_releases() {
        let r = MemoryUserConns::default();
        let u = UserId(7);
        assert!(r.claim(u, &key(1), 2).await.unwrap());
        assert!(r.claim(u, &key(2), 2).await.unwrap());
        assert!(!r.claim(u, &key(3), 2).await.unwrap());
        assert!(r.claim(UserId(8), &key(3), 2).await.unwrap(), "per user");
        r.release(u, &key(1)).await;
        assert!(r.claim(u, &key(3), 2).await.unwrap());
        r.release(u, &key(2)).await;
        r.release(u, &key(3)).await;
        assert!(
            r.users.lock().unwrap().get(&u).is_none(),
            "no empty entries left"
        );
    }
}
