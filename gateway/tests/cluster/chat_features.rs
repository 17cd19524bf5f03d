//! The chat features people expect (typing, read markers, edits and
//! deletions, direct messages, compression) across `gateway` processes on
//! Redis and PostgreSQL: what one node's client does, a client on the other
//! node sees, through the real bus and the real database. (The API tests
//! cover each feature's rules; these show they hold between processes.)

use crate::helpers::{Cluster, GatewayNode, Opts, User, WsClient};
use crate::raw_ws::{ACCEPTED, BROWSER_OFFER, RawClient, deflate};
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU32, Ordering};

const ROOM: i64 = 1;

/// Send `content` and wait for its echo; the stored message.
async fn say(c: &mut WsClient, content: &str) -> Value {
    static SENT: AtomicU32 = AtomicU32::new(0);
    let cmid = format!("{}-{}", c.label, SENT.fetch_add(1, Ordering::Relaxed));
    c.send_message(ROOM, content, &cmid).await;
    loop {
        let m = c.rx.next_event().await;
        assert_ne!(m["type"], "error", "{}: {m}", c.label);
        if m["type"] == "message" && m["data"]["content"] == content {
            return m["data"].clone();
        }
    }
}

/// The next `n` frames that are not about presence.
async fn next_events(c: &mut WsClient, n: usize) -> Vec<Value> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        got.push(c.rx.next_event().await);
    }
    got
}

/// `(type, seq)` of a stream frame.
fn kind_and_seq(f: &Value) -> (&str, i64) {
    (
        f["type"].as_str().unwrap_or_default(),
        f["data"]["seq"].as_i64().unwrap_or(-1),
    )
}

