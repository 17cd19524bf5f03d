//! The moments around a Redis outage that are too short to hit by chance,
//! stretched with a proxy between node B and Redis (node A talks to Redis
//! directly): a re-SUBSCRIBE that takes effect late, and a publish that fails
//! after the message was committed. In both, the message concerned is the
//! LAST of the room: no later message reveals a gap, so only the mechanism
//! under test can bring it to everyone (see `gateway/src/redis/resubscribe.rs`
//! and `gateway/src/node/republish.rs`).

use crate::helpers::{Cluster, GatewayNode, Opts, WsClient};
use crate::redis_proxy::RedisProxy;
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;

const ROOM: i64 = 1;

/// Node A on Redis, node B on Redis through a proxy.
async fn cluster_with_proxied_b() -> (Cluster, RedisProxy) {
    let mut cluster = Cluster::start(Opts::nodes(1)).await;
    let proxy = RedisProxy::start(cluster.redis().port).await;
    let env = cluster.node(0).env_with("CHAT__REDIS__URL", &proxy.url());
    let b = GatewayNode::start("B", cluster.dir.path(), &env).await;
    cluster.nodes.push(b);
    (cluster, proxy)
}

/// Every `message` frame until `quiet` passes without a frame.
async fn messages_until_quiet(c: &mut WsClient, quiet: Duration) -> Vec<Value> {
    let mut got = Vec::new();
    while let Ok(f) = c.rx.next_within(quiet).await {
        if f["type"] == "message" {
            got.push(f["data"].clone());
        }
    }
    got
}

/// Send until acknowledged (retrying the same id on `unavailable`); the ack.
async fn send_until_acked(c: &mut WsClient, content: &str, cmid: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        c.send_message(ROOM, content, cmid).await;
        loop {
            let f =
                c.rx.next_within(deadline.saturating_duration_since(Instant::now()))
                    .await
                    .unwrap_or_else(|e| panic!("{}: no answer to {cmid}: {e}", c.label));
            if f["type"] == "message" && f["data"]["client_msg_id"] == cmid {
                return f["data"].clone();
            }
            if f["type"] == "error" {
                assert_eq!(f["data"]["code"], "unavailable", "{f}");
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Redis is killed and restarted. Node B's re-SUBSCRIBE is held by the
/// proxy; meanwhile the room's last message is sent on node A. B must catch
/// up from the history only once its re-subscription is confirmed, so the
/// message reaches B's member although nothing follows it. (Refilling at the
/// reconnect itself, before the SUBSCRIBE took effect, lost it for good.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_message_after_a_redis_outage_reaches_everyone() {
    let (mut cluster, proxy) = cluster_with_proxied_b().await;
    let [alice, bob] = cluster.users(["alice", "bob"]);
    let (mut a, _) = cluster.connect(0, &alice, ROOM).await;
    let (mut b, _) = cluster.connect(1, &bob, ROOM).await;
    a.recv_type("user_joined").await;
    send_until_acked(&mut a, "before", "a0", Duration::from_secs(5)).await;
    b.recv_type("message").await;

    proxy.hold_subscribes();
    cluster.redis_mut().kill().await;
    cluster
        .node(0)
        .wait_bus(false, Duration::from_secs(10))
        .await;
    cluster
        .node(1)
        .wait_bus(false, Duration::from_secs(10))
        .await;
    cluster.redis_mut().restart().await;
    cluster.report("Redis restarted; B's SUBSCRIBEs are held");
    cluster
        .node(0)
        .wait_bus(true, Duration::from_secs(15))
        .await;
    // B's subscriber is back and re-subscribing; give a refill at the
    // reconnect time to run, then send the last message.
    proxy.wait_held_subscribe(Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let last = send_until_acked(&mut a, "the last one", "a1", Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.release_subscribes();
    cluster.report("the last message was published; B's SUBSCRIBE released");

    let got = messages_until_quiet(&mut b, Duration::from_secs(8)).await;
    assert_eq!(
        got.iter().map(|m| m["seq"].clone()).collect::<Vec<_>>(),
        vec![last["seq"].clone()],
        "bob on node B: the last message, once ({got:?})"
    );
    assert!(
        messages_until_quiet(&mut a, Duration::from_millis(300))
            .await
            .is_empty()
    );
}

/// Node B's Redis connections stay open but pass nothing (the proxy holds
/// them) while bob sends: the message is committed, its publish times out.
/// It is durable, so bob's one answer is the stored message, never
/// `unavailable`; once Redis is reachable again it reaches alice on node A,
/// although no message follows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_failing_after_the_commit_is_acknowledged_and_delivered() {
    let (cluster, proxy) = cluster_with_proxied_b().await;
    let [alice, bob] = cluster.users(["alice", "bob"]);
    let (mut a, _) = cluster.connect(0, &alice, ROOM).await;
    let (mut b, _) = cluster.connect(1, &bob, ROOM).await;
    a.recv_type("user_joined").await;

    proxy.pause();
    b.send_message(ROOM, "stuck", "b1").await;
    let answers = messages_or_errors(&mut b, Duration::from_secs(4)).await;
    proxy.resume();
    assert_eq!(answers.len(), 1, "bob: exactly one answer: {answers:?}");
    assert_eq!(
        (
            answers[0]["type"].as_str(),
            answers[0]["data"]["client_msg_id"].as_str()
        ),
        (Some("message"), Some("b1")),
        "bob's answer is the stored message: {answers:?}"
    );
    let seq = answers[0]["data"]["seq"].clone();
    let got = messages_until_quiet(&mut a, Duration::from_secs(8)).await;
    assert_eq!(
        got.iter().map(|m| m["seq"].clone()).collect::<Vec<_>>(),
        vec![seq],
        "alice on node A: bob's message, once ({got:?})"
    );
    let more = messages_or_errors(&mut b, Duration::from_millis(500)).await;
    assert!(more.is_empty(), "bob: nothing more: {more:?}");
    cluster.report("publish failure after the commit: acknowledged once, delivered");
}

/// `message` and `error` frames until `quiet` passes without a frame.
async fn messages_or_errors(c: &mut WsClient, quiet: Duration) -> Vec<Value> {
    let mut got = Vec::new();
    while let Ok(f) = c.rx.next_within(quiet).await {
        if f["type"] == "message" || f["type"] == "error" {
            got.push(f);
        }
    }
    got
}
