//! Backends as managed services sell them: PostgreSQL and Redis that take
//! TLS connections only (certificates from a private CA, verified), and a
//! Redis primary found through Sentinel, failed over under the nodes. A
//! message round-trips through each; through the failover, messages keep
//! flowing once the replica is promoted.

use crate::helpers::{Cluster, Opts, RedisMode, User, WsClient, run_cmd};
use sea_orm::Database;
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;

const ROOM: i64 = 1;

/// Alice on node 0 and bob on node 1, both in room 1, once a message of
/// alice's (`content`) reached them both: the users and their clients.
async fn alice_and_bob_heard(
    cluster: &Cluster,
    content: &str,
    cmid: &str,
) -> ([User; 2], WsClient, WsClient) {
    let [alice, bob] = cluster.users(["alice", "bob"]);
    let (mut a, _) = cluster.connect(0, &alice, ROOM).await;
    let (mut b, _) = cluster.connect(1, &bob, ROOM).await;
    a.recv_type("user_joined").await;
    a.send_message(ROOM, content, cmid).await;
    a.expect_message_from(&alice, content).await;
    b.expect_message_from(&alice, content).await;
    ([alice, bob], a, b)
}

/// GET `path` on node `i` as `user`: the JSON body of a 200.
async fn get_ok(cluster: &Cluster, i: usize, user: &User, path: &str) -> Value {
    let (status, body) = cluster.get_json(i, user, path).await;
    assert_eq!(status, 200, "GET {path} on node {i}: {body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_round_trips_over_tls_to_postgres_and_redis() {
    let mut opts = Opts::nodes(2);
    opts.redis = RedisMode::Tls;
    opts.postgres_tls = true;
    let cluster = Cluster::start(opts).await;

    // Both servers refuse plain text, so what the nodes did went over TLS.
    let redis_port = cluster.redis().port.to_string();
    let plain = run_cmd("redis-cli", &["-h", "127.0.0.1", "-p", &redis_port, "PING"]).await;
    assert!(
        !matches!(&plain, Ok(out) if out.trim() == "PONG"),
        "Redis answered a plain-text client: {plain:?}"
    );
    assert_eq!(cluster.redis().cli(&["PING"]).await.as_deref(), Ok("PONG"));
    let pg_port = cluster.pg.as_ref().unwrap().port;
    let base = format!("postgres://postgres@127.0.0.1:{pg_port}/postgres");
    let err = Database::connect(format!("{base}?sslmode=disable"))
        .await
        .expect_err("PostgreSQL let a plain-text client in");
    assert!(err.to_string().contains("no encryption"), "{err}");
    // And the certificate is verified: a client without the private CA
    // (verify-full against the built-in roots) is refused by its own check.
    let err = Database::connect(format!("{base}?sslmode=verify-full"))
        .await
        .expect_err("a certificate from an unknown CA was accepted");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );

    let ([_, bob], _a, _b) = alice_and_bob_heard(&cluster, "over tls", "tls-1").await;
    // Stored through the TLS connection: the other node reads it back.
    let history = get_ok(&cluster, 1, &bob, "/api/rooms/1/messages").await;
    assert_eq!(contents(&history), ["over tls"], "{history}");
    cluster.report("a message round-tripped over TLS to PostgreSQL and Redis");
}

/// Send `content` as `cmid` until it is acknowledged: while the nodes
/// reconnect to the new primary a send is refused `unavailable` (nothing
/// stored), and the client retries with the same id.
async fn send_until_acknowledged(c: &mut WsClient, from: &User, content: &str, cmid: &str) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut refused = 0;
    loop {
        c.send_message(ROOM, content, cmid).await;
        let answer = loop {
            let f =
                c.rx.next_within(Duration::from_secs(10))
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e}", c.label));
            if f["type"] == "message" || f["type"] == "error" {
                break f;
            }
        };
        match answer["type"].as_str() {
            Some("message") => {
                assert_eq!(
                    (
                        answer["data"]["content"].as_str(),
                        answer["data"]["user_id"].as_i64()
                    ),
                    (Some(content), Some(from.id)),
                    "{}: {answer}",
                    c.label
                );
                return refused;
            }
            _ => {
                assert_eq!(
                    answer["data"]["code"], "unavailable",
                    "{}: {answer}",
                    c.label
                );
                assert_eq!(answer["data"]["ref"], cmid, "{}: {answer}", c.label);
                refused += 1;
                assert!(
                    Instant::now() < deadline,
                    "{}: still refused after 30 s",
                    c.label
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_keep_flowing_through_a_sentinel_failover() {
    let mut opts = Opts::nodes(2);
    opts.redis = RedisMode::Sentinel;
    let mut cluster = Cluster::start(opts).await;
    let ([alice, bob], mut a, mut b) = alice_and_bob_heard(&cluster, "before", "s-0").await;

    let set = cluster.sentinel.as_mut().unwrap();
    let took = set.fail_over(Duration::from_secs(60)).await;
    cluster.report(&format!(
        "replica promoted {took:.1?} after the primary was killed"
    ));

    // Through the new primary, both ways, each message once and in order.
    let refused = send_until_acknowledged(&mut a, &alice, "after A", "s-1").await;
    b.expect_message_from(&alice, "after A").await;
    send_until_acknowledged(&mut b, &bob, "after B", "s-2").await;
    a.expect_message_from(&bob, "after B").await;
    for i in 0..2 {
        cluster
            .node(i)
            .wait_bus(true, Duration::from_secs(20))
            .await;
    }
    no_more_messages(&mut a, Duration::from_millis(500)).await;
    no_more_messages(&mut b, Duration::from_millis(500)).await;
    let history = get_ok(&cluster, 0, &alice, "/api/rooms/1/messages").await;
    // Newest first, each once.
    assert_eq!(
        contents(&history),
        ["after B", "after A", "before"],
        "{history}"
    );
    cluster.report(&format!(
        "messages flow through the new primary ({refused} sends refused meanwhile)"
    ));
}

/// No further `message` frame within `within` (presence frames may come:
/// the nodes re-assert presence on the new primary).
async fn no_more_messages(c: &mut WsClient, within: Duration) {
    let until = Instant::now() + within;
    while let Ok(f) =
        c.rx.next_within(until.saturating_duration_since(Instant::now()))
            .await
    {
        assert_ne!(f["type"], "message", "{}: a message twice: {f}", c.label);
    }
}

/// The contents of a room's history page.
fn contents(history: &Value) -> Vec<String> {
    history["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no messages in {history}"))
        .iter()
        .filter_map(|m| m["content"].as_str().map(str::to_owned))
        .collect()
}
