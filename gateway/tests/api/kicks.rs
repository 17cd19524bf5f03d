//! Removals across nodes (in cluster mode; one node on the embedded
//! default): a kicked user's connections leave the room on every node with
//! `left_room`, and a message sent the moment the kick's 204 returns never
//! reaches them; the same for a public room, and for a room deletion.

use crate::helpers::{TestApp, WsClient, spawn_pair};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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
        assert_eq!(node.add_member(owner, room, id).await.0, 201);
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

/// `owner` registered on `a`, `victim` on `b`, and the owner's room `name`:
/// (owner's token, (victim's id, victim's token), room).
async fn scene(
    a: &TestApp,
    b: &TestApp,
    name: &str,
    private: bool,
) -> (String, (i64, String), i64) {
    let (_, owner) = a.register("owner").await;
    let victim = b.register("victim").await;
    let room = a.create_room(&owner, name, private).await;
    (owner, victim, room)
}

#[tokio::test]
async fn a_member_kicked_via_another_node_never_gets_the_next_message() {
    let (a, b) = &spawn_pair().await;
    let (owner, (victim_id, victim), room) = scene(a, b, "inner-circle", true).await;
    let mut o = a.ws_in(&owner, room).await;
    let mut v = b.ws_in_general(&victim).await;
    let stop = Arc::new(AtomicBool::new(false));
    let crowd = churn(b, &owner, room, Arc::clone(&stop)).await;
    for round in 0..10 {
        assert_eq!(a.add_member(&owner, room, victim_id).await.0, 201);
        enter(&mut v, room).await;
        assert_eq!(a.remove_member(&owner, room, victim_id).await.0, 204);
        // At once, through the node that kicked: the racing sender.
        let content = format!("after kick {round}");
        let post = json!({"content": content});
        assert_eq!(a.post_message(&owner, room, post).await.0, 201);
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
    assert_eq!(a.remove_member(&owner, room, victim_id).await.0, 404);
}

#[tokio::test]
async fn public_room_kicks_and_deletions_reach_connections_on_every_node() {
    let (a, b) = &spawn_pair().await;
    let (owner, (victim_id, victim), room) = scene(a, b, "town-square", false).await;
    // The victim is in the room twice: through each node.
    let mut v_a = a.ws(&victim, &format!("&room_id={room}")).await;
    let mut v_b = b.ws(&victim, &format!("&room_id={room}")).await;
    v_a.recv_type("online_users").await;
    v_b.recv_type("online_users").await;
    assert_eq!(b.remove_member(&owner, room, victim_id).await.0, 204);
    let post = json!({"content": "after the public kick"});
    assert_eq!(b.post_message(&owner, room, post).await.0, 201);
    for c in [&mut v_a, &mut v_b] {
        expect_left_and_nothing_after(c, room, "kicked", "after the public kick").await;
    }
    // A public room may be joined again; then the owner deletes it.
    enter(&mut v_a, room).await;
    enter(&mut v_b, room).await;
    assert_eq!(a.delete_room(&owner, room).await.0, 204);
    for c in [&mut v_a, &mut v_b] {
        expect_left_and_nothing_after(c, room, "room_deleted", "").await;
    }
    let (status, body) = b.post_message(&owner, room, json!({"content": "x"})).await;
    assert_eq!(status, 404, "{body}");
    // Deleting it again is 404 (the connections are told again, harmlessly).
    assert_eq!(b.delete_room(&owner, room).await.0, 404);
    v_a.send_json(json!({"type": "join_room", "room_id": room}))
        .await;
    assert_eq!(
        v_a.recv_type("error").await["data"]["code"],
        "room_not_found"
    );
}
