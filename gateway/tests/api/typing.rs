//! Typing indicators: `typing` reaches the room's other members on every
//! node, none of the typist's own connections, once per 2 s per user and
//! room; a connection not in the room is told so, and the frame rate limit
//! counts typing frames like any other.

use crate::helpers::{TestApp, WsClient, spawn_app, spawn_pair};
use crate::setup::user_at_frame_rate;
use serde_json::{Value, json};

fn typing() -> Value {
    json!({"type": "typing", "room_id": 1})
}

/// Two nodes (kept for the test's length); alice in room 1 on both (her
/// phone on A, her laptop on B), bob on B and carol on A; and alice's id.
async fn alice_on_two_nodes() -> ((TestApp, TestApp), [WsClient; 4], i64) {
    let nodes = spawn_pair().await;
    let (a, b) = (&nodes.0, &nodes.1);
    let [(alice_id, alice), (_, bob), (_, carol)] = a.register_all(["alice", "bob", "carol"]).await;
    let clients = [
        a.ws_in_general(&alice).await,
        b.ws_in_general(&alice).await,
        b.ws_in_general(&bob).await,
        a.ws_in_general(&carol).await,
    ];
    (nodes, clients, alice_id)
}

#[tokio::test]
async fn typing_reaches_the_others_on_every_node_and_none_of_the_typists_connections() {
    let (_nodes, [mut phone, mut laptop, mut bob_b, mut carol_a], alice_id) =
        alice_on_two_nodes().await;

    phone.send_json(typing()).await;
    for other in [&mut bob_b, &mut carol_a] {
        let t = other.next_event().await;
        assert_eq!(t["type"], "typing", "{t}");
        assert_eq!(t["room_id"], 1);
        assert_eq!(t["data"]["user"]["id"], alice_id);
        assert_eq!(t["data"]["user"]["username"], "alice");
    }
    // Within the interval: dropped without an answer, so the next frame
    // the typist and every member see is the message sent after it.
    phone.send_json(typing()).await;
    phone
        .send_json(json!({"type": "message", "content": "hi"}))
        .await;
    for c in [&mut phone, &mut laptop, &mut bob_b, &mut carol_a] {
        let m = c.next_event().await;
        assert_eq!(m["type"], "message", "{m}");
        assert_eq!(m["data"]["content"], "hi");
    }
    // Another user's typing is not gated by alice's.
    bob_b.send_json(typing()).await;
    for c in [&mut phone, &mut laptop, &mut carol_a] {
        let t = c.next_event().await;
        assert_eq!(
            (t["type"].as_str(), t["data"]["user"]["username"].as_str()),
            (Some("typing"), Some("bob"))
        );
    }
}

#[tokio::test]
async fn a_user_typing_through_two_nodes_reaches_each_member_once_per_interval() {
    let (_nodes, [mut phone, mut laptop, mut bob_b, mut carol_a], _) = alice_on_two_nodes().await;

    phone.send_json(typing()).await;
    for other in [&mut bob_b, &mut carol_a] {
        assert_eq!(other.next_event().await["type"], "typing");
    }
    // Node B relayed nothing of alice's yet, but it heard node A's relay:
    // the laptop's typing within the interval is dropped too.
    laptop.send_json(typing()).await;
    laptop
        .send_json(json!({"type": "message", "content": "hi"}))
        .await;
    for c in [&mut bob_b, &mut carol_a] {
        let m = c.next_event().await;
        assert_eq!(m["type"], "message", "{m}");
    }
}

#[tokio::test]
async fn typing_in_a_room_the_connection_is_not_in_is_refused() {
    let app = spawn_app().await;
    let (_, _, mut c) = app.user_in_general("alice").await;
    c.send_json(json!({"type": "typing", "room_id": 999})).await;
    let e = c.next_event().await;
    assert_eq!(e["type"], "error", "{e}");
    assert_eq!(e["room_id"], 999);
    assert_eq!(e["data"]["code"], "not_in_room");
    c.send_json(json!({"type": "typing"})).await;
    let e = c.next_event().await;
    assert_eq!(e["data"]["code"], "invalid_frame", "{e}");
}

#[tokio::test]
async fn typing_frames_count_against_the_frame_rate() {
    let (_app, mut c) = user_at_frame_rate(1, 3, "alice").await;
    for _ in 0..4 {
        c.send_json(typing()).await;
    }
    // Three fit the burst (the gate drops two of them silently); the
    // fourth is over the rate.
    let e = c.next_event().await;
    assert_eq!(e["type"], "error", "{e}");
    assert_eq!(e["data"]["code"], "rate_limited");
    assert_eq!(e["room_id"], 1);
}
