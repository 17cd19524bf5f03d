//! The room management API: rooms, membership, permissions, history, isolation.

use crate::helpers::{TestApp, rest, spawn_app};
use serde_json::{Value, json};

async fn create_room(app: &TestApp, token: &str, name: &str, private: bool) -> i64 {
    let (status, body) = rest(
        app,
        "POST",
        "/api/rooms",
        token,
        Some(json!({"name": name, "is_private": private})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_i64().unwrap()
}

#[tokio::test]
async fn create_read_edit_and_list_rooms() {
    let app = spawn_app().await;
    let (owner_id, owner) = app.register("owner").await;
    let (status, room) = rest(
        &app,
        "POST",
        "/api/rooms",
        &owner,
        Some(json!({"name": "  Rustaceans ", "description": "all things rust"})),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(room["name"], "Rustaceans");
    assert_eq!(room["role"], "owner");
    assert_eq!(room["owner_id"], owner_id);
    assert_eq!(room["is_private"], false);
    let id = room["id"].as_i64().unwrap();

    let (status, read) = rest(&app, "GET", &format!("/api/rooms/{id}"), &owner, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (read["member_count"].as_u64(), read["online_count"].as_u64()),
        (Some(1), Some(0))
    );

    let (status, edited) = rest(
        &app,
        "PATCH",
        &format!("/api/rooms/{id}"),
        &owner,
        Some(json!({"description": "changed"})),
    )
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
    let (status, _) = rest(
        &app,
        "PATCH",
        &format!("/api/rooms/{id}"),
        &other,
        Some(json!({"name": "mine"})),
    )
    .await;
    assert_eq!(status, 403);

    let (status, list) = rest(&app, "GET", "/api/rooms?limit=1", &other, None).await;
    assert_eq!(status, 200);
    assert_eq!(list["rooms"].as_array().unwrap().len(), 1);
    let after = list["next_after"].as_i64().expect("a next page cursor");
    let (_, page2) = rest(
        &app,
        "GET",
        &format!("/api/rooms?after={after}&limit=10"),
        &other,
        None,
    )
    .await;
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
        let (got, err) = rest(&app, "POST", "/api/rooms", &t, Some(body.clone())).await;
        assert_eq!(got, status, "{body}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(needle),
            "{body}: {err}"
        );
    }
    let (status, err) = rest(&app, "GET", "/api/rooms?limit=500", &t, None).await;
    assert_eq!(status, 400, "{err}");
    let (status, err) = rest(&app, "GET", "/api/rooms?limit=abc", &t, None).await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["code"], "invalid_query", "{err}");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("limit"),
        "the message names the field: {err}"
    );
    let (status, err) = rest(&app, "GET", "/api/rooms/abc", &t, None).await;
    assert_eq!(status, 404, "{err}");
    let (status, _) = rest(&app, "GET", "/api/rooms", "not-a-token", None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn private_rooms_are_invisible_to_non_members_everywhere() {
    let app = spawn_app().await;
    let (_, owner) = app.register("owner").await;
    let (stranger_id, stranger) = app.register("stranger").await;
    let secret = create_room(&app, &owner, "secret", true).await;
    let mut o = app.ws(&owner, &format!("&room_id={secret}")).await;
    o.recv_type("online_users").await;
    o.send_json(json!({"type": "message", "content": "classified"}))
        .await;
    o.recv_type("message").await;

    for path in ["", "/members", "/messages", "/online"] {
        let (status, _) = rest(
            &app,
            "GET",
            &format!("/api/rooms/{secret}{path}"),
            &stranger,
            None,
        )
        .await;
        assert_eq!(status, 404, "GET {path}");
    }
    let (status, _) = rest(
        &app,
        "POST",
        &format!("/api/rooms/{secret}/join"),
        &stranger,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = rest(
        &app,
        "POST",
        &format!("/api/rooms/{secret}/messages"),
        &stranger,
        Some(json!({"content": "hi"})),
    )
    .await;
    assert_eq!(status, 404);
    let (_, list) = rest(&app, "GET", "/api/rooms", &stranger, None).await;
    assert!(
        list["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["id"] != secret),
        "listed to a stranger: {list}"
    );

    // Added by the owner: now visible, joinable over the WebSocket, and it sees the history.
    let (status, _) = rest(
        &app,
        "POST",
        &format!("/api/rooms/{secret}/members"),
        &owner,
        Some(json!({"user_id": stranger_id})),
    )
    .await;
    assert_eq!(status, 201);
    let (_, list) = rest(&app, "GET", "/api/rooms", &stranger, None).await;
    assert!(
        list["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == secret)
    );
    let (status, history) = rest(
        &app,
        "GET",
        &format!("/api/rooms/{secret}/messages"),
        &stranger,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(history["messages"][0]["content"], "classified");
}

#[tokio::test]
async fn a_kicked_user_leaves_the_room_at_once_and_gets_nothing_more() {
    let app = spawn_app().await;
    let (_, owner) = app.register("owner").await;
    let (victim_id, victim) = app.register("victim").await;
    let room = create_room(&app, &owner, "club", false).await;
    let (status, _) = rest(
        &app,
        "POST",
        &format!("/api/rooms/{room}/join"),
        &victim,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let mut o = app.ws(&owner, &format!("&room_id={room}")).await;
    o.recv_type("online_users").await;
    let mut v1 = app.ws(&victim, &format!("&room_id={room}")).await;
    let mut v2 = app.ws(&victim, &format!("&room_id={room}")).await;
    v1.recv_type("online_users").await;
    v2.recv_type("online_users").await;
    o.recv_type("user_joined").await;

    let (status, _) = rest(
        &app,
        "DELETE",
        &format!("/api/rooms/{room}/members/{victim_id}"),
        &owner,
        None,
    )
    .await;
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
    let (_, members) = rest(
        &app,
        "GET",
        &format!("/api/rooms/{room}/members"),
        &owner,
        None,
    )
    .await;
    assert_eq!(members["members"].as_array().unwrap().len(), 1);
    // The owner cannot be kicked, and a member cannot kick.
    let (owner_id, _) = (members["members"][0]["user"]["id"].as_i64().unwrap(), ());
    let (status, _) = rest(
        &app,
        "DELETE",
        &format!("/api/rooms/{room}/members/{owner_id}"),
        &owner,
        None,
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn deleting_a_room_removes_everyone_from_it() {
    let app = spawn_app().await;
    let (_, owner) = app.register("owner").await;
    let (_, guest) = app.register("guest").await;
    let room = create_room(&app, &owner, "doomed", false).await;
    let mut g = app.ws(&guest, &format!("&room_id={room}")).await;
    g.recv_type("online_users").await;
    let (status, _) = rest(&app, "DELETE", &format!("/api/rooms/{room}"), &guest, None).await;
    assert_eq!(status, 403, "only the owner deletes");
    let (status, _) = rest(&app, "DELETE", &format!("/api/rooms/{room}"), &owner, None).await;
    assert_eq!(status, 204);
    assert_eq!(
        g.recv_type("left_room").await["data"]["reason"],
        "room_deleted"
    );
    let (status, _) = rest(&app, "GET", &format!("/api/rooms/{room}"), &owner, None).await;
    assert_eq!(status, 404);
    let (status, _) = rest(&app, "DELETE", "/api/rooms/1", &owner, None).await;
    assert_eq!(status, 403, "room 1 has no owner and stays");
}

#[tokio::test]
async fn roles_owner_appoints_admins_who_add_members() {
    let app = spawn_app().await;
    let (_, owner) = app.register("owner").await;
    let (admin_id, admin) = app.register("admin").await;
    let (member_id, member) = app.register("member").await;
    let room = create_room(&app, &owner, "roles", true).await;
    let (status, _) = rest(
        &app,
        "POST",
        &format!("/api/rooms/{room}/members"),
        &owner,
        Some(json!({"user_id": admin_id, "role": "admin"})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = rest(
        &app,
        "POST",
        &format!("/api/rooms/{room}/members"),
        &admin,
        Some(json!({"user_id": member_id})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = rest(
        &app,
        "POST",
        &format!("/api/rooms/{room}/members"),
        &member,
        Some(json!({"user_id": admin_id})),
    )
    .await;
    assert_eq!(status, 403, "members cannot add");
    let (status, _) = rest(
        &app,
        "PATCH",
        &format!("/api/rooms/{room}/members/{member_id}"),
        &admin,
        Some(json!({"role": "admin"})),
    )
    .await;
    assert_eq!(status, 403, "only the owner changes roles");
    let (status, body) = rest(
        &app,
        "PATCH",
        &format!("/api/rooms/{room}/members/{member_id}"),
        &owner,
        Some(json!({"role": "admin"})),
    )
    .await;
    assert_eq!((status, body["role"].as_str()), (200, Some("admin")));
    let (status, _) = rest(
        &app,
        "PATCH",
        &format!("/api/rooms/{room}/members/{member_id}"),
        &owner,
        Some(json!({"role": "king"})),
    )
    .await;
    assert_eq!(status, 422);
    let (status, _) = rest(
        &app,
        "POST",
        &format!("/api/rooms/{room}/leave"),
        &owner,
        None,
    )
    .await;
    assert_eq!(status, 409, "the owner cannot leave");
    let (status, _) = rest(
        &app,
        "POST",
        &format!("/api/rooms/{room}/leave"),
        &member,
        None,
    )
    .await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn history_pages_newest_first_and_rest_posts_reach_websockets() {
    let app = spawn_app().await;
    let (_, t) = app.register("historian").await;
    let mut c = app.ws_in_general(&t).await;
    for i in 0..7 {
        let (status, m) = rest(
            &app,
            "POST",
            "/api/rooms/1/messages",
            &t,
            Some(json!({"content": format!("h{i}"), "client_msg_id": format!("c{i}")})),
        )
        .await;
        assert_eq!(status, 201, "{m}");
        assert_eq!(m["seq"], i + 1);
        let live = c.recv_type("message").await;
        assert_eq!(live["data"], m, "REST and WebSocket see the same message");
    }
    let (_, p1) = rest(&app, "GET", "/api/rooms/1/messages?limit=3", &t, None).await;
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
    let (_, p2) = rest(
        &app,
        "GET",
        &format!("/api/rooms/1/messages?limit=3&before_id={before}"),
        &t,
        None,
    )
    .await;
    assert_eq!(contents(&p2), vec!["h3", "h2", "h1"]);
    let before = p2["next_before_id"].as_i64().unwrap();
    let (_, p3) = rest(
        &app,
        "GET",
        &format!("/api/rooms/1/messages?limit=3&before_id={before}"),
        &t,
        None,
    )
    .await;
    assert_eq!(contents(&p3), vec!["h0"]);
    assert!(p3["next_before_id"].is_null());
    let (status, err) = rest(
        &app,
        "POST",
        "/api/rooms/1/messages",
        &t,
        Some(json!({"content": "   "})),
    )
    .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (422, Some("content_empty"))
    );
}

#[tokio::test]
async fn users_me_reads_and_renames() {
    let app = spawn_app().await;
    let (id, t) = app.register("renamer").await;
    let (status, me) = rest(&app, "GET", "/api/users/me", &t, None).await;
    assert_eq!(
        (status, me["id"].as_i64(), me["nickname"].as_str()),
        (200, Some(id), Some("renamer"))
    );
    let (status, me) = rest(
        &app,
        "PATCH",
        "/api/users/me",
        &t,
        Some(json!({"nickname": "New Name"})),
    )
    .await;
    assert_eq!((status, me["nickname"].as_str()), (200, Some("New Name")));
    let (status, _) = rest(
        &app,
        "PATCH",
        "/api/users/me",
        &t,
        Some(json!({"nickname": ""})),
    )
    .await;
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
    let (_, t) = app.register("cachey").await;
    let mut c = app.ws_in_general(&t).await;
    for i in 0..TOTAL {
        c.send_json(json!({"type": "message", "content": format!("c{i}")}))
            .await;
        c.recv_type("message").await;
    }
    // A rename after the fact: both paths must show the current profile.
    let (status, _) = rest(
        &app,
        "PATCH",
        "/api/users/me",
        &t,
        Some(json!({"nickname": "Renamed"})),
    )
    .await;
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
