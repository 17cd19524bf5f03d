//! Resumes on demand: a small frame that makes the node read and send a
//! thousand messages.

use crate::node::Node;
use futures_util::{SinkExt, StreamExt};
use gateway::store::Store;
use shared::ids::RoomId;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// Finding 5: `join_room` with `since_seq: 0` replayed up to 1,000 messages
/// each time: 154 frames (6.9 KB up) made 338 MB down in 10 s. Replays are
/// paid for from a per-connection budget (two recovery windows, refilled by
/// one every 10 s); beyond it `rate_limited`, nothing dropped silently.
#[tokio::test]
async fn a_replay_loop_is_held_to_the_replay_budget() {
    let mut node = Node::start(&[]).await;
    let url = format!("sqlite://{}/chat.db?mode=rwc", node.dir.path().display());
    let store = Store::connect(&url, 1).await.unwrap();
    let writer = store
        .create_user("writer", "x", "Writer", gateway::clock::now())
        .await
        .unwrap();
    let body = "m".repeat(200);
    for _ in 0..1000 {
        store
            .insert_message(RoomId(1), writer.id, &body, None, gateway::clock::now())
            .await
            .unwrap();
    }
    let before = node.rss_kib();
    let watch = node.watch();
    let ws_url = format!("ws://{}/ws?token={}", node.addr(), node.token(7));
    let (ws, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    let (mut tx, mut rx) = ws.split();
    let (bytes, limited) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (b, l) = (Arc::clone(&bytes), Arc::clone(&limited));
    let reader = tokio::spawn(async move {
        while let Some(Ok(m)) = rx.next().await {
            if let Message::Text(t) = m {
                b.fetch_add(t.len(), Ordering::Relaxed);
                if t.contains("\"rate_limited\"") {
                    l.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        panic!("the connection ended");
    });
    let started = Instant::now();
    let mut sent = 0;
    while started.elapsed() < Duration::from_secs(10) {
        tx.send(Message::text(
            r#"{"type":"join_room","room_id":1,"since_seq":0}"#,
        ))
        .await
        .unwrap();
        sent += 1;
        tokio::time::sleep(Duration::from_millis(65)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!reader.is_finished(), "still connected");
    reader.abort();
    let (down, refused) = (
        bytes.load(Ordering::Relaxed),
        limited.load(Ordering::Relaxed),
    );
    println!(
        "{sent} join_room frames: {} KiB down, {refused} refused",
        down / 1024
    );
    // Two windows at once plus one per 10 s: ~3,000 messages of ~400 bytes.
    assert!(
        down < 4 << 20,
        "{} KiB sent for {sent} join_room frames",
        down / 1024
    );
    assert!(
        refused >= sent / 2,
        "{refused} of {sent} refused with rate_limited"
    );
    node.assert_served(watch, before, 64, "replay loop").await;
}
