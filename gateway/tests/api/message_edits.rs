//! Editing and deleting messages: who may, what the room hears on every
//! node, what the history shows (from SQL and from Redis's cache alike), and
//! what a client that was away learns when it resumes with `since_seq`.

use crate::helpers::{TestApp, WsClient, spawn_app, spawn_pair, spawn_with};
use serde_json::{Value, json};

/// Alice's message `content` in room 1, as her connection's echo.
async fn said(talker: &mut WsClient, content: &str) -> Value {
    let echo = talker.say(content).await;
    assert_eq!(echo["data"]["content"], content, "{echo}");
    echo["data"].clone()
}

/// Room 1's newest history page as `token` sees it.
async fn newest(app: &TestApp, token: &str) -> Vec<Value> {
    let (status, page) = app.messages(token, 1, "limit=100").await;
    assert_eq!(status, 200, "{page}");
    page["messages"].as_array().unwrap().clone()
}

#[tokio::test]
async fn edits_and_deletes_reach_the_room_on_every_node_and_the_history() {
    let (a, b) = &spawn_pair().await;
    let (_, alice, mut talker) = a.user_in_general("alice").await;
    let (_, bob, mut listener) = b.user_in_general("bob").await;
    let m = said(&mut talker, "helo").await;
    listener.recv_type("message").await;
    let id = m["id"].as_i64().unwrap();

    // The author edits, through the other node: 200 with the message.
    let (status, edited) = b.edit_message(&alice, 1, id, "hello").await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(
        (&edited["id"], &edited["seq"], &edited["content"]),
        (&m["id"], &json!(1), &json!("hello"))
    );
    let edited_at = edited["edited_at"].as_str().expect("edited_at").to_owned();
    for c in [&mut talker, &mut listener] {
        let frame = c.next_event().await;
        assert_eq!(
            frame,
            json!({"type": "message_edited", "room_id": 1,
                   "data": {"id": id, "seq": 2, "content": "hello", "edited_at": edited_at}})
        );
    }
    let history = newest(b, &bob).await;
    assert_eq!(history.len(), 1, "events are not messages: {history:?}");
    assert_eq!(
        (&history[0]["content"], &history[0]["edited_at"]),
        (&json!("hello"), &json!(edited_at))
    );
    // The same content again changes nothing.
    let (status, _) = a.edit_message(&alice, 1, id, "hello").await;
    assert_eq!(status, 200);

    // Others may neither edit nor (not moderating room 1) delete it.
    let (status, body) = a.edit_message(&bob, 1, id, "mine now").await;
    assert_eq!((status, &body["error"]["code"]), (403, &json!("forbidden")));
    let (status, body) = a.delete_message(&bob, 1, id).await;
    assert_eq!((status, &body["error"]["code"]), (403, &json!("forbidden")));
    // Bad content is refused as a new message's would be.
    let (status, body) = a.edit_message(&alice, 1, id, "  ").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (422, &json!("content_empty"))
    );

    // The author deletes it: a tombstone in the history, on both nodes.
    let (status, _) = a.delete_message(&alice, 1, id).await;
    assert_eq!(status, 204);
    for c in [&mut talker, &mut listener] {
        let frame = c.next_event().await;
        assert_eq!(
            frame,
            json!({"type": "message_deleted", "room_id": 1, "data": {"id": id, "seq": 3}})
        );
    }
    for app in [a, b] {
        let history = newest(app, &bob).await;
        assert_eq!(history[0]["deleted"], true, "{history:?}");
        assert_eq!(history[0]["content"], "");
    }
    // Deleting again: 204, and nothing is sent; editing a deleted message: 404.
    let (status, _) = b.delete_message(&alice, 1, id).await;
    assert_eq!(status, 204);
    let (status, _) = a.edit_message(&alice, 1, id, "back").await;
    assert_eq!(status, 404);
    let (status, _) = a.delete_message(&alice, 1, id + 1000).await;
    assert_eq!(status, 404);
    talker.say("next").await;
    assert_eq!(listener.next_event().await["data"]["seq"], 4);
}

