//! A kick or a room deletion while Redis is down: the database change is
//! made, but the other nodes cannot be told. The node that served it takes
//! its own connections out at once and answers 503 `unavailable` (not 204);
//! once Redis is back, retrying the request (now a 404: nothing left to
//! remove) tells the other nodes, whose connections then leave too and never
//! get a later message of the room.

use crate::helpers::{Cluster, Opts, WsClient};
use serde_json::{Value, json};
use std::time::Duration;

const RECOVERY: Duration = Duration::from_secs(15);

async fn rest(
    cluster: &Cluster,
    node: usize,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method.parse().unwrap(), cluster.node(node).url(path))
        .bearer_auth(token)
        .timeout(Duration::from_secs(30));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Frames until `left_room` of `room`, which must say `reason`.
async fn expect_left(c: &mut WsClient, room: i64, reason: &str) {
    loop {
        let f = c.recv_json().await;
        if f["type"] == "left_room" && f["room_id"] == room {
            assert_eq!(f["data"]["reason"], reason, "{}: {f}", c.label);
            return;
        }
    }
}

/// Retry the removal `path` on node 0 (404 now: nothing left to remove)
/// until `c`, on the other node, gets its `left_room`: right after Redis
/// came back, that node may not have subscribed the room again yet.
async fn retry_until_left(
    cluster: &Cluster,
    path: &str,
    token: &str,
    c: &mut WsClient,
    room: i64,
    reason: &str,
) {
    let deadline = tokio::time::Instant::now() + RECOVERY;
    while tokio::time::Instant::now() < deadline {
        assert_eq!(
            rest(cluster, 0, "DELETE", path, token, None).await.0,
            404,
            "retry {path}"
        );
        while let Ok(f) = c.rx.next_within(Duration::from_millis(500)).await {
            if f["type"] == "left_room" && f["room_id"] == room {
                assert_eq!(f["data"]["reason"], reason, "{}: {f}", c.label);
                return;
            }
            assert_ne!(
                f["type"], "message",
                "{}: a message of a room it should have left: {f}",
                c.label
            );
        }
    }
    panic!("{}: no left_room {reason} after retrying {path}", c.label);
}

/// With Redis killed (node 0 sees its bus down), `DELETE path` on node 0
/// as `token` answers 503 `unavailable`.
async fn delete_while_redis_is_down(cluster: &mut Cluster, path: &str, token: &str) {
    cluster.redis_mut().kill().await;
    cluster
        .node(0)
        .wait_bus(false, Duration::from_secs(10))
        .await;
    let (status, body) = rest(cluster, 0, "DELETE", path, token, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("unavailable")),
        "{body}"
    );
}

/// Restart Redis and wait until both nodes' buses are up again.
async fn restart_redis(cluster: &mut Cluster) {
    cluster.redis_mut().restart().await;
    for i in 0..2 {
        cluster.node(i).wait_bus(true, RECOVERY).await;
    }
}

async fn enter(c: &mut WsClient, room: i64) {
    c.send_json(json!({"type": "join_room", "room_id": room}))
        .await;
    c.recv_type("online_users").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removals_during_a_redis_outage_answer_503_and_a_retry_finishes_them() {
    let mut cluster = Cluster::start(Opts::nodes(2)).await;
    let [owner, victim] = cluster.users(["owner", "victim"]);
    // Connecting creates the users (tokens minted elsewhere).
    let (mut o, _) = cluster.connect(0, &owner, 1).await;
    let (mut v_a, _) = cluster.connect(0, &victim, 1).await;
    let (mut v_b, _) = cluster.connect(1, &victim, 1).await;
    let body = json!({"name": "vault", "is_private": true});
    let (status, room) = rest(&cluster, 0, "POST", "/api/rooms", &owner.token, Some(body)).await;
    assert_eq!(status, 201, "{room}");
    let room = room["id"].as_i64().unwrap();
    let members = format!("/api/rooms/{room}/members");
    let add = json!({"user_id": victim.id});
    assert_eq!(
        rest(&cluster, 0, "POST", &members, &owner.token, Some(add))
            .await
            .0,
        201
    );
    enter(&mut o, room).await;
    enter(&mut v_a, room).await;
    enter(&mut v_b, room).await;

    let kick = format!("{members}/{}", victim.id);
    delete_while_redis_is_down(&mut cluster, &kick, &owner.token).await;
    // The kicking node's own connection left anyway.
    expect_left(&mut v_a, room, "kicked").await;

    restart_redis(&mut cluster).await;
    cluster.report("Redis back");
    // The retry: no membership left (404), but node B is told now.
    retry_until_left(&cluster, &kick, &owner.token, &mut v_b, room, "kicked").await;
    let path = format!("/api/rooms/{room}/messages");
    let post = json!({"content": "members only"});
    assert_eq!(
        rest(&cluster, 0, "POST", &path, &owner.token, Some(post))
            .await
            .0,
        201
    );
    assert_eq!(
        o.recv_type("message").await["data"]["content"],
        "members only"
    );
    while let Ok(f) = v_b.rx.next_within(Duration::from_millis(500)).await {
        assert_ne!(
            f["room_id"], room,
            "{}: a frame of the room it was kicked from: {f}",
            v_b.label
        );
    }

    // The same for deleting the room: the owner is in it through node B.
    let (mut o_b, _) = cluster.connect(1, &owner, room).await;
    let path = format!("/api/rooms/{room}");
    delete_while_redis_is_down(&mut cluster, &path, &owner.token).await;
    expect_left(&mut o, room, "room_deleted").await;
    restart_redis(&mut cluster).await;
    retry_until_left(
        &cluster,
        &path,
        &owner.token,
        &mut o_b,
        room,
        "room_deleted",
    )
    .await;
}