/// `(last_read_seq, unread_count)` of room 1 in `user`'s room list on node `i`.
async fn marker(cluster: &Cluster, i: usize, user: &User) -> (Value, Value) {
    let (status, page) = cluster.get_json(i, user, "/api/rooms").await;
    assert_eq!(status, 200, "{page}");
    let general = page["rooms"]
        .as_array()
        .and_then(|rooms| rooms.iter().find(|r| r["id"] == ROOM))
        .unwrap_or_else(|| panic!("room 1 not listed: {page}"));
    (
        general["last_read_seq"].clone(),
        general["unread_count"].clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_reaches_the_other_members_on_both_nodes_and_none_of_the_typists_devices() {
    let cluster = Cluster::start(Opts::nodes(2)).await;
    let [alice, bob, carol] = cluster.users(["alice", "bob", "carol"]);
    let (mut phone, _) = cluster.connect(0, &alice, ROOM).await;
    let (mut laptop, _) = cluster.connect(1, &alice, ROOM).await;
    let (mut bob_b, _) = cluster.connect(1, &bob, ROOM).await;
    let (mut carol_a, _) = cluster.connect(0, &carol, ROOM).await;
    let typing = json!({"type": "typing", "room_id": ROOM});

    phone.send_json(typing.clone()).await;
    for other in [&mut bob_b, &mut carol_a] {
        assert_eq!(
            other.rx.next_event().await,
            json!({"type": "typing", "room_id": ROOM, "data": {"user": alice.public()}}),
            "{}",
            other.label
        );
    }
    // Again within 2 s, from her other device on the other node: dropped,
    // so the next thing anyone sees is her message.
    laptop.send_json(typing).await;
    let sent = say(&mut phone, "hi").await;
    for c in [&mut laptop, &mut bob_b, &mut carol_a] {
        let m = c.rx.next_event().await;
        assert_eq!(
            (m["type"].as_str(), &m["data"]),
            (Some("message"), &sent),
            "{}",
            c.label
        );
    }
    cluster.report("typing crossed the nodes, once per interval");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_read_on_one_device_is_read_on_the_other_on_the_other_node() {
    let cluster = Cluster::start(Opts::nodes(2)).await;
    let [alice, bob] = cluster.users(["alice", "bob"]);
    let (mut phone, _) = cluster.connect(0, &alice, ROOM).await;
    let (mut laptop, _) = cluster.connect(1, &alice, ROOM).await;
    let (mut talker, _) = cluster.connect(1, &bob, ROOM).await;
    for text in ["m1", "m2", "m3"] {
        say(&mut talker, text).await;
    }
    for c in [&mut phone, &mut laptop] {
        for seq in 1..=3 {
            assert_eq!(kind_and_seq(&c.rx.next_event().await), ("message", seq));
        }
    }
    assert_eq!(marker(&cluster, 0, &alice).await, (json!(0), json!(3)));
    assert_eq!(marker(&cluster, 1, &bob).await.1, json!(0), "his own");

    // The phone (node A) reads up to 2: the laptop (node B) hears of it.
    phone
        .send_json(json!({"type": "read", "room_id": ROOM, "seq": 2}))
        .await;
    assert_eq!(
        laptop.rx.next_event().await,
        json!({"type": "read", "room_id": ROOM, "data": {"seq": 2}})
    );
    assert_eq!(marker(&cluster, 1, &alice).await, (json!(2), json!(1)));
    // Through REST on node B, past the newest: capped at 3, both devices hear it.
    let (status, body) = cluster
        .rest(
            1,
            &alice,
            Method::PUT,
            "/api/rooms/1/read",
            Some(json!({"seq": 99})),
        )
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"room_id": ROOM, "last_read_seq": 3}))
    );
    for c in [&mut phone, &mut laptop] {
        assert_eq!(
            c.rx.next_event().await,
            json!({"type": "read", "room_id": ROOM, "data": {"seq": 3}}),
            "{}",
            c.label
        );
    }
    assert_eq!(marker(&cluster, 0, &alice).await, (json!(3), json!(0)));
    // Bob never hears alice's markers: his next frame is his next message.
    say(&mut talker, "m4").await;
    assert_eq!(kind_and_seq(&phone.rx.next_event().await), ("message", 4));
    cluster.report("read markers crossed the nodes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_and_deletes_made_on_both_nodes_reach_the_room_and_a_resume_once_in_order() {
    let cluster = Cluster::start(Opts::nodes(2)).await;
    let [alice, bob, carol] = cluster.users(["alice", "bob", "carol"]);
    let (mut talker, _) = cluster.connect(0, &alice, ROOM).await;
    let (mut watcher, _) = cluster.connect(1, &carol, ROOM).await;
    // Bob saw seq 1 and went away.
    let (mut bob_b, _) = cluster.connect(1, &bob, ROOM).await;
    let mut ids = Vec::new();
    for text in ["m1", "m2", "m3"] {
        ids.push(say(&mut talker, text).await["id"].as_i64().unwrap());
    }
    assert_eq!(kind_and_seq(&bob_b.rx.next_event().await), ("message", 1));
    bob_b.close_and_wait().await;

    // m2 edited on A (seq 4), m3 deleted on B (seq 5), m2 edited on B (seq 6).
    let message = |id: i64| format!("/api/rooms/1/messages/{id}");
    let edit = |content: &str| Some(json!({"content": content}));
    let (status, edited) = cluster
        .rest(0, &alice, Method::PATCH, &message(ids[1]), edit("m2'"))
        .await;
    assert_eq!((status, edited["content"].as_str()), (200, Some("m2'")));
    let (status, _) = cluster
        .rest(1, &alice, Method::DELETE, &message(ids[2]), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = cluster
        .rest(1, &alice, Method::PATCH, &message(ids[1]), edit("m2''"))
        .await;
    assert_eq!(status, 200);

    // Carol, connected on B all along, gets each change live, in order.
    let live = next_events(&mut watcher, 6).await;
    assert_eq!(
        live.iter().map(kind_and_seq).collect::<Vec<_>>(),
        [
            ("message", 1),
            ("message", 2),
            ("message", 3),
            ("message_edited", 4),
            ("message_deleted", 5),
            ("message_edited", 6),
        ]
    );
    assert_eq!(
        (&live[3]["data"]["id"], &live[3]["data"]["content"]),
        (&json!(ids[1]), &json!("m2'"))
    );
    assert_eq!(live[4]["data"], json!({"id": ids[2], "seq": 5}));

    // Bob resumes on B from seq 1: the messages as they now are, then each
    // change once, in seq order.
    let (mut back, _) = cluster.resume(1, &bob, ROOM, 1).await;
    let got = next_events(&mut back, 5).await;
    assert_eq!(
        got.iter().map(kind_and_seq).collect::<Vec<_>>(),
        [
            ("message", 2),
            ("message", 3),
            ("message_edited", 4),
            ("message_deleted", 5),
            ("message_edited", 6),
        ]
    );
    assert_eq!(got[0]["data"]["content"], "m2''");
    assert_eq!(
        (&got[1]["data"]["deleted"], &got[1]["data"]["content"]),
        (&json!(true), &json!(""))
    );
    assert_eq!(got[2]["data"]["content"], "m2'");
    assert_eq!(got[4]["data"]["content"], "m2''");

    // Both nodes' history pages read the same (the shared Redis cache), as
    // the messages now are.
    let (_, on_a) = cluster.get_json(0, &bob, "/api/rooms/1/messages").await;
    let (_, on_b) = cluster.get_json(1, &bob, "/api/rooms/1/messages").await;
    assert_eq!(on_a, on_b);
    let contents: Vec<_> = on_a["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("{on_a}"))
        .iter()
        .map(|m| m["content"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(contents, ["", "m2''", "m1"], "newest first: {on_a}");
    // Then the live stream goes on, nothing repeated.
    say(&mut talker, "m4").await;
    assert_eq!(kind_and_seq(&back.rx.next_event().await), ("message", 7));
    cluster.report("edits and deletes crossed the nodes and the resume");
}

/// `POST /api/dms` on node `i`: `from` opens their DM room with `to`.
async fn open_dm(cluster: &Cluster, i: usize, from: &User, to: &User) -> (u16, Value) {
    let body = Some(json!({"user_id": to.id}));
    cluster.rest(i, from, Method::POST, "/api/dms", body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_opening_a_dm_at_once_on_two_nodes_get_one_room() {
    let cluster = Cluster::start(Opts::nodes(2)).await;
    let users = cluster.users(["ann", "bo", "cy", "di", "ed", "flo", "eve"]);
    for u in &users {
        assert_eq!(cluster.get_json(0, u, "/api/users/me").await.0, 200);
    }
    // Three pairs, each side on its own node, all at the same moment.
    let pairs = [(0, 1), (2, 3), (4, 5)];
    let answers = futures_util::future::join_all(pairs.iter().flat_map(|&(x, y)| {
        [
            open_dm(&cluster, 0, &users[x], &users[y]),
            open_dm(&cluster, 1, &users[y], &users[x]),
        ]
    }))
    .await;
    let mut rooms = Vec::new();
    for (pair, both) in pairs.iter().zip(answers.chunks(2)) {
        let [(s1, r1), (s2, r2)] = both else {
            unreachable!()
        };
        let mut statuses = [*s1, *s2];
        statuses.sort();
        assert_eq!(statuses, [200, 201], "{pair:?}: {r1} {r2}");
        assert_eq!(r1["id"], r2["id"], "{pair:?}: one room");
        assert_eq!(r1["kind"], "dm");
        rooms.push(r1["id"].as_i64().unwrap());
    }
    rooms.dedup();
    assert_eq!(rooms.len(), 3, "a room per pair: {rooms:?}");

    // The first pair talks across the nodes; nobody else gets in.
    let (ann, bo, eve) = (&users[0], &users[1], &users[6]);
    let room = rooms[0];
    let (mut on_a, _) = cluster.connect(0, ann, room).await;
    let (mut on_b, _) = cluster.connect(1, bo, room).await;
    on_a.send_message(room, "just us", "dm-1").await;
    assert_eq!(
        on_b.recv_type("message").await["data"]["content"],
        "just us"
    );
    let url = format!(
        "ws://127.0.0.1:{}/ws?room_id={room}&token={}",
        cluster.node(1).port,
        eve.token
    );
    match WsClient::connect(&url, "eve@B").await {
        Ok(_) => panic!("eve entered the DM room {room}"),
        Err((status, body)) => assert_eq!(status, 404, "{body}"),
    }
    cluster.report("three DM races, one room each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_is_negotiated_per_node_and_a_broadcast_crosses_compressed_or_plain() {
    let long = "Compression pays for the words a chat repeats. ".repeat(12);
    let long = long.trim_end();
    let mut cluster = Cluster::start(Opts::nodes(1)).await;
    let env = cluster.node(0).env_with("CHAT__WS__COMPRESSION", "false");
    let b = GatewayNode::start("B", cluster.dir.path(), &env).await;
    cluster.nodes.push(b);
    let [alice, bob, carol] = cluster.users(["alice", "bob", "carol"]);

    let mut deflating =
        RawClient::open(cluster.node(0).port, &alice.token, Some(BROWSER_OFFER)).await;
    assert_eq!(
        deflating.extensions.as_deref(),
        Some(ACCEPTED),
        "node A: on"
    );
    deflating.json_of_type("online_users").await;
    let mut refused = RawClient::open(cluster.node(1).port, &bob.token, Some(BROWSER_OFFER)).await;
    assert_eq!(
        refused.extensions, None,
        "node B: CHAT__WS__COMPRESSION=false"
    );
    refused.json_of_type("online_users").await;
    let (mut talker, _) = cluster.connect(1, &carol, ROOM).await;

    // Sent on B: A compresses it for its member, B sends it plain.
    let sent = say(&mut talker, long).await;
    let (got, compressed) = deflating.json_of_type("message").await;
    assert!(compressed, "node A: RSV1 on a long frame");
    assert_eq!(got["data"], sent);
    let (got, compressed) = refused.json_of_type("message").await;
    assert!(!compressed, "node B: plain");
    assert_eq!(got["data"], sent);

    // Sent compressed on A: inflated, stored, and plain on B.
    let frame = json!({"type": "message", "room_id": ROOM, "content": format!("{long}!")});
    deflating
        .send(&deflate(frame.to_string().as_bytes()), true)
        .await;
    let (echo, _) = deflating.json_of_type("message").await;
    assert_eq!(echo["data"]["content"], format!("{long}!"));
    let m = talker.recv_type("message").await;
    assert_eq!(m["data"], echo["data"], "carol on B");
    cluster.report("compression on one node, off on the other");
}
