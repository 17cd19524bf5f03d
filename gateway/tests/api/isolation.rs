//! Isolation, tested like an attacker: many users over several nodes (in
//! cluster mode), public and private rooms, random joins (also of rooms one
//! may not enter), leaves, kicks from public and private rooms, re-adds, two
//! room deletions, and messages over both WebSocket and REST, the latter
//! sent right after each removal's 204. Every message every client received
//! is judged against the server-side membership when it was stored (see
//! `isolation_model`), and REST reads against the membership at that moment
//! (see `isolation_reads`). Zero leaks allowed.

use crate::helpers::rest;
use crate::helpers::{TestApp, WAIT, spawn_nodes};
use crate::isolation_model::{Client, Forbidden, judge, newest_seq};
use crate::isolation_reads::{Room, check_reads};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;

const USERS: usize = 8;
const STEPS: usize = 240;
/// The steps at which the owner deletes a room (while members are in it).
const DELETIONS: [(usize, &str); 2] = [(80, "doomed-pub"), (160, "doomed-priv")];

async fn create(app: &TestApp, owner: &str, name: &str, private: bool) -> i64 {
    let body = json!({"name": name, "is_private": private});
    let (status, room) = app.create_room_raw(owner, body).await;
    assert_eq!(status, 201);
    room["id"].as_i64().unwrap()
}

