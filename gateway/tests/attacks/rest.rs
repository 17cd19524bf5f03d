//! REST writes: the same budgets as the WebSocket, and a cap on rooms.

use crate::node::Node;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Finding 6: one user posted 2,000 messages in 1.2 s over REST, all 201,
/// while the WebSocket allows 20/s. Sends now share one budget per user
/// (`limits.msg_rate`, bursts of `limits.msg_burst`), REST or WebSocket.
#[tokio::test]
async fn rest_sends_share_the_users_send_budget() {
    let mut node = Node::start(&[]).await;
    let token = node.register("poster").await.unwrap();
    let joined = node
        .http
        .post(node.url("/api/rooms/1/join"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(joined.status().is_success());
    let before = node.rss_kib();
    let watch = node.watch();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (http, url, token) = (
            node.http.clone(),
            node.url("/api/rooms/1/messages"),
            token.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut got: BTreeMap<u16, usize> = BTreeMap::new();
            for i in 0..250 {
                let r = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"content": format!("flood {t} {i}")}))
                    .send()
                    .await
                    .unwrap();
                if r.status() == 429 {
                    assert!(r.headers().get("retry-after").is_some());
                }
                *got.entry(r.status().as_u16()).or_default() += 1;
            }
            got
        }));
    }
    let mut all: BTreeMap<u16, usize> = BTreeMap::new();
    for t in tasks {
        for (k, v) in t.await.unwrap() {
            *all.entry(k).or_default() += v;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let stored = all.get(&201).copied().unwrap_or(0);
    println!("2,000 posts in {secs:.1} s: {all:?}");
    assert!(
        (stored as f64) <= 40.0 + 20.0 * secs + 5.0,
        "{stored} stored in {secs:.1} s (budget: 40 + 20/s)"
    );
    assert_eq!(
        stored + all.get(&429).copied().unwrap_or(0),
        2000,
        "{all:?}"
    );
    // The WebSocket send draws on the same (spent) budget.
    let ws_url = format!("ws://{}/ws?token={token}", node.addr());
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    use futures_util::{SinkExt, StreamExt};
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        r#"{"type":"message","content":"and one more","client_msg_id":"x1"}"#,
    ))
    .await
    .unwrap();
    let refused = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(m)) = ws.next().await {
            let v: Value =
                serde_json::from_str(m.to_text().unwrap_or("null")).unwrap_or(Value::Null);
            if v["type"] == "error" || v["type"] == "message" {
                return v;
            }
        }
        Value::Null
    })
    .await
    .unwrap();
    assert_eq!(refused["data"]["code"], "rate_limited", "{refused}");
    assert_eq!(refused["data"]["ref"], "x1");
    node.assert_served(watch, before, 64, "REST send flood")
        .await;
}

/// Finding 6: one user created 300 rooms in 0.2 s, and they show in every
/// user's list. REST writes are limited per user (`limits.rest_write_rate`)
/// and a user owns at most `limits.max_rooms_per_user` rooms (50).
#[tokio::test]
async fn room_creation_is_rate_limited_and_capped_per_user() {
    async fn create_300(node: &Node, token: &str) -> BTreeMap<u16, usize> {
        let mut got = BTreeMap::new();
        for i in 0..300 {
            let r = node
                .http
                .post(node.url("/api/rooms"))
                .bearer_auth(token)
                .json(&json!({"name": format!("spam {i}")}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            if status == 403 {
                let body: Value = r.json().await.unwrap();
                assert_eq!(body["error"]["code"], "too_many_rooms");
            }
            *got.entry(status).or_insert(0) += 1;
        }
        got
    }
    let node = Node::start(&[]).await;
    let token = node.register("spammer").await.unwrap();
    let got = create_300(&node, &token).await;
    println!("default limits: {got:?}");
    assert!(
        got.get(&429).is_some_and(|n| *n >= 200),
        "rate limited: {got:?}"
    );
    assert!(got.get(&201).is_some_and(|n| *n <= 50), "{got:?}");

    let node = Node::start(&[("CHAT__LIMITS__REST_WRITE_RATE", "0")]).await;
    let token = node.register("spammer").await.unwrap();
    let got = create_300(&node, &token).await;
    assert_eq!(got.get(&201), Some(&50), "the cap: {got:?}");
    assert_eq!(got.get(&403), Some(&250), "{got:?}");
}
