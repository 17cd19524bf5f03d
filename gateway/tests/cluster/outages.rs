//! Scenarios 5 and 6: a backend (Redis, then PostgreSQL) goes away while the
//! nodes and their clients stay up, then comes back on the same port. While
//! it is down `/readyz` is 503 and a chat message is refused with an `error`
//! frame `unavailable` (never silently dropped, never echoed); after it is
//! back the same nodes and the same connections work again, without restarts.

use crate::helpers::{Cluster, Opts, User, WsClient};
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

/// The next `message` frame (presence frames skipped) must be `content` from `from`.
async fn expect_next_message(c: &mut WsClient, from: &User, content: &str) {
    let m = c.recv_type("message").await;
    assert_eq!(
        (m["data"]["content"].as_str(), m["data"]["user_id"].as_i64()),
        (Some(content), Some(from.id)),
        "{}: expected {content:?} from {}, got {m}",
        c.label,
        from.username
    );
}

async fn both_readyz(cluster: &Cluster, status: u16, within: Duration) {
    tokio::join!(
        cluster.node(0).wait_readyz(status, within),
        cluster.node(1).wait_readyz(status, within),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_ride_out_a_redis_outage() {
    let mut opts = Opts::nodes(2);
    // Long enough that the periodic refresh (every ttl/3 = 40 s) cannot be
    // what brings presence back: the nodes must re-assert it on reconnect.
    opts.presence_ttl_secs = Some(120);
    let mut cluster = Cluster::start(opts).await;
    let (alice, bob, carol) = (
        cluster.user("alice"),
        cluster.user("bob"),
        cluster.user("carol"),
    );
    let (mut a, _) = cluster.connect(0, &alice, ROOM).await;
    let (mut b, _) = cluster.connect(1, &bob, ROOM).await;
    a.recv_type("user_joined").await;
    a.send_message(ROOM, "before", "a0").await;
    expect_next_message(&mut a, &alice, "before").await;
    expect_next_message(&mut b, &alice, "before").await;

    // Redis goes away (SIGKILL: a crash; it comes back empty).
    cluster.redis_mut().kill().await;
    let down = Instant::now();
    both_readyz(&cluster, 503, Duration::from_secs(10)).await;
    cluster.report("both nodes report 503 with Redis down");

    // A message sent now is refused, on both nodes, and not echoed.
    a.send_message(ROOM, "during A", "dA").await;
    b.send_message(ROOM, "during B", "dB").await;
    tokio::join!(
        expect_unavailable(&mut a, "dA", Duration::from_secs(8)),
        expect_unavailable(&mut b, "dB", Duration::from_secs(8)),
    );
    for n in &cluster.nodes {
        assert_eq!(
            n.readyz().await,
            Some(503),
            "node {} while Redis is still down",
            n.name
        );
    }

    // Back after 10 s, on the same port.
    tokio::time::sleep_until(down + Duration::from_secs(10)).await;
    cluster.redis_mut().restart().await;
    let up = Instant::now();
    cluster.report("Redis restarted");
    both_readyz(&cluster, 200, RECOVERY).await;
    // Both nodes re-subscribed room 1 for their existing connections.
    cluster
        .wait_numsub(ROOM, 2, RECOVERY.saturating_sub(up.elapsed()))
        .await;
    eprintln!(
        "[outage] ready and re-subscribed {:.1?} after Redis came back",
        up.elapsed()
    );

    // Messages flow again both ways between the connections opened before
    // the outage; neither "during" message ever shows up.
    a.send_message(ROOM, "after A", "a1").await;
    expect_next_message(&mut a, &alice, "after A").await;
    expect_next_message(&mut b, &alice, "after A").await;
    b.send_message(ROOM, "after B", "b1").await;
    expect_next_message(&mut b, &bob, "after B").await;
    expect_next_message(&mut a, &bob, "after B").await;

    // Presence is back: a newcomer sees the users connected before the outage.
    let deadline = up + RECOVERY;
    loop {
        let (c, online) = cluster.connect(1, &carol, ROOM).await;
        let ids = Cluster::online_ids(&online);
        if ids == vec![alice.id, bob.id, carol.id] {
            eprintln!(
                "[outage] presence back {:.1?} after Redis came back",
                up.elapsed()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{RECOVERY:?} after Redis came back a newcomer's online_users is {ids:?}, expected [{}, {}, {}]",
            alice.id,
            bob.id,
            carol.id
        );
        c.close_and_wait().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    cluster.report("Redis outage scenario done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_ride_out_a_postgres_outage() {
    let mut opts = Opts::nodes(2);
    opts.own_postgres = true;
    let mut cluster = Cluster::start(opts).await;
    let (alice, bob) = (cluster.user("alice"), cluster.user("bob"));
    let (mut a, _) = cluster.connect(0, &alice, ROOM).await;
    let (mut b, _) = cluster.connect(1, &bob, ROOM).await;
    a.recv_type("user_joined").await;
    a.send_message(ROOM, "before", "a0").await;
    expect_next_message(&mut a, &alice, "before").await;
    expect_next_message(&mut b, &alice, "before").await;

    cluster.pg.as_mut().unwrap().stop().await;
    cluster.report("PostgreSQL stopped");

    // A message is refused (it cannot be stored), not echoed.
    a.send_message(ROOM, "during", "d1").await;
    expect_unavailable(&mut a, "d1", RECOVERY).await;
    both_readyz(&cluster, 503, RECOVERY).await;
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
    expect_next_message(&mut b, &alice, &sent).await;
    b.send_message(ROOM, "after B", "b1").await;
    expect_next_message(&mut b, &bob, "after B").await;
    expect_next_message(&mut a, &bob, "after B").await;
    both_readyz(&cluster, 200, RECOVERY.saturating_sub(up.elapsed())).await;
    let resp = http
        .post(cluster.node(1).url("/api/auth/register"))
        .json(&json!({"username": "newbie", "password": "password123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "register after PostgreSQL came back");
    cluster.report("PostgreSQL outage scenario done");
}
