//! Delivery guarantees: resume without gaps or duplicates, gap filling,
//! the recovery window.

use crate::helpers::{TestApp, WsClient, spawn_app, spawn_nodes, spawn_pair, spawn_with};
use serde_json::{Value, json};
use shared::ids::{RoomId, UserId};

fn seqs(frames: &[Value]) -> Vec<i64> {
    frames
        .iter()
        .map(|m| m["data"]["seq"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_client_resumes_on_another_node_with_every_missed_message_once() {
    let (a, b) = &spawn_pair().await;
    let [(_, _, mut talker), (_, bob, mut listener)] = a.users_in_general(["alice", "bob"]).await;
    for i in 1..=5 {
        assert_eq!(talker.say(&format!("m{i}")).await["data"]["seq"], i);
        assert_eq!(listener.recv_type("message").await["data"]["seq"], i);
    }
    listener.close().await;
    for i in 6..=8 {
        talker
            .send_json(json!({"type": "message", "content": format!("m{i}")}))
            .await;
        // The echo: stored and published before bob comes back.
        assert_eq!(talker.recv_type("message").await["data"]["seq"], i);
    }
    // Resume at connect, on the other node, from seq 5.
    let mut back = b.ws(&bob, "&since_seq=5").await;
    back.recv_type("online_users").await;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(back.recv_type("message").await);
    }
    assert_eq!(seqs(&got), vec![6, 7, 8]);
    talker
        .send_json(json!({"type": "message", "content": "live"}))
        .await;
    let live = back.recv_type("message").await;
    assert_eq!(
        (
            live["data"]["seq"].as_i64(),
            live["data"]["content"].as_str()
        ),
        (Some(9), Some("live"))
    );
    back.expect_silence(300).await;
}

/// Resumes on a node that must subscribe anew each time, while another node
/// streams messages: a message stored just before the subscription and
/// published just after it is neither in the history read nor missed live.
#[tokio::test]
async fn resumes_while_messages_stream_have_no_gap() {
    const TOTAL: i64 = 150;
    let (a, b) = &spawn_pair().await;
    let [(_, alice), (_, bob)] = a.register_all(["alice", "bob"]).await;
    let mut talker = a.ws_in_general(&alice).await;
    let streaming = tokio::spawn(async move {
        for i in 1..=TOTAL {
            assert_eq!(talker.say(&format!("m{i}")).await["data"]["seq"], i);
        }
        talker
    });
    // Each pass reads a few messages and leaves, so node b drops its
    // subscription and subscribes again on the next resume.
    let mut seen = 0;
    let mut resumes = 0;
    while seen < TOTAL {
        let mut c = b.ws(&bob, &format!("&since_seq={seen}")).await;
        c.recv_type("online_users").await;
        for _ in 0..3 {
            if seen == TOTAL {
                break;
            }
            let m = c.recv_type("message").await;
            assert_eq!(m["data"]["seq"], seen + 1, "after resume #{resumes}");
            seen += 1;
        }
        c.close().await;
        resumes += 1;
    }
    streaming.await.expect("the talker finished");
}

#[tokio::test]
async fn join_room_with_since_seq_replays_then_streams() {
    let (a, b) = &spawn_pair().await;
    let [(_, alice), (_, bob)] = a.register_all(["alice", "bob"]).await;
    let mut talker = a.ws_in_general(&alice).await;
    for i in 1..=4 {
        talker.say(&format!("m{i}")).await;
    }
    let room = a.insert_public_room("second").await;
    let mut c = b.ws_in_general(&bob).await;
    c.send_json(json!({"type": "join_room", "room_id": room}))
        .await;
    c.recv_type("online_users").await;
    c.send_json(json!({"type": "join_room", "room_id": 1, "since_seq": 2}))
        .await;
    let mut got = Vec::new();
    while got.len() < 2 {
        let f = c.recv_json().await;
        if f["type"] == "message" {
            got.push(f);
        }
    }
    assert_eq!(seqs(&got), vec![3, 4]);
    c.send_json(json!({"type": "join_room", "room_id": 1, "since_seq": -1}))
        .await;
    assert_eq!(c.recv_type("error").await["data"]["code"], "invalid_frame");
}

#[tokio::test]
async fn a_gap_in_the_live_stream_is_filled_from_the_history_first() {
    let app = &spawn_app().await;
    let [(alice_id, _, mut talker), (_, _, mut listener)] =
        app.users_in_general(["alice", "bob"]).await;
    talker
        .send_json(json!({"type": "message", "content": "one"}))
        .await;
    assert_eq!(listener.recv_type("message").await["data"]["seq"], 1);
    // Stored but never published (as when a node dies between commit and publish).
    let now = gateway::clock::now();
    app.app_state
        .store
        .insert_message(RoomId(1), UserId(alice_id), "lost in transit", None, now)
        .await
        .unwrap();
    talker
        .send_json(json!({"type": "message", "content": "three"}))
        .await;
    let (two, three) = (
        listener.recv_type("message").await,
        listener.recv_type("message").await,
    );
    assert_eq!(
        (two["data"]["seq"].as_i64(), two["data"]["content"].as_str()),
        (Some(2), Some("lost in transit"))
    );
    assert_eq!(three["data"]["seq"], 3);
    assert_eq!(two["data"]["user"]["username"], "alice");
}

#[tokio::test]
async fn resuming_further_back_than_the_window_says_so() {
    let app = spawn_with(|s| s.ws.recovery_window = 3).await;
    let (_, alice) = app.register("alice").await;
    let (_, bob) = app.register("bob").await;
    let mut talker = app.ws_in_general(&alice).await;
    for i in 1..=8 {
        talker.say(&format!("m{i}")).await;
    }
    let mut c = app.ws(&bob, "&since_seq=1").await;
    c.recv_type("online_users").await;
    let partial = c.recv_json().await;
    assert_eq!(
        partial,
        json!({"type": "recovery_partial", "room_id": 1, "data": {"since_seq": 1, "resumed_at_seq": 6}})
    );
    let got = vec![
        c.recv_type("message").await,
        c.recv_type("message").await,
        c.recv_type("message").await,
    ];
    assert_eq!(seqs(&got), vec![6, 7, 8]);
}

/// Read message frames until `want` per room arrived (or the wait runs out).
async fn collect(
    c: &mut crate::helpers::WsClient,
    rooms: &[i64],
    want: usize,
) -> std::collections::HashMap<i64, Vec<Value>> {
    let mut got: std::collections::HashMap<i64, Vec<Value>> =
        rooms.iter().map(|r| (*r, Vec::new())).collect();
    while got.values().any(|v| v.len() < want) {
        let f = c.recv_json().await;
        if f["type"] == "message" {
            got.entry(f["room_id"].as_i64().unwrap())
                .or_default()
                .push(f["data"].clone());
        }
    }
    got
}

/// A new user `name` on `node`, connected in room 1 and in `room`.
async fn also_in(node: &TestApp, name: &str, room: i64) -> WsClient {
    let (_, _, mut c) = node.user_in_general(name).await;
    c.send_json(json!({"type": "join_room", "room_id": room}))
        .await;
    c.recv_type("online_users").await;
    c
}

#[tokio::test]
async fn concurrent_senders_on_three_nodes_give_everyone_the_same_gap_free_order() {
    let nodes = spawn_nodes(3).await;
    let n = nodes.len();
    let room2 = nodes[0].insert_public_room("second").await;
    let rooms = [1, room2];
    let mut listeners = Vec::new();
    for i in 0..6 {
        let node = &nodes[i % n];
        listeners.push(also_in(node, &format!("listener{i}"), room2).await);
    }
    const PER_SENDER: usize = 30;
    let mut senders = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        senders.push(also_in(node, &format!("sender{i}"), room2).await);
    }
    let total = PER_SENDER * senders.len();
    let sends = senders.iter_mut().enumerate().map(|(i, c)| async move {
        for k in 0..PER_SENDER {
            for room in rooms {
                c.send_json(
                    json!({"type": "message", "room_id": room, "content": format!("s{i} m{k}")}),
                )
                .await;
            }
        }
    });
    futures_util::future::join_all(sends).await;
    let reads = listeners.iter_mut().map(|c| collect(c, &rooms, total));
    let received = futures_util::future::join_all(reads).await;
    for room in rooms {
        let history: Vec<(i64, String)> = nodes[0]
            .app_state
            .store
            .messages_after_seq(RoomId(room), 0, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.seq, m.content))
            .collect();
        assert_eq!(history.len(), total);
        assert_eq!(
            history.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            (1..=total as i64).collect::<Vec<_>>()
        );
        for (i, got) in received.iter().enumerate() {
            let seen: Vec<(i64, String)> = got[&room]
                .iter()
                .map(|m| {
                    (
                        m["seq"].as_i64().unwrap(),
                        m["content"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            assert_eq!(
                seen, history,
                "listener {i}, room {room}: same order as SQL, no gap, no duplicate"
            );
        }
    }
}

#[tokio::test]
async fn clients_that_drop_and_resume_on_other_nodes_end_with_the_full_history() {
    let nodes = spawn_nodes(3).await;
    let n = nodes.len();
    let (_, talker_token) = nodes[0].register("talker").await;
    let mut talker = nodes[0].ws_in_general(&talker_token).await;
    const TOTAL: i64 = 60;
    let mut clients = Vec::new();
    for i in 0..4 {
        let (_, t) = nodes[i % n].register(&format!("roamer{i}")).await;
        let conn = nodes[i % n].ws_in_general(&t).await;
        clients.push((t, conn, Vec::<i64>::new(), i % n));
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    use rand::{Rng, SeedableRng};
    for k in 1..=TOTAL {
        talker
            .send_json(json!({"type": "message", "content": format!("t{k}")}))
            .await;
        talker.recv_type("message").await;
        for (token, conn, seen, node) in clients.iter_mut() {
            // Read what is there, then maybe drop and resume elsewhere.
            while let Ok(f) =
                tokio::time::timeout(std::time::Duration::from_millis(5), conn.recv_json()).await
            {
                if f["type"] == "message" {
                    seen.push(f["data"]["seq"].as_i64().unwrap());
                }
            }
            if rng.random_range(0..10) == 0 {
                *node = (*node + 1) % n;
                let last = seen.last().copied().unwrap_or(0);
                *conn = nodes[*node].ws(token, &format!("&since_seq={last}")).await;
            }
        }
    }
    for (i, (_, conn, seen, _)) in clients.iter_mut().enumerate() {
        while seen.last().copied().unwrap_or(0) < TOTAL {
            let f = conn.recv_json().await;
            if f["type"] == "message" {
                seen.push(f["data"]["seq"].as_i64().unwrap());
            }
        }
        assert_eq!(*seen, (1..=TOTAL).collect::<Vec<_>>(), "client {i}");
    }
}
