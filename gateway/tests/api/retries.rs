//! Idempotent sends: a `client_msg_id` sent again (a retry after a timeout or
//! a reconnect, on any node) is stored once, every send gets exactly one
//! answer, and a retry publishes the original again so that a message whose
//! first publish was lost still reaches the room (see
//! `gateway/src/node/messages.rs`).

use crate::helpers::{WsClient, spawn_pair};
use futures_util::StreamExt;
use serde_json::{Value, json};
use shared::ids::{RoomId, UserId};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// Every `message` frame that arrives within `quiet` of the previous frame.
async fn messages_until_quiet(c: &mut WsClient, quiet: Duration) -> Vec<Value> {
    let mut got = Vec::new();
    while let Ok(next) = tokio::time::timeout(quiet, c.stream.next()).await {
        match next {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).expect("JSON");
                if v["type"] == "message" {
                    got.push(v);
                }
            }
            Some(Ok(_)) => {}
            other => panic!("connection ended: {other:?}"),
        }
    }
    got
}

#[tokio::test]
async fn a_retried_send_is_stored_once_and_answered_with_the_original() {
    let (a, b) = &spawn_pair().await;
    let (_, alice, mut sender) = a.user_in_general("alice").await;
    let (_, _, mut watcher) = b.user_in_general("bob").await;
    sender
        .send_json(json!({"type": "message", "content": "once", "client_msg_id": "retry-1"}))
        .await;
    let original = sender.recv_type("message").await;
    assert_eq!(watcher.recv_type("message").await, original);
    // The retry, from a new connection on the other node (as after a reconnect).
    let mut again = b.ws_in_general(&alice).await;
    again
        .send_json(json!({"type": "message", "content": "once", "client_msg_id": "retry-1"}))
        .await;
    assert_eq!(
        again.recv_type("message").await,
        original,
        "the original comes back"
    );
    watcher.expect_silence(300).await;
    // Over REST too: 200 with the original, not 201.
    let retry = json!({"content": "once", "client_msg_id": "retry-1"});
    let (status, body) = a.post_message(&alice, 1, retry).await;
    assert_eq!(status, 200);
    assert_eq!(body, original["data"]);
    let stored = a.stored_messages(1, 10).await;
    assert_eq!(stored.len(), 1, "stored once");
}

