//! A node subscribes a room's channel only while it has members
//! in the room, so a node with no member never receives the room's traffic.
//! Checked on Redis itself with `PUBSUB NUMSUB {prefix}:{room:R}`, with a
//! non-default key prefix.

use crate::helpers::{Cluster, Opts, WsClient};
use serde_json::json;
use std::time::Duration;

/// Subscriptions may be taken and dropped asynchronously; allow this long.
const SETTLE: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_nodes_with_members_subscribe_a_room() {
    let mut opts = Opts::nodes(3);
    opts.key_prefix = Some(format!("t{}", std::process::id()));
    let cluster = Cluster::start(opts).await;
    let room = cluster.db.insert_room("r").await;
    assert!(room > 1, "new room id {room}");
    let [alice, bob, carol] = cluster.users(["alice", "bob", "carol"]);

    // bob is on B and carol on C, in room 1 only; nobody is in `room` yet.
    let (mut b, _) = cluster.connect(1, &bob, 1).await;
    let (mut c, _) = cluster.connect(2, &carol, 1).await;
    cluster.wait_numsub(1, 2, SETTLE).await;
    assert_eq!(
        cluster.numsub(room).await,
        0,
        "nobody is in room {room} yet"
    );

    // alice enters `room` on A: one subscriber (A).
    let (mut a, online) = cluster.connect(0, &alice, room).await;
    assert_eq!(Cluster::online_ids(&online), vec![alice.id]);
    cluster.wait_numsub(room, 1, SETTLE).await;
    // The key prefix is honoured: nothing on the default prefix.
    let default_channel = format!("chat:{{room:{room}}}");
    assert_eq!(
        cluster
            .redis()
            .numsub(&default_channel, false)
            .await
            .unwrap(),
        0,
        "{default_channel} has subscribers although the prefix is {}",
        cluster.prefix
    );

    // bob joins `room` on B: two subscribers (A and B; not C), and traffic crosses.
    b.send_json(json!({"type": "join_room", "room_id": room}))
        .await;
    let online = b.recv_type("online_users").await;
    assert_eq!(online["room_id"], room);
    assert_eq!(Cluster::online_ids(&online), vec![alice.id, bob.id]);
    cluster.wait_numsub(room, 2, SETTLE).await;
    let joined = a.recv_json().await;
    assert_eq!(
        joined,
        json!({"type": "user_joined", "room_id": room, "data": {"user": bob.public()}})
    );
    a.send_message(room, "hello r", "a1").await;
    for x in [&mut a, &mut b] {
        let m = x.recv_type("message").await;
        assert_eq!(
            (m["room_id"].as_i64(), m["data"]["content"].as_str()),
            (Some(room), Some("hello r")),
            "{}",
            x.label
        );
    }
    // carol (room 1 only, on C, which never subscribed `room`) got none of it.
    expect_nothing_from(&mut c, room).await;

    // bob leaves `room`: back to one subscriber, and B stops getting its traffic.
    b.send_json(json!({"type": "leave_room", "room_id": room}))
        .await;
    assert_eq!(
        b.recv_json().await,
        json!({"type": "left_room", "room_id": room, "data": {"reason": "left"}})
    );
    cluster.wait_numsub(room, 1, SETTLE).await;
    assert_eq!(
        a.recv_json().await,
        json!({"type": "user_left", "room_id": room, "data": {"user_id": bob.id}})
    );
    a.send_message(room, "only A now", "a2").await;
    let echo = a.recv_type("message").await;
    assert_eq!(echo["data"]["content"], "only A now");
    // bob (still in room 1 on B) gets nothing from `room`; nor does carol.
    expect_nothing_from(&mut b, room).await;
    expect_nothing_from(&mut c, room).await;

    // alice (the last member) leaves: no subscriber at all; room 1 still has B and C.
    a.close_and_wait().await;
    cluster.wait_numsub(room, 0, SETTLE).await;
    assert_eq!(
        cluster.numsub(1).await,
        2,
        "room 1 keeps B's and C's subscriptions"
    );
    b.close_and_wait().await;
    cluster.wait_numsub(1, 1, SETTLE).await;
    c.close_and_wait().await;
    cluster.wait_numsub(1, 0, SETTLE).await;
    cluster.report("subscription scenario done");
}

/// A ping answered by a pong with nothing before it, then silence: the
/// client received no frame of `room`.
async fn expect_nothing_from(c: &mut WsClient, room: i64) {
    c.send_json(json!({"type": "ping"})).await;
    assert_eq!(
        c.recv_json().await,
        json!({"type": "pong"}),
        "{} got room {room} traffic",
        c.label
    );
    c.rx.expect_silence(Duration::from_millis(300)).await;
}
