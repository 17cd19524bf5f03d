//! Scenarios 5 and 6: a backend (Redis, then PostgreSQL) goes away while the
//! nodes and their clients stay up, then comes back on the same port. While
//! it is down `/readyz` stays 200 (`degraded`: a shared outage must not take
//! every node out of the balancer) and a chat message is refused with an `error`
//! frame `unavailable` (never silently dropped, never echoed); with
//! PostgreSQL down, REST reads and writes get 503 `unavailable` too. After it
//! is back the same three nodes and the same connections work again, without
//! restarts.

use crate::helpers::{Cluster, Opts, WsClient};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::time::Instant;

const ROOM: i64 = 1;
/// How long a node may take to notice a lost or recovered backend.
const RECOVERY: Duration = Duration::from_secs(15);

/// The next frame must be an `unavailable` error answering `cmid`.
async fn expect_unavailable(c: &mut WsClient, cmid: &str, within: Duration) {
    let started = Instant::now();
    let got = match c.rx.next_within(within).await {
        Ok(v) => v,
        Err(e) => panic!(
            "{}: no answer to message {cmid} during the outage: {e}",
            c.label
        ),
    };
    assert_eq!(
        (
            got["type"].as_str(),
            got["room_id"].as_i64(),
            got["data"]["code"].as_str(),
            got["data"]["ref"].as_str(),
        ),
        (Some("error"), Some(ROOM), Some("unavailable"), Some(cmid)),
        "{}: answer to a message sent during the outage: {got}",
        c.label
    );
    eprintln!(
        "[outage] {}: unavailable after {:.1?}",
        c.label,
        started.elapsed()
    );
}

/// Every node reports the bus up (or down), still taking traffic.
async fn all_bus(cluster: &Cluster, up: bool, within: Duration) {
    futures_util::future::join_all(cluster.nodes.iter().map(|n| n.wait_bus(up, within))).await;
}

