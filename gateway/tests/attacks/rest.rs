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
    // A WebSocket of the same user sends while the REST flood runs: with
    // one shared budget the flood keeps it empty, so the WebSocket sends are
    // refused too (with separate budgets all 20 would fit its own burst).
    let ws_url = format!("ws://{}/ws?token={token}", node.addr());
    let (ws, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    let before = node.rss_kib();
    let watch = node.watch();
    let started = Instant::now();
    let ws_sends = tokio::spawn(ws_sends_during_flood(ws));
    let all = node
        .flood("/api/rooms/1/messages", 8, |http, url, t| {
            let token = token.clone();
            async move {
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
            }
        })
        .await;
    let (ws_stored, ws_refused) = ws_sends.await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    let stored = all.get(&201).copied().unwrap_or(0);
    println!(
        "2,000 posts in {secs:.1} s: {all:?}; WebSocket sends meanwhile: {ws_stored} stored, {ws_refused} rate_limited"
    );
    assert!(
        ((stored + ws_stored) as f64) <= 40.0 + 20.0 * secs + 5.0,
        "{stored} + {ws_stored} stored in {secs:.1} s (budget: 40 + 20/s)"
    );
    assert_eq!(
        stored + all.get(&429).copied().unwrap_or(0),
        2000,
        "{all:?}"
    );
    assert_eq!(ws_stored + ws_refused, 20);
    assert!(ws_refused > 0, "the WebSocket had its own budget");
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

/// Sends 20 messages over `ws`, 25 ms apart, starting 300 ms into the REST
/// flood, and counts the answers: (stored, refused as `rate_limited`).
async fn ws_sends_during_flood(
    mut ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> (usize, usize) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..20 {
        let frame = json!({"type": "message", "content": "and one more", "client_msg_id": format!("ws{i}")});
        ws.send(Message::text(frame.to_string())).await.unwrap();
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (mut stored, mut refused) = (0, 0);
    let answers = tokio::time::timeout(Duration::from_secs(30), async {
        while stored + refused < 20 {
            let Some(Ok(m)) = ws.next().await else { break };
            let v: Value =
                serde_json::from_str(m.to_text().unwrap_or("null")).unwrap_or(Value::Null);
            let ours = |id: &Value| id.as_str().is_some_and(|id| id.starts_with("ws"));
            if v["type"] == "message" && ours(&v["data"]["client_msg_id"]) {
                stored += 1;
            } else if v["type"] == "error" && ours(&v["data"]["ref"]) {
                assert_eq!(v["data"]["code"], "rate_limited", "{v}");
                refused += 1;
            }
        }
    })
    .await;
    assert!(
        answers.is_ok(),
        "{stored} stored, {refused} refused, then silence"
    );
    (stored, refused)
}