#[tokio::test]
async fn a_rooms_owner_and_admins_may_delete_any_message_and_non_members_nothing() {
    let app = &spawn_app().await;
    let (_, carol) = app.register("carol").await;
    let (_, bob) = app.register("bob").await;
    let (dave_id, dave) = app.register("dave").await;
    let room = app.create_room(&carol, "carols", false).await;
    let (status, _) = app.join_room(&bob, room).await;
    assert_eq!(status, 200);
    let post = |token, text: &str| {
        let body = json!({"content": text});
        async move { app.post_message(token, room, body).await }
    };
    let (_, first) = post(&bob, "one").await;
    let (_, second) = post(&bob, "two").await;
    // Dave is not a member of the (public) room.
    let (status, body) = app
        .delete_message(&dave, room, first["id"].as_i64().unwrap())
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("not_a_member"))
    );
    // The owner may delete bob's message (but not edit it).
    let (status, _) = app
        .edit_message(&carol, room, first["id"].as_i64().unwrap(), "x")
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .delete_message(&carol, room, first["id"].as_i64().unwrap())
        .await;
    assert_eq!(status, 204);
    // So may an admin.
    let (status, _) = app.join_room(&dave, room).await;
    assert_eq!(status, 200);
    let (status, _) = app.set_role(&carol, room, dave_id, "admin").await;
    assert_eq!(status, 200);
    let (status, _) = app
        .delete_message(&dave, room, second["id"].as_i64().unwrap())
        .await;
    assert_eq!(status, 204);
    // A message of another room is not found in this one.
    let other = app.create_room(&bob, "bobs", false).await;
    let (_, elsewhere) = app
        .post_message(&bob, other, json!({"content": "elsewhere"}))
        .await;
    let (status, _) = app
        .delete_message(&bob, room, elsewhere["id"].as_i64().unwrap())
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_client_back_from_away_learns_each_edit_and_delete_once_and_in_order() {
    let (a, b) = &spawn_pair().await;
    let [(_, alice), (_, bob)] = a.register_all(["alice", "bob"]).await;
    let mut talker = a.ws_in_general(&alice).await;
    let mut ids = Vec::new();
    for text in ["m1", "m2", "m3"] {
        ids.push(said(&mut talker, text).await["id"].as_i64().unwrap());
    }
    // Bob saw seq 1 and went away; meanwhile m2 is edited twice (seqs 4
    // and 6) and m3 deleted (seq 5).
    assert_eq!(a.edit_message(&alice, 1, ids[1], "m2'").await.0, 200);
    assert_eq!(a.delete_message(&alice, 1, ids[2]).await.0, 204);
    assert_eq!(b.edit_message(&alice, 1, ids[1], "m2''").await.0, 200);
    let mut back = b.ws(&bob, "&since_seq=1").await;
    back.recv_type("online_users").await;
    let mut got = Vec::new();
    while got.len() < 5 {
        got.push(back.next_event().await);
    }
    let seen: Vec<(i64, &str)> = got
        .iter()
        .map(|f| {
            (
                f["data"]["seq"].as_i64().unwrap(),
                f["type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (2, "message"),
            (3, "message"),
            (4, "message_edited"),
            (5, "message_deleted"),
            (6, "message_edited"),
        ]
    );
    // The messages as they now are; each edit as it was made.
    assert_eq!(got[0]["data"]["content"], "m2''");
    assert_eq!(
        (&got[1]["data"]["deleted"], &got[1]["data"]["content"]),
        (&json!(true), &json!(""))
    );
    assert_eq!(got[2]["data"]["content"], "m2'");
    assert_eq!(got[3]["data"]["id"], ids[2]);
    assert_eq!(got[4]["data"]["content"], "m2''");
    // Then the live stream goes on, nothing repeated.
    talker.say("m4").await;
    let next = back.next_event().await;
    assert_eq!(
        (next["type"].as_str(), next["data"]["seq"].as_i64()),
        (Some("message"), Some(7))
    );
}

#[tokio::test]
async fn past_the_edit_window_a_message_can_be_deleted_but_not_edited() {
    let app = spawn_with(|s| s.limits.edit_window_secs = 0).await;
    let (_, alice, mut talker) = app.user_in_general("alice").await;
    let id = said(&mut talker, "final").await["id"].as_i64().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (status, body) = app.edit_message(&alice, 1, id, "not final").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("edit_window_passed")),
        "{body}"
    );
    assert_eq!(app.delete_message(&alice, 1, id).await.0, 204);
}