#[tokio::test]
async fn concurrent_retries_on_two_nodes_store_one_message() {
    let (a, b) = &spawn_pair().await;
    let (_, alice, mut c1) = a.user_in_general("alice").await;
    let mut c2 = b.ws_in_general(&alice).await;
    for i in 0..10 {
        let frame = json!({"type": "message", "content": format!("race {i}"), "client_msg_id": format!("race-{i}")});
        let (_, _) = tokio::join!(c1.send_json(frame.clone()), c2.send_json(frame.clone()));
    }
    // Each connection sent every id once: exactly one answer each (the
    // broadcast of the stored message or the original, never both).
    for (label, c) in [("node A", &mut c1), ("node B", &mut c2)] {
        let mut answers: BTreeMap<String, usize> = BTreeMap::new();
        for m in messages_until_quiet(c, Duration::from_millis(1500)).await {
            *answers
                .entry(m["data"]["client_msg_id"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        let expected: BTreeMap<String, usize> = (0..10).map(|i| (format!("race-{i}"), 1)).collect();
        assert_eq!(answers, expected, "{label}: answers per client_msg_id");
    }
    let stored = a.stored_messages(1, 100).await;
    assert_eq!(stored.len(), 10, "each client_msg_id stored exactly once");
}

/// A node that died between the SQL commit and the PUBLISH leaves a stored
/// message nobody was told about; in a quiet room no later message reveals
/// the gap. The sender's retry must bring it to the other members too.
#[tokio::test]
async fn a_retry_after_a_lost_publish_reaches_the_other_members() {
    let (a, b) = &spawn_pair().await;
    let [(alice_id, alice), (_, bob), (_, carol)] = a.register_all(["alice", "bob", "carol"]).await;
    let mut sender = a.ws_in_general(&alice).await;
    let mut far = b.ws_in_general(&bob).await;
    let mut near = a.ws_in_general(&carol).await;
    sender.recv_type("user_joined").await;
    sender.recv_type("user_joined").await;
    // Stored, never published: what a node killed right after the commit leaves.
    let lost = a
        .app_state
        .store
        .insert_message(
            RoomId(1),
            UserId(alice_id),
            "lost",
            Some("lost-1"),
            gateway::clock::now(),
        )
        .await
        .unwrap();
    assert!(
        messages_until_quiet(&mut far, Duration::from_millis(300))
            .await
            .is_empty()
    );
    // The retry, from a new connection on the other node (after a reconnect).
    let mut again = b.ws_in_general(&alice).await;
    again
        .send_json(json!({"type": "message", "content": "lost", "client_msg_id": "lost-1"}))
        .await;
    for (label, c) in [
        ("the retrying connection", &mut again),
        ("bob on the other node", &mut far),
        ("carol on the first node", &mut near),
        ("the sender's first connection", &mut sender),
    ] {
        let got = messages_until_quiet(c, Duration::from_millis(1000)).await;
        let seqs: Vec<_> = got.iter().map(|m| m["data"]["seq"].as_i64()).collect();
        assert_eq!(
            seqs,
            vec![Some(lost.seq)],
            "{label}: the stored message, once"
        );
        assert_eq!(got[0]["data"]["client_msg_id"], "lost-1", "{label}");
    }
    // Retried once more over REST: 200, nobody gets a second copy.
    let retry = json!({"content": "lost", "client_msg_id": "lost-1"});
    assert_eq!(a.post_message(&alice, 1, retry).await.0, 200);
    for c in [&mut far, &mut near, &mut sender, &mut again] {
        let copies = messages_until_quiet(c, Duration::from_millis(500)).await;
        assert!(copies.is_empty(), "a second copy: {copies:?}");
    }
}

#[tokio::test]
async fn a_client_msg_id_older_than_the_window_may_be_used_again() {
    let app = crate::helpers::spawn_app().await;
    let (alice_id, alice) = app.register("alice").await;
    let long_ago = gateway::clock::now() - chrono::TimeDelta::minutes(11);
    let old = app
        .app_state
        .store
        .insert_message(RoomId(1), UserId(alice_id), "old", Some("reused"), long_ago)
        .await
        .unwrap();
    app.join_room(&alice, 1).await;
    let new = json!({"content": "new", "client_msg_id": "reused"});
    let (status, fresh) = app.post_message(&alice, 1, new).await;
    assert_eq!(status, 201, "stored anew, not answered with the old one");
    assert_ne!(fresh["id"].as_i64(), Some(old.id.0));
    assert_eq!(fresh["client_msg_id"], "reused");
}

/// The sends the soak saw go unanswered. Its client_msg_ids were
/// `soak-RUN-N-K` with N counted from 0 in each phase, so when the warm-up's
/// client N and the soak's client N drew the same user, the soak's sends
/// reused the warm-up's ids, in another room. The node took each for a retry
/// and answered with the stored original: `Outbound::Retried` carrying the
/// room the client addressed (Y) and the original's seq, from room X's
/// sequence. The writer judged X's seq against Y's cursor:
/// - after the connection entered Y and at or below Y's cursor: "already
///   delivered here", skipped. No answer at all, for the first send and
///   every one after it (the soak's `no echo for soak-…-81-1`, `-81-2`);
/// - beyond Y's cursor: delivered "in order" as Y's message of that seq, so
///   Y's real messages up to it were dropped as duplicates.
///
/// A retry repeats the original's room and content; any other send with a
/// taken id is refused (`client_msg_id_reused`, 409 over REST), and a room's
/// cursor only ever sees that room's seqs.
#[tokio::test]
async fn an_id_reused_for_another_message_is_refused_and_no_room_loses_a_message() {
    let app = crate::helpers::spawn_app().await;
    let (_, alice) = app.register("alice").await;
    let (_, bob) = app.register("bob").await;
    let (y, z) = (
        new_room(&app, &alice, "y").await,
        new_room(&app, &alice, "z").await,
    );
    let mut a = app.ws_in_general(&alice).await;
    let mut b = app.ws_in_general(&bob).await;
    for (i, id) in [(0, "first"), (1, "id-1")] {
        a.send_json(json!({"type": "message", "room_id": 1, "content": format!("x{i}"), "client_msg_id": id}))
            .await;
    }
    a.recv_type("message").await;
    let original = a.recv_type("message").await;
    assert_eq!(original["data"]["seq"], 2, "room 1's seq 2 carries id-1");
    for room in [y, z] {
        for c in [&mut a, &mut b] {
            c.send_json(json!({"type": "join_room", "room_id": room}))
                .await;
            c.recv_type("online_users").await;
        }
    }
    // Room y: three messages, so alice's cursor there is at 3, past seq 2.
    for i in 0..3 {
        b.send_json(json!({"type": "message", "room_id": y, "content": format!("y{i}")}))
            .await;
    }
    let seqs = room_seqs(&mut a).await;
    assert_eq!(seqs, [(y, 1), (y, 2), (y, 3)]);

    // The same id for a message to room y (skipped as delivered before the
    // fix), to room z (taking the place of z's seq 2 before the fix), and
    // to room 1 with other content: each answered, with the refusal.
    for (room, content) in [(y, "x1"), (z, "x1"), (1, "other")] {
        a.send_json(json!({"type": "message", "room_id": room, "content": content, "client_msg_id": "id-1"}))
            .await;
        let answer = a.recv_json().await;
        assert_eq!(answer["type"], "error", "room {room}: {answer}");
        assert_eq!(answer["room_id"], room, "{answer}");
        assert_eq!(answer["data"]["code"], "client_msg_id_reused", "{answer}");
        assert_eq!(answer["data"]["ref"], "id-1", "{answer}");
    }
    // Nothing of room 1's sequence leaked into z's: its first two messages arrive.
    for i in 0..2 {
        b.send_json(json!({"type": "message", "room_id": z, "content": format!("z{i}")}))
            .await;
    }
    let got = room_seqs(&mut a).await;
    assert_eq!(got, [(z, 1), (z, 2)]);
    // Over REST: 409. A real retry (same room, same content) still gets the original.
    let retry = json!({"content": "x1", "client_msg_id": "id-1"});
    let (status, body) = app.post_message(&alice, y, retry.clone()).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "client_msg_id_reused");
    a.send_json(json!({"type": "message", "room_id": 1, "content": "x1", "client_msg_id": "id-1"}))
        .await;
    a.expect_silence(300).await;
    let (status, body) = app.post_message(&alice, 1, retry).await;
    assert_eq!((status, &body), (200, &original["data"]));
}

async fn new_room(app: &crate::helpers::TestApp, token: &str, name: &str) -> i64 {
    app.new_room(token, json!({"name": name})).await
}

/// The (room, seq) of every message until the connection is quiet.
async fn room_seqs(c: &mut crate::helpers::WsClient) -> Vec<(i64, i64)> {
    messages_until_quiet(c, Duration::from_millis(500))
        .await
        .iter()
        .map(|m| {
            (
                m["room_id"].as_i64().unwrap(),
                m["data"]["seq"].as_i64().unwrap(),
            )
        })
        .collect()
}
