//! The room management API: rooms, membership, permissions, history, isolation.

use crate::helpers::{TestApp, rest, spawn_app};
use serde_json::{Value, json};

/// A node, its users `owner` and then `other`, and the owner's room `name`:
/// (node, owner's token, (other's id, other's token), room).
async fn scene(other: &str, name: &str, private: bool) -> (TestApp, String, (i64, String), i64) {
    let app = spawn_app().await;
    let (_, owner) = app.register("owner").await;
    let other = app.register(other).await;
    let room = app.create_room(&owner, name, private).await;
    (app, owner, other, room)
}

/// Whether the `GET /api/rooms` answer `list` names `room`.
fn lists(list: &Value, room: i64) -> bool {
    list["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["id"] == room)
}

#[tokio::test]
async fn create_read_edit_and_list_rooms() {
    let app = spawn_app().await;
    let (owner_id, owner) = app.register("owner").await;
    let body = json!({"name": "  Rustaceans ", "description": "all things rust"});
    let (status, room) = app.create_room_raw(&owner, body).await;
    assert_eq!(status, 201);
    assert_eq!(room["name"], "Rustaceans");
    assert_eq!(room["role"], "owner");
    assert_eq!(room["owner_id"], owner_id);
    assert_eq!(room["is_private"], false);
    let id = room["id"].as_i64().unwrap();

    let (status, read) = app.room(&owner, id).await;
    assert_eq!(status, 200);
    assert_eq!(
        (read["member_count"].as_u64(), read["online_count"].as_u64()),
        (Some(1), Some(0))
    );

    let (status, edited) = app
        .update_room(&owner, id, json!({"description": "changed"}))
        .await;
    assert_eq!(
        (
            status,
            edited["description"].as_str(),
            edited["name"].as_str()
        ),
        (200, Some("changed"), Some("Rustaceans"))
    );

    let (_, other) = app.register("other").await;
    let (status, _) = app.update_room(&other, id, json!({"name": "mine"})).await;
    assert_eq!(status, 403);

    let (status, list) = app.rooms(&other, "limit=1").await;
    assert_eq!(status, 200);
    assert_eq!(list["rooms"].as_array().unwrap().len(), 1);
    let after = list["next_after"].as_i64().expect("a next page cursor");
    let (_, page2) = app.rooms(&other, &format!("after={after}&limit=10")).await;
    let names: Vec<&str> = page2["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Rustaceans"]);
}

#[tokio::test]
async fn bad_room_input_gets_the_error_shape() {
    let app = spawn_app().await;
    let (_, t) = app.register("validator").await;
    let cases = [
        (json!({"name": ""}), 422, "name"),
        (json!({"name": "x".repeat(65)}), 422, "name"),
        (
            json!({"name": "ok", "description": "d".repeat(501)}),
            422,
            "description",
        ),
        (json!({"name": "ok", "colour": "red"}), 400, "colour"),
        (json!({"name": 42}), 400, "name: invalid type"),
        (json!({"description": "no name"}), 400, "name"),
        (
            json!({"name": "ok", "is_private": "yes"}),
            400,
            "is_private: invalid type",
        ),
    ];
    for (body, status, needle) in cases {
        let (got, err) = app.create_room_raw(&t, body.clone()).await;
        assert_eq!(got, status, "{body}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(needle),
            "{body}: {err}"
        );
    }
    let (status, err) = app.rooms(&t, "limit=500").await;
    assert_eq!(status, 400, "{err}");
    let (status, err) = app.rooms(&t, "limit=abc").await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["code"], "invalid_query", "{err}");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("limit"),
        "the message names the field: {err}"
    );
    let (status, err) = rest(&app, "GET", "/api/rooms/abc", &t, None).await;
    assert_eq!(status, 404, "{err}");
    let (status, _) = app.rooms("not-a-token", "").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn private_rooms_are_invisible_to_non_members_everywhere() {
    let (app, owner, (stranger_id, stranger), secret) = scene("stranger", "secret", true).await;
    let mut o = app.ws_in(&owner, secret).await;
    o.send_json(json!({"type": "message", "content": "classified"}))
        .await;
    o.recv_type("message").await;

    for path in ["", "/members", "/messages", "/online"] {
        let url = format!("/api/rooms/{secret}{path}");
        let (status, _) = rest(&app, "GET", &url, &stranger, None).await;
        assert_eq!(status, 404, "GET {path}");
    }
    let (status, _) = app.join_room(&stranger, secret).await;
    assert_eq!(status, 404);
    let (status, _) = app
        .post_message(&stranger, secret, json!({"content": "hi"}))
        .await;
    assert_eq!(status, 404);
    let (_, list) = app.rooms(&stranger, "").await;
    assert!(!lists(&list, secret), "listed to a stranger: {list}");

    // Added by the owner: now visible, joinable over the WebSocket, and it sees the history.
    let (status, _) = app.add_member(&owner, secret, stranger_id).await;
    assert_eq!(status, 201);
    let (_, list) = app.rooms(&stranger, "").await;
    assert!(lists(&list, secret));
    let (status, history) = app.messages(&stranger, secret, "").await;
    assert_eq!(status, 200);
    assert_eq!(history["messages"][0]["content"], "classified");
}

