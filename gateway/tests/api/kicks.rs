//! Removals across nodes (in cluster mode; one node on the embedded
//! default): a kicked user's connections leave the room on every node with
//! `left_room`, and a message sent the moment the kick's 204 returns never
//! reaches them; the same for a public room, and for a room deletion.

use crate::helpers::{TestApp, WsClient, spawn_nodes};
use crate::isolation_reads::rest;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

async fn create_room(app: &TestApp, token: &str, name: &str, private: bool) -> i64 {
    let body = json!({"name": name, "is_private": private});
    let (status, room) = rest(app, "POST", "/api/rooms", token, Some(body)).await;
    assert_eq!(status, 201, "{room}");
    room["id"].as_i64().unwrap()
}

/// `c` enters `room` (it must be allowed to).
async fn enter(c: &mut WsClient, room: i64) {
    c.send_json(json!({"type": "join_room", "room_id": room}))
        .await;
    let online = c.recv_type("online_users").await;
    assert_eq!(online["room_id"], room);
}

/// Frames until `left_room` of `room`: it must say `reason`, and no chat
/// message of the room containing `forbidden` may come before it. Then
/// nothing at all of the room for a while.
async fn expect_left_and_nothing_after(c: &mut WsClient, room: i64, reason: &str, forbidden: &str) {
    loop {
        let f = c.recv_json().await;
        if f["room_id"] != room {
            continue;
        }
        match f["type"].as_str().unwrap() {
            "left_room" => {
                assert_eq!(f["data"]["reason"], reason, "{f}");
                break;
            }
            "message" => assert!(
                !f["data"]["content"].as_str().unwrap().contains(forbidden),
                "got the message sent after the removal, before its left_room: {f}"
            ),
            _ => {}
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
    while let Ok(Some(Ok(msg))) =
        tokio::time::timeout_at(deadline, futures_util::StreamExt::next(&mut c.stream)).await
    {
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            let f: Value = serde_json::from_str(&t).unwrap();
            assert_ne!(
                f["room_id"], room,
                "a frame of room {room} after leaving it: {f}"
            );
        }
    }
}

/// Members entering and leaving `room` on `node` over and over until `stop`:
/// the room's lock there is busy most of the time, as in a lively room, so
/// an eviction that waited for it would lag behind the next message.
async fn churn(
    node: &TestApp,
    owner: &str,
    room: i64,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for i in 0..CROWD {
        let (id, token) = node.register(&format!("crowd{i}")).await;
        let add = json!({"user_id": id});
        let path = format!("/api/rooms/{room}/members");
        assert_eq!(rest(node, "POST", &path, owner, Some(add)).await.0, 201);
        let mut c = node.ws_in_general(&token).await;
        let stop = Arc::clone(&stop);
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                enter(&mut c, room).await;
                c.send_json(json!({"type": "leave_room", "room_id": room}))
                    .await;
                c.recv_type("left_room").await;
            }
        }));
    }
    tasks
}

const CROWD: usize = 6;

#[tokio::test]
async fn a_member_kicked_via_another_node_never_gets_the_next_message() {
    let nodes = spawn_nodes(2).await;
    let (a, b) = (&nodes[0], &nodes[nodes.len() - 1]);
    let (_, owner) = a.register("owner").await;
    let (victim_id, victim) = b.register("victim").await;
    let room = create_room(a, &owner, "inner-circle", true).await;
    let mut o = a.ws(&owner, &format!("&room_id={room}")).await;
    o.recv_type("online_users").await;
    let mut v = b.ws_in_general(&victim).await;
    let stop = Arc::new(AtomicBool::new(false));
    let crowd = churn(b, &owner, room, Arc::clone(&stop)).await;
    let members = format!("/api/rooms/{room}/members");
    for round in 0..10 {
        let add = json!({"user_id": victim_id});
        assert_eq!(rest(a, "POST", &members, &owner, Some(add)).await.0, 201);
        enter(&mut v, room).await;
        let kick = format!("{members}/{victim_id}");
        assert_eq!(rest(a, "DELETE", &kick, &owner, None).await.0, 204);
        // At once, through the node that kicked: the racing sender.
        let content = format!("after kick {round}");
        let post = json!({"content": content});
        let path = format!("/api/rooms/{room}/messages");
        assert_eq!(rest(a, "POST", &path, &owner, Some(post)).await.0, 201);
        expect_left_and_nothing_after(&mut v, room, "kicked", &content).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in crowd {
        t.await.unwrap();
    }
    // The owner's connection saw every one of them.
    for round in 0..10 {
        let m = o.recv_type("message").await;
        assert_eq!(m["data"]["content"], format!("after kick {round}"));
    }
    // Kicking again someone no longer a member is still 404.
    let kick = format!("{members}/{victim_id}");
    assert_eq!(rest(a, "DELETE", &kick, &owner, None).await.0, 404);
}

#[tokio::test]
async fn public_room_kicks_and_deletions_reach_connections_on_every_node() {
    let nodes = spawn_nodes(2).await;
    let (a, b) = (&nodes[0], &nodes[nodes.len() - 1]);
    let (_, owner) = a.register("owner").await;
    let (victim_id, victim) = b.register("victim").await;
    let room = create_room(a, &owner, "town-square", false).await;
    // The victim is in the room twice: through each node.
    let mut v_a = a.ws(&victim, &format!("&room_id={room}")).await;
    let mut v_b = b.ws(&victim, &format!("&room_id={room}")).await;
    v_a.recv_type("online_users").await;
    v_b.recv_type("online_users").await;
    let kick = format!("/api/rooms/{room}/members/{victim_id}");
    assert_eq!(rest(b, "DELETE", &kick, &owner, None).await.0, 204);
    let path = format!("/api/rooms/{room}/messages");
    let post = json!({"content": "after the public kick"});
    assert_eq!(rest(b, "POST", &path, &owner, Some(post)).await.0, 201);
    for c in [&mut v_a, &mut v_b] {
        expect_left_and_nothing_after(c, room, "kicked", "after the public kick").await;
    }
    // A public room may be joined again; then the owner deletes it.
    enter(&mut v_a, room).await;
    enter(&mut v_b, room).await;
    assert_eq!(
        rest(a, "DELETE", &format!("/api/rooms/{room}"), &owner, None)
            .await
            .0,
        204
    );
    for c in [&mut v_a, &mut v_b] {
        expect_left_and_nothing_after(c, room, "room_deleted", "").await;
    }
    let (status, body) = rest(b, "POST", &path, &owner, Some(json!({"content": "x"}))).await;
    assert_eq!(status, 404, "{body}");
    // Deleting it again is 404 (the connections are told again, harmlessly).
    assert_eq!(
        rest(b, "DELETE", &format!("/api/rooms/{room}"), &owner, None)
            .await
            .0,
        404
    );
    v_a.send_json(json!({"type": "join_room", "room_id": room}))
        .await;
    assert_eq!(
        v_a.recv_type("error").await["data"]["code"],
        "room_not_found"
    );
}