/// Remove client `u` from `rooms[r]` (a kick by the owner, or its own REST
/// leave), record from which seq on it must get nothing, and send a message
/// to the room at once, the way a racing sender would.
async fn remove(
    nodes: &[TestApp],
    rng: &mut StdRng,
    clients: &[Client],
    rooms: &mut [Room],
    forbidden: &mut Forbidden,
    (u, r, kick): (usize, usize, bool),
) {
    let node = &nodes[rng.random_range(0..nodes.len())];
    let room = rooms[r].id;
    let before = newest_seq(node, room).await;
    let (method, path, token) = if kick {
        let path = format!("/api/rooms/{room}/members/{}", clients[u].user_id);
        ("DELETE", path, &clients[0].token)
    } else {
        (
            "POST",
            format!("/api/rooms/{room}/leave"),
            &clients[u].token,
        )
    };
    assert_eq!(
        rest(node, method, &path, token, None).await.0,
        204,
        "{method} {path}"
    );
    let after = newest_seq(node, room).await;
    forbidden.open(u, room, after);
    rooms[r].members.remove(&u);
    if after > before {
        eprintln!(
            "[isolation] room {room}: seq {before}..={after} stored during a removal (not judged)"
        );
    }
    let sender = &nodes[rng.random_range(0..nodes.len())];
    let body = json!({"content": format!("right after removing client {u}")});
    let (status, _) = sender.post_message(&clients[0].token, room, body).await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn no_frame_presence_or_history_leaks_to_non_members() {
    let nodes = spawn_nodes(3).await;
    let mut clients = Vec::new();
    for i in 0..USERS {
        let node = &nodes[i % nodes.len()];
        let (id, token) = node.register(&format!("iso{i}")).await;
        let ws = node.ws(&token, "").await;
        clients.push(Client::start(ws, id, token));
    }
    let owner = clients[0].token.clone();
    let everyone: HashSet<usize> = (0..USERS).collect();
    let mut rooms = vec![Room::new(1, "general", false, everyone)];
    let mut forbidden = Forbidden::default();
    for (name, private) in [
        ("pub-a", false),
        ("priv-a", true),
        ("priv-b", true),
        ("pub-b", false),
        ("doomed-pub", false),
        ("doomed-priv", true),
    ] {
        let id = create(&nodes[0], &owner, name, private).await;
        rooms.push(Room::new(id, name, private, HashSet::from([0])));
        for c in 1..USERS {
            forbidden.open(c, id, 0);
        }
    }
    let mut rng = StdRng::seed_from_u64(0x1501_a7e0);
    let mut removals = 0;
    for step in 0..STEPS {
        if let Some((_, name)) = DELETIONS.iter().find(|(s, _)| *s == step) {
            let r = rooms.iter().position(|room| room.name == *name).unwrap();
            let node = &nodes[rng.random_range(0..nodes.len())];
            assert_eq!(node.delete_room(&owner, rooms[r].id).await.0, 204);
            rooms[r].deleted = true;
            rooms[r].members.clear();
        }
        let u = rng.random_range(1..USERS);
        let r = rng.random_range(0..rooms.len());
        let room = rooms[r].id;
        let node = &nodes[rng.random_range(0..nodes.len())];
        match rng.random_range(0..12) {
            0..=3 => {
                // From anyone to a room it is in (or thinks it is in).
                let sender = rng.random_range(0..USERS);
                let mut joined: Vec<i64> = clients[sender]
                    .log
                    .lock()
                    .unwrap()
                    .joined
                    .iter()
                    .copied()
                    .collect();
                joined.sort();
                if !joined.is_empty() {
                    let room = joined[rng.random_range(0..joined.len())];
                    let content = format!("step {step} from {sender}");
                    clients[sender]
                        .send(json!({"type": "message", "room_id": room, "content": content}))
                        .await;
                }
            }
            4..=6 => {
                // Public rooms are joined over REST first, so that membership
                // changes only here; a private room only admits its members.
                if !rooms[r].deleted && !rooms[r].private {
                    let token = &clients[u].token;
                    assert_eq!(node.join_room(token, room).await.0, 200);
                    rooms[r].add(u);
                }
                if rooms[r].members.contains(&u) {
                    forbidden.close(u, room, newest_seq(node, room).await);
                }
                clients[u].join(room).await;
                if rooms[r].deleted || !rooms[r].members.contains(&u) {
                    assert!(!clients[u].in_room(room), "client {u} entered room {room}");
                }
            }
            7 if room != 1 && clients[u].in_room(room) => {
                clients[u]
                    .send(json!({"type": "leave_room", "room_id": room}))
                    .await;
            }
            8..=10 if room != 1 && !rooms[r].deleted => {
                if rooms[r].members.contains(&u) {
                    let kick = rng.random_range(0..3) > 0;
                    let (nodes, rooms, f) = (&nodes, &mut rooms, &mut forbidden);
                    remove(nodes, &mut rng, &clients, rooms, f, (u, r, kick)).await;
                    removals += 1;
                } else if rooms[r].private {
                    let user = clients[u].user_id;
                    let status = node.add_member(&owner, room, user).await.0;
                    assert_eq!(status, 201, "add client {u} to room {room}");
                    rooms[r].add(u);
                }
            }
            _ => check_reads(node, &clients, u, &rooms).await,
        }
        if step % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Let what is in flight arrive: a last message in room 1, which no
    // client ever leaves, sent after every step, must reach every client.
    let before = newest_seq(&nodes[0], 1).await;
    clients[0]
        .send(json!({"type": "message", "room_id": 1, "content": "the last one"}))
        .await;
    let last = crate::eventually::eventually(WAIT, "the last message stored", || async {
        let newest = newest_seq(&nodes[0], 1).await;
        if newest > before {
            Ok(newest)
        } else {
            Err(format!("newest seq {newest}"))
        }
    })
    .await;
    crate::eventually::eventually(WAIT, "the last message at every client", || async {
        let behind: Vec<usize> = (0..USERS)
            .filter(|&u| {
                let log = clients[u].log.lock().unwrap();
                !log.messages
                    .iter()
                    .any(|&(room, seq, _)| room == 1 && seq >= last)
            })
            .collect();
        if behind.is_empty() {
            Ok(())
        } else {
            Err(format!("clients without it: {behind:?}"))
        }
    })
    .await;
    for u in 0..USERS {
        check_reads(&nodes[u % nodes.len()], &clients, u, &rooms).await;
    }
    let (judged, leaks) = judge(&clients, &forbidden);
    assert!(leaks.is_empty(), "leaks: {leaks:#?}");
    for (c, client) in clients.iter().enumerate() {
        let log = client.log.lock().unwrap();
        for room in &rooms {
            if log.joined.contains(&room.id) {
                assert!(
                    !room.deleted && room.members.contains(&c),
                    "client {c} is still in room {} ({}) without being a member",
                    room.id,
                    room.name
                );
            }
        }
    }
    eprintln!("[isolation] {judged} messages judged, {removals} removals");
    assert!(
        judged > 150 && removals > 10,
        "the scenario exercised too little: {judged} messages, {removals} removals"
    );
}
