//! Large rooms: a bounded `online_users` snapshot and coalesced presence
//! (`presence_batch`) instead of a `user_joined` per arrival to every member.

use crate::helpers::{WsClient, spawn_with};

async fn next_presence(c: &mut WsClient) -> serde_json::Value {
    loop {
        let f = c.recv_json().await;
        if let Some("presence_batch" | "user_joined" | "user_left") = f["type"].as_str() {
            return f;
        }
    }
}

#[tokio::test]
async fn large_rooms_get_a_bounded_snapshot_and_batched_presence() {
    let app = spawn_with(|s| {
        s.presence.large_room = 2;
        s.presence.batch_ms = 200;
        s.presence.snapshot_max_users = 2;
    })
    .await;
    let mut tokens = Vec::new();
    let mut ids = Vec::new();
    for i in 0..4 {
        let (id, t) = app.register(&format!("crowd{i}")).await;
        ids.push(id);
        tokens.push(t);
    }
    let mut first = app.ws_in_general(&tokens[0]).await;
    let _second = app.ws_in_general(&tokens[1]).await;
    // Two members here: still protocol v1's single event.
    let joined = next_presence(&mut first).await;
    assert_eq!(
        (
            joined["type"].as_str(),
            joined["data"]["user"]["id"].as_i64()
        ),
        (Some("user_joined"), Some(ids[1]))
    );

    // Above `large_room` members: arrivals come in batches.
    let third = app.ws_in_general(&tokens[2]).await;
    let batch = next_presence(&mut first).await;
    assert_eq!(batch["type"], "presence_batch", "{batch}");
    assert_eq!(batch["data"]["joined"][0]["id"], ids[2]);
    assert_eq!(batch["data"]["left"], serde_json::json!([]));

    // The snapshot is cut at `snapshot_max_users`, with the full count.
    let mut fourth = app.ws(&tokens[3], "").await;
    let online = fourth.recv_type("online_users").await;
    assert_eq!(
        online["data"]["users"].as_array().unwrap().len(),
        2,
        "{online}"
    );
    assert_eq!(online["data"]["online_count"], 4);

    // A departure and an arrival within one batch: one frame, latest states.
    third.close().await;
    let batch = loop {
        let b = next_presence(&mut first).await;
        assert_eq!(b["type"], "presence_batch", "{b}");
        if b["data"]["left"].as_array().is_some_and(|l| !l.is_empty()) {
            break b;
        }
    };
    assert_eq!(batch["data"]["left"], serde_json::json!([ids[2]]));
}
