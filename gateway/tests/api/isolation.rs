//! Isolation, tested like an attacker: many users, public and private rooms,
//! random joins, leaves, kicks, re-adds and messages over several nodes (in
//! cluster mode); every frame every client receives is checked against what
//! that client is entitled to at that moment. Zero leaks allowed.

use crate::helpers::{TestApp, WsClient, spawn_nodes};
use futures_util::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// What one client may receive, as its own frames tell it.
#[derive(Default)]
struct Entitlement {
    /// Rooms this connection is in (after `online_users`, until `left_room`).
    joined: HashSet<i64>,
    /// Rooms it asked to join and has no answer for yet: room frames may precede `online_users`.
    pending: HashSet<i64>,
    violations: Vec<String>,
    room_frames: usize,
}

fn check(ent: &mut Entitlement, frame: &Value) {
    let Some(room) = frame["room_id"].as_i64() else {
        return;
    };
    match frame["type"].as_str().unwrap_or_default() {
        "online_users" => {
            ent.pending.remove(&room);
            ent.joined.insert(room);
        }
        "left_room" => {
            if !ent.joined.remove(&room) {
                ent.violations
                    .push(format!("left_room for a room it was not in: {frame}"));
            }
        }
        "error" => {
            ent.pending.remove(&room);
        }
        _ => {
            ent.room_frames += 1;
            if !ent.joined.contains(&room) && !ent.pending.contains(&room) {
                ent.violations
                    .push(format!("frame of room {room} it is not in: {frame}"));
            }
        }
    }
}

struct Client {
    user_id: i64,
    token: String,
    sink: futures_util::stream::SplitSink<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        Message,
    >,
    ent: Arc<Mutex<Entitlement>>,
}

impl Client {
    async fn start(ws: WsClient, user_id: i64, token: String) -> Client {
        let (sink, mut stream) = ws.stream.split();
        let ent = Arc::new(Mutex::new(Entitlement::default()));
        ent.lock().unwrap().pending.insert(1);
        let reader = Arc::clone(&ent);
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                if let Message::Text(t) = msg {
                    let frame: Value = serde_json::from_str(&t).unwrap();
                    check(&mut reader.lock().unwrap(), &frame);
                }
            }
        });
        Client {
            user_id,
            token,
            sink,
            ent,
        }
    }

    async fn send(&mut self, v: Value) {
        self.sink.send(Message::text(v.to_string())).await.unwrap();
    }

    async fn join(&mut self, room: i64) {
        self.ent.lock().unwrap().pending.insert(room);
        self.send(json!({"type": "join_room", "room_id": room}))
            .await;
    }
}

async fn rest(app: &TestApp, method: &str, path: &str, token: &str, body: Option<Value>) -> u16 {
    let mut req = app
        .http
        .request(method.parse().unwrap(), app.url(path))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn no_frame_presence_or_history_leaks_to_non_members() {
    let nodes = spawn_nodes(3).await;
    const USERS: usize = 8;
    let mut clients = Vec::new();
    for i in 0..USERS {
        let node = &nodes[i % nodes.len()];
        let (id, token) = node.register(&format!("iso{i}")).await;
        let ws = node.ws(&token, "").await;
        clients.push(Client::start(ws, id, token).await);
    }
    let owner = clients[0].token.clone();
    let mut private = Vec::new();
    let mut public = vec![1];
    for (name, is_private) in [
        ("pub-a", false),
        ("priv-a", true),
        ("priv-b", true),
        ("pub-b", false),
    ] {
        let resp = nodes[0]
            .http
            .post(nodes[0].url("/api/rooms"))
            .bearer_auth(&owner)
            .json(&json!({"name": name, "is_private": is_private}))
            .send()
            .await
            .unwrap();
        let id = resp.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
        if is_private {
            private.push(id)
        } else {
            public.push(id)
        }
    }
    // Private membership as the test believes it (user 0 owns both private rooms).
    let mut members: Vec<HashSet<usize>> = private.iter().map(|_| HashSet::from([0])).collect();

    let mut rng = StdRng::seed_from_u64(0x1501_a7e0);
    for step in 0..200 {
        let u = rng.random_range(0..USERS);
        let node = &nodes[rng.random_range(0..nodes.len())];
        match rng.random_range(0..10) {
            0..=3 => {
                let room = *[public.as_slice(), private.as_slice()]
                    .concat()
                    .get(rng.random_range(0..public.len() + private.len()))
                    .unwrap();
                let in_room = clients[u].ent.lock().unwrap().joined.contains(&room);
                if in_room {
                    clients[u].send(json!({"type": "message", "room_id": room, "content": format!("step {step}")})).await;
                }
            }
            4 | 5 => {
                let all: Vec<i64> = [public.as_slice(), private.as_slice()].concat();
                let room = all[rng.random_range(0..all.len())];
                clients[u].join(room).await;
            }
            6 => {
                let joined: Vec<i64> = clients[u]
                    .ent
                    .lock()
                    .unwrap()
                    .joined
                    .iter()
                    .copied()
                    .filter(|r| *r != 1)
                    .collect();
                if let Some(room) = joined.first() {
                    clients[u]
                        .send(json!({"type": "leave_room", "room_id": room}))
                        .await;
                }
            }
            7 | 8 => {
                let p = rng.random_range(0..private.len());
                if u == 0 {
                    continue;
                }
                let path = format!("/api/rooms/{}/members", private[p]);
                if members[p].contains(&u) {
                    let status = rest(
                        node,
                        "DELETE",
                        &format!("{path}/{}", clients[u].user_id),
                        &owner,
                        None,
                    )
                    .await;
                    assert_eq!(status, 204, "kick");
                    members[p].remove(&u);
                } else {
                    let status = rest(
                        node,
                        "POST",
                        &path,
                        &owner,
                        Some(json!({"user_id": clients[u].user_id})),
                    )
                    .await;
                    assert!(status == 201 || status == 200, "add: {status}");
                    members[p].insert(u);
                }
            }
            _ => {
                // REST reads of every private room: only members see them.
                for (p, room) in private.iter().enumerate() {
                    for path in ["", "/messages", "/online", "/members"] {
                        let status = rest(
                            node,
                            "GET",
                            &format!("/api/rooms/{room}{path}"),
                            &clients[u].token,
                            None,
                        )
                        .await;
                        let expected = if members[p].contains(&u) { 200 } else { 404 };
                        assert_eq!(status, expected, "GET /api/rooms/{room}{path} as user {u}");
                    }
                }
            }
        }
        if step % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut checked = 0;
    for (i, c) in clients.iter().enumerate() {
        let ent = c.ent.lock().unwrap();
        assert!(
            ent.violations.is_empty(),
            "client {i} saw: {:#?}",
            ent.violations
        );
        checked += ent.room_frames;
        // A client in a private room must be a member of it.
        for (p, room) in private.iter().enumerate() {
            if ent.joined.contains(room) {
                assert!(
                    members[p].contains(&i),
                    "client {i} is still in private room {room} after losing membership"
                );
            }
        }
    }
    assert!(
        checked > 100,
        "the scenario exercised too little: {checked} room frames"
    );
}