#[tokio::test]
async fn the_history_reads_the_same_from_the_cache_and_sql_after_edits_and_deletes() {
    use gateway::history::{History, Source};
    use shared::bus_envelope::BusEvent;
    use shared::ids::{MessageId, RoomId};
    const PAGE: u64 = 4;
    let (a, b) = &spawn_pair().await;
    let (_, alice, mut talker) = a.user_in_general("alice").await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            said(&mut talker, &format!("c{i}")).await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    // Every fifth edited, every fifth deleted, and two edited then deleted.
    let mut edits = std::collections::HashMap::new();
    for (n, id) in ids.iter().enumerate() {
        let app = if n % 2 == 0 { a } else { b };
        if n % 5 == 1 {
            let (status, edited) = app.edit_message(&alice, 1, *id, "edited").await;
            assert_eq!(status, 200);
            edits.insert(*id, edited);
        }
        if n % 5 == 3 || (n % 5 == 1 && n > 10) {
            assert_eq!(app.delete_message(&alice, 1, *id).await.0, 204);
        }
    }
    // The edit of a message deleted since, published again (as a delayed
    // retry would be): the cache must keep the tombstone, and the
    // connection drop the repeat.
    let edit_of_deleted = loop {
        let frame = talker.next_event().await;
        if frame["type"] == "message_edited" && frame["data"]["id"] == ids[11] {
            break frame;
        }
    };
    let late = BusEvent::MessageEdited {
        data: serde_json::from_value(edit_of_deleted["data"].clone()).unwrap(),
        message: serde_json::from_value(edits[&ids[11]].clone()).unwrap(),
    };
    a.app_state.node.publish(RoomId(1), late).await.unwrap();
    talker
        .send_json(json!({"type": "message", "content": "last"}))
        .await;
    let mut seq = edit_of_deleted["data"]["seq"].as_i64().unwrap();
    loop {
        let frame = talker.next_event().await;
        let next = frame["data"]["seq"].as_i64().unwrap();
        assert_eq!(next, seq + 1, "in order, nothing repeated: {frame}");
        seq = next;
        if frame["data"]["content"] == "last" {
            break;
        }
    }
    let state = &b.app_state;
    let sql_only = History::new(state.store.clone(), None);
    let clustered = b.settings.redis.url.is_some();
    let mut before: Option<MessageId> = None;
    let mut read = 0;
    loop {
        let (served, source) = state.history.page(RoomId(1), before, PAGE).await.unwrap();
        let (expected, _) = sql_only.page(RoomId(1), before, PAGE).await.unwrap();
        assert_eq!(served, expected, "page before {before:?}");
        // 21 messages and 10 changes: all within the cache's last 100.
        assert_eq!(source == Source::Cache, clustered, "page before {before:?}");
        read += served.len();
        match served.last() {
            Some(m) if served.len() == PAGE as usize => before = Some(m.id),
            _ => break,
        }
    }
    assert_eq!(read, 21);
    let tombstones = newest(a, &alice)
        .await
        .into_iter()
        .filter(|m| m["deleted"] == true)
        .count();
    assert_eq!(tombstones, 6);
}
