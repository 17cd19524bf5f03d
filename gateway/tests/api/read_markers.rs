//! Read markers and unread counts: a `read` frame or `PUT /api/rooms/{id}/read`
//! stores the marker (forward only, capped at the room's newest seq), the
//! user's other connections in the room hear of it on every node, and
//! `GET /api/rooms` shows it with the unread count.

use crate::helpers::{TestApp, spawn_app, spawn_pair};
use serde_json::{Value, json};

/// `(last_read_seq, unread_count)` of room 1 in the user's room list.
async fn general_marker(app: &TestApp, token: &str) -> (Value, Value) {
    let (status, page) = app.rooms(token, "").await;
    assert_eq!(status, 200, "{page}");
    let general = page["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == 1)
        .unwrap()
        .clone();
    (
        general["last_read_seq"].clone(),
        general["unread_count"].clone(),
    )
}

#[tokio::test]
async fn a_room_read_on_one_device_is_read_on_the_others_on_every_node() {
    let (a, b) = &spawn_pair().await;
    let (_, alice, mut phone) = a.user_in_general("alice").await;
    let mut laptop = b.ws_in_general(&alice).await;
    let (_, bob, mut talker) = b.user_in_general("bob").await;
    for i in 1..=3 {
        talker.say(&format!("m{i}")).await;
    }
    for c in [&mut phone, &mut laptop] {
        for _ in 1..=3 {
            assert_eq!(c.next_event().await["type"], "message");
        }
    }
    assert_eq!(general_marker(a, &alice).await, (json!(0), json!(3)));
    assert_eq!(general_marker(b, &bob).await.1, json!(0), "his own");

    // The phone reads up to 2: the laptop (other node) hears of it, the
    // phone does not hear its own.
    phone
        .send_json(json!({"type": "read", "room_id": 1, "seq": 2}))
        .await;
    let read = laptop.next_event().await;
    assert_eq!(
        read,
        json!({"type": "read", "room_id": 1, "data": {"seq": 2}})
    );
    assert_eq!(general_marker(b, &alice).await, (json!(2), json!(1)));
    // Backwards is no move: nothing is sent, nothing changes.
    phone
        .send_json(json!({"type": "read", "room_id": 1, "seq": 1}))
        .await;
    // Through REST, past the newest: capped at 3; both devices hear it.
    let (status, body) = b.mark_read(&alice, 1, 99).await;
    assert_eq!(
        (status, body),
        (200, json!({"room_id": 1, "last_read_seq": 3}))
    );
    for c in [&mut phone, &mut laptop] {
        let read = c.next_event().await;
        assert_eq!(read["data"]["seq"], 3, "{read}");
    }
    assert_eq!(general_marker(a, &alice).await, (json!(3), json!(0)));
    // Bob's devices never hear alice's markers: his next frame is the next message.
    talker.say("m4").await;
    assert_eq!(phone.next_event().await["data"]["seq"], 4);
}

#[tokio::test]
async fn read_markers_refuse_what_they_cannot_store() {
    let app = spawn_app().await;
    let (_, alice, mut c) = app.user_in_general("alice").await;
    let (_, owner) = app.register("owner").await;
    for (frame, code) in [
        (
            json!({"type": "read", "room_id": 999, "seq": 1}),
            "not_in_room",
        ),
        (
            json!({"type": "read", "room_id": 1, "seq": -1}),
            "invalid_frame",
        ),
        (json!({"type": "read", "room_id": 1}), "invalid_frame"),
    ] {
        c.send_json(frame.clone()).await;
        let e = c.next_event().await;
        assert_eq!(e["type"], "error", "{frame}: {e}");
        assert_eq!(e["data"]["code"], code, "{frame}: {e}");
    }
    let room = app.create_room(&owner, "elsewhere", false).await;
    let (status, body) = app.mark_read(&alice, room, 0).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (403, json!("not_a_member")),
        "{body}"
    );
    let (status, _) = app.mark_read(&owner, room, -3).await;
    assert_eq!(status, 422);
    let (status, _) = app.mark_read(&owner, 999, 0).await;
    assert_eq!(status, 404);
    let (status, body) = app.mark_read(&owner, room, 0).await;
    assert_eq!((status, body["last_read_seq"].clone()), (200, json!(0)));
}

#[tokio::test]
async fn a_new_member_has_read_the_history_and_non_members_have_no_marker() {
    let app = spawn_app().await;
    let (_, owner) = app.register("owner").await;
    let (_, late) = app.register("late").await;
    let id = app.create_room(&owner, "r", false).await;
    let mut c = app.ws_in(&owner, id).await;
    for i in 1..=3 {
        c.say(&format!("m{i}")).await;
    }
    let find = |page: Value| {
        page["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .cloned()
            .unwrap()
    };
    let (_, page) = app.rooms(&late, "").await;
    let listed = find(page);
    assert!(listed.get("last_read_seq").is_none(), "{listed}");
    assert!(listed.get("unread_count").is_none(), "{listed}");
    let (status, _) = app.join_room(&late, id).await;
    assert!(status == 200 || status == 201, "{status}");
    let (_, page) = app.rooms(&late, "").await;
    let listed = find(page);
    assert_eq!(
        (
            listed["last_read_seq"].clone(),
            listed["unread_count"].clone()
        ),
        (json!(3), json!(0))
    );
    c.say("m4").await;
    let (_, page) = app.rooms(&late, "").await;
    assert_eq!(find(page)["unread_count"], 1);
}