/// Every node reports the database up (or down), still taking traffic.
async fn all_database(cluster: &Cluster, up: bool, within: Duration) {
    futures_util::future::join_all(cluster.nodes.iter().map(|n| n.wait_database(up, within))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_ride_out_a_redis_outage() {
    let mut opts = Opts::nodes(3);
    // Long enough that the periodic refresh (every ttl/3 = 40 s) cannot be
    // what brings presence back: the nodes must re-assert it on reconnect.
    opts.presence_ttl_secs = Some(120);
    let mut cluster = Cluster::start(opts).await;
    let [alice, bob, carol, dave] = cluster.users(["alice", "bob", "carol", "dave"]);
    let (mut a, _) = cluster.connect(0, &alice, ROOM).await;
    let (mut b, _) = cluster.connect(1, &bob, ROOM).await;
    let (mut c, _) = cluster.connect(2, &carol, ROOM).await;
    a.recv_type("user_joined").await;
    a.recv_type("user_joined").await;
    b.recv_type("user_joined").await;
    a.send_message(ROOM, "before", "a0").await;
    for x in [&mut a, &mut b, &mut c] {
        x.expect_message_from(&alice, "before").await;
    }

    // Redis goes away (SIGKILL: a crash; it comes back empty).
    cluster.redis_mut().kill().await;
    let down = Instant::now();
    all_bus(&cluster, false, Duration::from_secs(10)).await;
    cluster.report("every node reports the bus down, still taking traffic (degraded)");

    // A message sent now is refused, on every node, and not echoed.
    a.send_message(ROOM, "during A", "dA").await;
    b.send_message(ROOM, "during B", "dB").await;
    c.send_message(ROOM, "during C", "dC").await;
    tokio::join!(
        expect_unavailable(&mut a, "dA", Duration::from_secs(8)),
        expect_unavailable(&mut b, "dB", Duration::from_secs(8)),
        expect_unavailable(&mut c, "dC", Duration::from_secs(8)),
    );
    for n in &cluster.nodes {
        let checks = n.ready_checks().await.unwrap();
        assert_eq!(
            (checks.http, checks.status.as_str(), checks.bus),
            (200, "degraded", false),
            "node {} while Redis is still down",
            n.name
        );
    }
    // What does not need Redis is still served: the history, from PostgreSQL.
    for i in 0..cluster.nodes.len() {
        let (status, body) = cluster.get_json(i, &alice, "/api/rooms/1/messages").await;
        assert_eq!(status, 200, "history on node {i} with Redis down: {body}");
    }

    // Back after 10 s, on the same port.
    tokio::time::sleep_until(down + Duration::from_secs(10)).await;
    cluster.redis_mut().restart().await;
    let up = Instant::now();
    cluster.report("Redis restarted");
    all_bus(&cluster, true, RECOVERY).await;
    // Every node re-subscribed room 1 for its existing connections.
    cluster
        .wait_numsub(ROOM, 3, RECOVERY.saturating_sub(up.elapsed()))
        .await;
    eprintln!(
        "[outage] ready and re-subscribed {:.1?} after Redis came back",
        up.elapsed()
    );

    // Messages flow again from every node to every node between the
    // connections opened before the outage; no "during" message shows up.
    for (i, from) in [&alice, &bob, &carol].into_iter().enumerate() {
        let content = format!("after {}", from.username);
        let sender = [&mut a, &mut b, &mut c].into_iter().nth(i).unwrap();
        sender
            .send_message(ROOM, &content, &format!("after-{i}"))
            .await;
        for x in [&mut a, &mut b, &mut c] {
            x.expect_message_from(from, &content).await;
        }
    }

    // Presence is back: a newcomer sees the users connected before the outage.
    let deadline = up + RECOVERY;
    loop {
        let (d, online) = cluster.connect(1, &dave, ROOM).await;
        let ids = Cluster::online_ids(&online);
        let expected = vec![alice.id, bob.id, carol.id, dave.id];
        if ids == expected {
            eprintln!(
                "[outage] presence back {:.1?} after Redis came back",
                up.elapsed()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{RECOVERY:?} after Redis came back a newcomer's online_users is {ids:?}, expected {expected:?}"
        );
        d.close_and_wait().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    cluster.report("Redis outage scenario done");
}

/// The reads a client makes: a room's history and the room list.
const READS: [&str; 2] = ["/api/rooms/1/messages", "/api/rooms"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_ride_out_a_postgres_outage() {
    let mut opts = Opts::nodes(3);
    opts.own_postgres = true;
    let mut cluster = Cluster::start(opts).await;
    let [alice, bob, carol] = cluster.users(["alice", "bob", "carol"]);
    let (mut a, _) = cluster.connect(0, &alice, ROOM).await;
    let (mut b, _) = cluster.connect(1, &bob, ROOM).await;
    let (mut c, _) = cluster.connect(2, &carol, ROOM).await;
    a.send_message(ROOM, "before", "a0").await;
    for x in [&mut a, &mut b, &mut c] {
        x.expect_message_from(&alice, "before").await;
    }
    for (i, path) in READS.iter().enumerate() {
        let (status, body) = cluster.get_json(i, &bob, path).await;
        assert_eq!(status, 200, "GET {path} before the outage: {body}");
    }

    cluster.pg.as_mut().unwrap().stop().await;
    cluster.report("PostgreSQL stopped");

    // A message is refused (it cannot be stored), not echoed.
    a.send_message(ROOM, "during", "d1").await;
    expect_unavailable(&mut a, "d1", RECOVERY).await;
    all_database(&cluster, false, RECOVERY).await;
    let http = reqwest::Client::new();
    let resp = http
        .post(cluster.node(0).url("/api/auth/register"))
        .json(&json!({"username": "newbie", "password": "password123"}))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .expect("register answers while the database is down");
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("a JSON body");
    assert_eq!(status, 503, "register while the database is down: {body}");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    // Reads fail clearly too, on every node (a history page that the Redis
    // cache could serve still needs the room, which lives in PostgreSQL).
    // Each waits for the pool's acquire timeout: all at once.
    let reads = (0..cluster.nodes.len())
        .flat_map(|i| READS.map(|path| (i, path)))
        .map(|(i, path)| {
            let (cluster, bob) = (&cluster, &bob);
            async move { (i, path, cluster.get_json(i, bob, path).await) }
        });
    for (i, path, (status, body)) in futures_util::future::join_all(reads).await {
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (503, Some("unavailable")),
            "GET {path} on node {i} while the database is down: {body}"
        );
    }

    cluster.pg.as_mut().unwrap().restart().await;
    let up = Instant::now();
    cluster.report("PostgreSQL restarted");

    // Sending works again without restarting anything. Retry while the
    // nodes reconnect; refused attempts are never broadcast.
    let mut attempt = 0;
    let sent = loop {
        attempt += 1;
        let (content, cmid) = (format!("after {attempt}"), format!("a{attempt}"));
        a.send_message(ROOM, &content, &cmid).await;
        let got = a.rx.recv_json_within(Duration::from_secs(10)).await;
        if got["type"] == "message" && got["data"]["content"] == content {
            break content;
        }
        assert_eq!(
            (
                got["type"].as_str(),
                got["data"]["code"].as_str(),
                got["data"]["ref"].as_str()
            ),
            (Some("error"), Some("unavailable"), Some(cmid.as_str())),
            "answer to {cmid} while PostgreSQL restarts: {got}"
        );
        assert!(
            up.elapsed() < RECOVERY,
            "{RECOVERY:?} after PostgreSQL came back, sending still fails: {got}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    eprintln!(
        "[outage] sending works {:.1?} after PostgreSQL came back (attempt {attempt})",
        up.elapsed()
    );
    b.expect_message_from(&alice, &sent).await;
    c.expect_message_from(&alice, &sent).await;
    b.send_message(ROOM, "after B", "b1").await;
    for x in [&mut a, &mut b, &mut c] {
        x.expect_message_from(&bob, "after B").await;
    }
    c.send_message(ROOM, "after C", "c1").await;
    for x in [&mut a, &mut b, &mut c] {
        x.expect_message_from(&carol, "after C").await;
    }
    all_database(&cluster, true, RECOVERY.saturating_sub(up.elapsed())).await;
    let resp = http
        .post(cluster.node(1).url("/api/auth/register"))
        .json(&json!({"username": "newbie", "password": "password123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "register after PostgreSQL came back");
    // Reads work again on every node; the history has what was sent before
    // and after the outage, and nothing that was refused.
    for i in 0..cluster.nodes.len() {
        for path in READS {
            let (status, body) = cluster.get_json(i, &bob, path).await;
            assert_eq!(status, 200, "GET {path} on node {i} after recovery: {body}");
        }
        let (_, page) = cluster.get_json(i, &bob, READS[0]).await;
        let contents: Vec<&str> = page["messages"]
            .as_array()
            .unwrap_or_else(|| panic!("a history page: {page}"))
            .iter()
            .filter_map(|m| m["content"].as_str())
            .collect();
        assert_eq!(
            contents,
            vec!["after C", "after B", sent.as_str(), "before"],
            "history on node {i} after recovery"
        );
    }
    cluster.report("PostgreSQL outage scenario done");
}
