//! In-process presence for a single node. Entries need no TTL here: the node
//! that holds a connection is the node that removes it, and it cannot die
//! without taking the presence table with it.

use super::{OnlineList, Presence, PresenceCounts, PresenceError};
use async_trait::async_trait;
use shared::ids::{ConnKey, RoomId, UserId};
use shared::server_frame::UserPublic;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

#[derive(Default)]
struct RoomPresence {
    conns: HashMap<ConnKey, UserId>,
    /// user → (profile, number of connections); BTreeMap gives the id order.
    users: BTreeMap<UserId, (UserPublic, usize)>,
}

#[derive(Default)]
pub struct MemoryPresence {
    /// std Mutex: map work only, never held across `.await`.
    rooms: Mutex<HashMap<RoomId, RoomPresence>>,
}

#[async_trait]
impl Presence for MemoryPresence {
    async fn add(
        &self,
        room: RoomId,
        conn: &ConnKey,
        user: &UserPublic,
    ) -> Result<bool, PresenceError> {
        let mut rooms = self.rooms.lock().expect("presence lock");
        let r = rooms.entry(room).or_default();
        if r.conns.insert(conn.clone(), user.id).is_some() {
            return Ok(false);
        }
        let entry = r.users.entry(user.id).or_insert_with(|| (user.clone(), 0));
        entry.1 += 1;
        Ok(entry.1 == 1)
    }

    async fn remove(
        &self,
        room: RoomId,
        conn: &ConnKey,
        user: UserId,
    ) -> Result<bool, PresenceError> {
        let mut rooms = self.rooms.lock().expect("presence lock");
        let Some(r) = rooms.get_mut(&room) else {
            return Ok(false);
        };
        if r.conns.remove(conn).is_none() {
            return Ok(false);
        }
        let last = match r.users.get_mut(&user) {
            Some(entry) if entry.1 > 1 => {
                entry.1 -= 1;
                false
            }
            Some(_) => {
                r.users.remove(&user);
                true
            }
            None => false,
        };
        if r.conns.is_empty() {
            rooms.remove(&room);
        }
        Ok(last)
    }

    async fn counts(&self, room: RoomId) -> Result<PresenceCounts, PresenceError> {
        let rooms = self.rooms.lock().expect("presence lock");
        Ok(rooms
            .get(&room)
            .map(|r| PresenceCounts {
                connections: r.conns.len() as u64,
                users: r.users.len() as u64,
            })
            .unwrap_or_default())
    }

    async fn users(&self, room: RoomId, max: usize) -> Result<OnlineList, PresenceError> {
        let rooms = self.rooms.lock().expect("presence lock");
        Ok(rooms
            .get(&room)
            .map(|r| OnlineList {
                users: r.users.values().take(max).map(|(u, _)| u.clone()).collect(),
                total: r.users.len() as u64,
            })
            .unwrap_or_default())
    }

    /// Entries live exactly as long as their connections: nothing to refresh.
    async fn refresh(
        &self,
        _room: RoomId,
        _entries: &[(ConnKey, UserPublic)],
    ) -> Result<Vec<UserPublic>, PresenceError> {
        Ok(Vec::new())
    }

    /// Nothing expires in-process.
    async fn prune(&self, _room: RoomId) -> Result<Vec<UserId>, PresenceError> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::ids::{ConnId, NodeId};

    fn key(n: u64) -> ConnKey {
        ConnKey {
            node: NodeId("a".into()),
            conn: ConnId(n),
        }
    }
    fn user(id: i64) -> UserPublic {
        UserPublic {
            id: UserId(id),
            username: format!("u{id}"),
            nickname: "n".into(),
        }
    }

    #[tokio::test]
    async fn first_and_last_connection_of_a_user() {
        let p = MemoryPresence::default();
        let room = RoomId(1);
        assert!(p.add(room, &key(1), &user(5)).await.unwrap());
        assert!(!p.add(room, &key(2), &user(5)).await.unwrap(), "second tab");
        assert!(p.add(room, &key(3), &user(2)).await.unwrap());
        assert_eq!(
            p.users(room, 10).await.unwrap().users,
            vec![user(2), user(5)]
        );
        assert_eq!(
            p.users(room, 1).await.unwrap(),
            OnlineList {
                users: vec![user(2)],
                total: 2
            }
        );
        assert!(!p.remove(room, &key(1), UserId(5)).await.unwrap());
        assert!(p.remove(room, &key(2), UserId(5)).await.unwrap());
        assert!(
            !p.remove(room, &key(2), UserId(5)).await.unwrap(),
            "idempotent"
        );
        assert!(p.remove(room, &key(3), UserId(2)).await.unwrap());
        assert!(p.users(room, 10).await.unwrap().users.is_empty());
        assert!(
            p.rooms.lock().unwrap().is_empty(),
            "empty rooms are dropped"
        );
    }
}