#[tokio::test]
async fn a_kicked_user_leaves_the_room_at_once_and_gets_nothing_more() {
    let (app, owner, (victim_id, victim), room) = scene("victim", "club", false).await;
    let (status, _) = app.join_room(&victim, room).await;
    assert_eq!(status, 200);
    let mut o = app.ws_in(&owner, room).await;
    let mut v1 = app.ws(&victim, &format!("&room_id={room}")).await;
    let mut v2 = app.ws(&victim, &format!("&room_id={room}")).await;
    v1.recv_type("online_users").await;
    v2.recv_type("online_users").await;
    o.recv_type("user_joined").await;

    let (status, _) = app.remove_member(&owner, room, victim_id).await;
    assert_eq!(status, 204);
    for v in [&mut v1, &mut v2] {
        let left = v.recv_type("left_room").await;
        assert_eq!(
            left,
            json!({"type": "left_room", "room_id": room, "data": {"reason": "kicked"}})
        );
    }
    assert_eq!(o.recv_type("user_left").await["data"]["user_id"], victim_id);
    o.send_json(json!({"type": "message", "content": "after the kick"}))
        .await;
    o.recv_type("message").await;
    v1.expect_silence(300).await;
    v2.send_json(json!({"type": "message", "room_id": room, "content": "let me in"}))
        .await;
    assert_eq!(v2.recv_json().await["data"]["code"], "not_in_room");
    let (_, members) = app.members(&owner, room).await;
    assert_eq!(members["members"].as_array().unwrap().len(), 1);
    // The owner cannot be kicked, and a member cannot kick.
    let (owner_id, _) = (members["members"][0]["user"]["id"].as_i64().unwrap(), ());
    let (status, _) = app.remove_member(&owner, room, owner_id).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn deleting_a_room_removes_everyone_from_it() {
    let (app, owner, (_, guest), room) = scene("guest", "doomed", false).await;
    let mut g = app.ws_in(&guest, room).await;
    let (status, _) = app.delete_room(&guest, room).await;
    assert_eq!(status, 403, "only the owner deletes");
    let (status, _) = app.delete_room(&owner, room).await;
    assert_eq!(status, 204);
    assert_eq!(
        g.recv_type("left_room").await["data"]["reason"],
        "room_deleted"
    );
    let (status, _) = app.room(&owner, room).await;
    assert_eq!(status, 404);
    let (status, _) = app.delete_room(&owner, 1).await;
    assert_eq!(status, 403, "room 1 has no owner and stays");
}

#[tokio::test]
async fn roles_owner_appoints_admins_who_add_members() {
    let app = spawn_app().await;
    let (_, owner) = app.register("owner").await;
    let (admin_id, admin) = app.register("admin").await;
    let (member_id, member) = app.register("member").await;
    let room = app.create_room(&owner, "roles", true).await;
    let (status, _) = app.add_member_as(&owner, room, admin_id, "admin").await;
    assert_eq!(status, 201);
    let (status, _) = app.add_member(&admin, room, member_id).await;
    assert_eq!(status, 201);
    let (status, _) = app.add_member(&member, room, admin_id).await;
    assert_eq!(status, 403, "members cannot add");
    let (status, _) = app.set_role(&admin, room, member_id, "admin").await;
    assert_eq!(status, 403, "only the owner changes roles");
    let (status, body) = app.set_role(&owner, room, member_id, "admin").await;
    assert_eq!((status, body["role"].as_str()), (200, Some("admin")));
    let (status, _) = app.set_role(&owner, room, member_id, "king").await;
    assert_eq!(status, 422);
    let (status, _) = app.leave_room(&owner, room).await;
    assert_eq!(status, 409, "the owner cannot leave");
    let (status, _) = app.leave_room(&member, room).await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn history_pages_newest_first_and_rest_posts_reach_websockets() {
    let app = spawn_app().await;
    let (_, t, mut c) = app.user_in_general("historian").await;
    for i in 0..7 {
        let body = json!({"content": format!("h{i}"), "client_msg_id": format!("c{i}")});
        let (status, m) = app.post_message(&t, 1, body).await;
        assert_eq!(status, 201, "{m}");
        assert_eq!(m["seq"], i + 1);
        let live = c.recv_type("message").await;
        assert_eq!(live["data"], m, "REST and WebSocket see the same message");
    }
    let (_, p1) = app.messages(&t, 1, "limit=3").await;
    let contents = |p: &Value| {
        p["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(contents(&p1), vec!["h6", "h5", "h4"]);
    let before = p1["next_before_id"].as_i64().unwrap();
    let (_, p2) = app
        .messages(&t, 1, &format!("limit=3&before_id={before}"))
        .await;
    assert_eq!(contents(&p2), vec!["h3", "h2", "h1"]);
    let before = p2["next_before_id"].as_i64().unwrap();
    let (_, p3) = app
        .messages(&t, 1, &format!("limit=3&before_id={before}"))
        .await;
    assert_eq!(contents(&p3), vec!["h0"]);
    assert!(p3["next_before_id"].is_null());
    let (status, err) = app.post_message(&t, 1, json!({"content": "   "})).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (422, Some("content_empty"))
    );
}

#[tokio::test]
async fn users_me_reads_and_renames() {
    let app = spawn_app().await;
    let (id, t) = app.register("renamer").await;
    let (status, me) = app.me(&t).await;
    assert_eq!(
        (status, me["id"].as_i64(), me["nickname"].as_str()),
        (200, Some(id), Some("renamer"))
    );
    let (status, me) = app.update_me(&t, json!({"nickname": "New Name"})).await;
    assert_eq!((status, me["nickname"].as_str()), (200, Some("New Name")));
    let (status, _) = app.update_me(&t, json!({"nickname": ""})).await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn history_reads_the_same_from_the_cache_and_from_sql() {
    use gateway::history::{History, Source};
    use shared::ids::{MessageId, RoomId};
    // More than the cache holds (the last 100), so that pages are read from
    // the cache near the top, from SQL further back, and one page straddles
    // the boundary.
    const TOTAL: i64 = 112;
    const PAGE: u64 = 7;
    let app = spawn_app().await;
    let (_, t, mut c) = app.user_in_general("cachey").await;
    for i in 0..TOTAL {
        c.send_json(json!({"type": "message", "content": format!("c{i}")}))
            .await;
        c.recv_type("message").await;
    }
    // A rename after the fact: both paths must show the current profile.
    let (status, _) = app.update_me(&t, json!({"nickname": "Renamed"})).await;
    assert_eq!(status, 200);
    let state = &app.app_state;
    let sql_only = History::new(state.store.clone(), None);
    let clustered = app.settings.redis.url.is_some();
    let mut before: Option<MessageId> = None;
    let (mut read, mut sources) = (0, Vec::new());
    loop {
        let (served, source) = state.history.page(RoomId(1), before, PAGE).await.unwrap();
        let (expected, _) = sql_only.page(RoomId(1), before, PAGE).await.unwrap();
        assert_eq!(served, expected, "page before {before:?}");
        // Only what lies entirely within the last 100 can come from Redis.
        let cached = served.last().is_some_and(|m| m.seq > TOTAL - 100);
        assert_eq!(
            source == Source::Cache,
            clustered && cached,
            "page before {before:?} (seq {:?}..): cluster mode serves the last 100 from Redis, the rest from SQL",
            served.last().map(|m| m.seq)
        );
        assert!(served.iter().all(|m| m.user.nickname == "Renamed"));
        read += served.len() as i64;
        sources.push(source);
        match served.last() {
            Some(m) if served.len() == PAGE as usize => before = Some(m.id),
            _ => break,
        }
    }
    assert_eq!(read, TOTAL, "every message read once");
    if clustered {
        assert!(sources.contains(&Source::Cache) && sources.contains(&Source::Sql));
    }
}
