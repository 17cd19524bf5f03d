//! The isolation test's REST side: every read a client can make of every
//! room (the room, its history, who is online, its members) and the room
//! listing, checked body and all against the membership the test knows.
//! A private room a client is not in, and a deleted room, must look exactly
//! like a room that never existed.

use crate::helpers::{TestApp, rest};
use crate::isolation_model::Client;
use serde_json::Value;
use std::collections::HashSet;

/// A room as the test knows it.
pub struct Room {
    pub id: i64,
    pub name: String,
    pub private: bool,
    pub deleted: bool,
    /// Clients (by index) with a membership row now.
    pub members: HashSet<usize>,
    /// Clients that ever were members (presence may trail a removal).
    pub ever: HashSet<usize>,
}

impl Room {
    pub fn new(id: i64, name: &str, private: bool, members: HashSet<usize>) -> Room {
        Room {
            id,
            name: name.to_owned(),
            private,
            deleted: false,
            ever: members.clone(),
            members,
        }
    }

    /// Client `c` now has a membership row.
    pub fn add(&mut self, c: usize) {
        self.members.insert(c);
        self.ever.insert(c);
    }

    fn visible_to(&self, c: usize) -> bool {
        !self.deleted && (!self.private || self.members.contains(&c))
    }
}

/// The ids of the clients `users` names (a list of user objects).
fn clients_in(users: &Value, clients_by_id: &dyn Fn(i64) -> Option<usize>) -> HashSet<usize> {
    users
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| clients_by_id(u["id"].as_i64().unwrap()))
        .collect()
}

/// Everything client `c` can read must match what it is entitled to now.
pub async fn check_reads(node: &TestApp, clients: &[Client], c: usize, rooms: &[Room]) {
    let token = &clients[c].token;
    let (status, listing) = node.rooms(token, "limit=100").await;
    assert_eq!(status, 200);
    let listed: HashSet<i64> = listing["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    for room in rooms.iter() {
        assert_eq!(
            listed.contains(&room.id),
            room.visible_to(c),
            "GET /api/rooms as client {c}: room {} ({}) listed wrongly: {listing}",
            room.id,
            room.name
        );
    }
    for room in rooms.iter() {
        for sub in ["", "/messages", "/online", "/members"] {
            let path = format!("/api/rooms/{}{sub}", room.id);
            let (status, body) = rest(node, "GET", &path, token, None).await;
            if !room.visible_to(c) {
                assert_eq!(status, 404, "GET {path} as client {c}: {body}");
                assert_eq!(body["error"]["code"], "not_found", "GET {path}: {body}");
                assert!(
                    !body.to_string().contains(&room.name),
                    "GET {path} as client {c} names the room: {body}"
                );
                continue;
            }
            assert_eq!(status, 200, "GET {path} as client {c}: {body}");
            match sub {
                "" => assert_eq!(body["name"], room.name.as_str()),
                "/messages" => {
                    for m in body["messages"].as_array().unwrap() {
                        assert_eq!(
                            m["room_id"], room.id,
                            "GET {path}: a row of another room: {m}"
                        );
                    }
                }
                _ => {}
            }
        }
    }
    check_people(node, clients, c, rooms).await;
}

/// The user lists of `/members` (exactly the members) and `/online` (no one
/// who never was a member: presence may trail a removal by a moment).
async fn check_people(node: &TestApp, clients: &[Client], viewer: usize, rooms: &[Room]) {
    let by_id = |id: i64| clients.iter().position(|c| c.user_id == id);
    for room in rooms.iter().filter(|r| r.visible_to(viewer)) {
        let token = &clients[viewer].token;
        let path = format!("/api/rooms/{}/members", room.id);
        let (_, body) = node.members(token, room.id).await;
        let users: Vec<Value> = body["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["user"].clone())
            .collect();
        assert_eq!(
            clients_in(&Value::Array(users), &by_id),
            room.members,
            "GET {path}: the members are not the room's members"
        );
        let path = format!("/api/rooms/{}/online", room.id);
        let (_, body) = node.online(token, room.id).await;
        let online = clients_in(&body["users"], &by_id);
        assert!(
            online.is_subset(&room.ever),
            "GET {path}: someone online who never was a member: {online:?} vs {:?}",
            room.ever
        );
    }
}
