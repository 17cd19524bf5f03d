//! Bans and who may change a room's privacy. A kick is not a ban: the user
//! could come straight back. A ban removes the user, takes their
//! connections out of the room on every node (as a kick does), and refuses
//! their joins and connects until it ends. Run on two nodes in cluster mode
//! (the ban is made on one, the banned user is connected to the other).

use crate::helpers::{TestApp, rest, spawn_app, spawn_pair};
use serde_json::{Value, json};
use std::time::Duration;

async fn room(app: &TestApp, owner: &str) -> i64 {
    app.new_room(owner, json!({"name": "banned-from"})).await
}

#[tokio::test]
async fn a_ban_evicts_everywhere_refuses_every_way_in_and_can_be_lifted() {
    let (a, b) = &spawn_pair().await;
    let [
        (owner_id, owner),
        (admin_id, admin),
        (pest_id, pest),
        (other_admin_id, other_admin),
    ] = a
        .register_all(["owner", "admin", "pest", "other_admin"])
        .await;
    let room = room(a, &owner).await;
    for (id, role) in [
        (admin_id, "admin"),
        (other_admin_id, "admin"),
        (pest_id, "member"),
    ] {
        let (s, body) = a.add_member_as(&owner, room, id, role).await;
        assert_eq!(s, 201, "{body}");
    }
    let mut conn = b.ws_in(&pest, room).await;

    // Admins may not ban the owner, another admin, or themselves.
    for (target, who) in [
        (owner_id, "the owner"),
        (other_admin_id, "another admin"),
        (admin_id, "themselves"),
    ] {
        let (s, body) = a.ban(&admin, room, json!({"user_id": target})).await;
        assert_eq!(s, 403, "an admin banning {who}: {body}");
    }
    // A member may not ban anyone.
    let (s, _) = a.ban(&pest, room, json!({"user_id": admin_id})).await;
    assert_eq!(s, 403);
    let body = json!({"user_id": pest_id, "duration_secs": 0});
    let (s, body) = a.ban(&admin, room, body).await;
    assert_eq!(s, 422, "{body}");

    let (s, ban) = a.ban(&admin, room, json!({"user_id": pest_id})).await;
    assert_eq!(s, 201, "{ban}");
    assert_eq!(ban["user"]["id"], pest_id);
    assert!(ban["expires_at"].is_null(), "for good");
    let left = conn.recv_type("left_room").await;
    assert_eq!(
        (left["room_id"].as_i64(), left["data"]["reason"].as_str()),
        (Some(room), Some("banned"))
    );

    // Every way back in is refused, with the reason.
    let (s, body) = b.join_room(&pest, room).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (403, Some("banned")),
        "{body}"
    );
    let refused = b
        .try_ws(&format!("token={pest}&room_id={room}"))
        .await
        .err()
        .unwrap();
    assert_eq!(
        refused,
        (403, r#"{"error":"Banned from this room"}"#.to_owned())
    );
    conn.send_json(json!({"type": "join_room", "room_id": room}))
        .await;
    let e = conn.recv_type("error").await;
    assert_eq!(e["data"]["code"], "banned", "{e}");
    let (s, body) = a.add_member(&owner, room, pest_id).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (403, Some("banned")),
        "added back by an owner: {body}"
    );
    let (s, members) = a.members(&owner, room).await;
    assert_eq!(s, 200);
    assert!(
        !members["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["user"]["id"] == pest_id)
    );

    // Listed for owners and admins only; lifted, the user may join again.
    let (s, list) = a.bans(&owner, room).await;
    assert_eq!(s, 200);
    assert_eq!(list["bans"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(a.bans(&pest, room).await.0, 403, "owners and admins only");
    assert_eq!(a.unban(&owner, room, pest_id).await.0, 204);
    assert_eq!(a.unban(&owner, room, pest_id).await.0, 404);
    assert_eq!(b.join_room(&pest, room).await.0, 200);

    // The owner may ban an admin; a ban with a duration ends by itself.
    let body = json!({"user_id": other_admin_id, "duration_secs": 1});
    let (s, ban) = a.ban(&owner, room, body).await;
    assert_eq!(s, 201, "{ban}");
    assert!(ban["expires_at"].is_string());
    assert_eq!(a.join_room(&other_admin, room).await.0, 403);
    crate::eventually::eventually(Duration::from_secs(10), "the ban's end", || async {
        match a.join_room(&other_admin, room).await {
            (200, _) => Ok(()),
            (status, body) => Err(format!("{status} {body}")),
        }
    })
    .await;
}

/// Before: an admin could make a private room public, and a non-member
/// could then read its history.
#[tokio::test]
async fn only_the_owner_may_change_whether_a_room_is_private() {
    let app = spawn_app().await;
    let (_, owner) = app.register("owner").await;
    let (admin_id, admin) = app.register("admin").await;
    let body = json!({"name": "secret", "is_private": true});
    let (s, created) = app.create_room_raw(&owner, body).await;
    assert_eq!(s, 201);
    let room = created["id"].as_i64().unwrap();
    app.add_member_as(&owner, room, admin_id, "admin").await;
    let (s, body) = app
        .update_room(&admin, room, json!({"is_private": false}))
        .await;
    assert_eq!(s, 403, "{body}");
    let body = json!({"name": "renamed", "is_private": true});
    let (s, body) = app.update_room(&admin, room, body).await;
    assert_eq!(
        s, 200,
        "an admin may still edit the rest (and restate the privacy): {body}"
    );
    let (s, body) = app
        .update_room(&owner, room, json!({"is_private": false}))
        .await;
    assert_eq!((s, body["is_private"].clone()), (200, Value::Bool(false)));
}

/// Decided: a public room is readable by any signed-in user, as a public
/// Slack channel is (its history, who is online, its members), without
/// joining; writing needs a membership. A private room is readable by its
/// members only, and looks missing to anyone else.
#[tokio::test]
async fn public_rooms_are_readable_by_any_signed_in_user_private_ones_by_members_only() {
    let app = spawn_app().await;
    let (_, owner) = app.register("owner").await;
    let (_, reader) = app.register("reader").await;
    let public = room(&app, &owner).await;
    let body = json!({"name": "p", "is_private": true});
    let (s, private) = app.create_room_raw(&owner, body).await;
    assert_eq!(s, 201);
    let private = private["id"].as_i64().unwrap();
    for room in [public, private] {
        app.post_message(&owner, room, json!({"content": "hello"}))
            .await;
    }
    for path in ["messages", "online", "members"] {
        let url = format!("/api/rooms/{public}/{path}");
        let (s, body) = rest(&app, "GET", &url, &reader, None).await;
        assert_eq!(s, 200, "public {path}: {body}");
        let url = format!("/api/rooms/{private}/{path}");
        let (s, _) = rest(&app, "GET", &url, &reader, None).await;
        assert_eq!(s, 404, "private {path}");
    }
    let (s, _) = app
        .post_message(&reader, public, json!({"content": "hi"}))
        .await;
    assert_eq!(s, 403, "writing needs a membership");
    assert_eq!(app.messages(&reader, 999999, "").await.0, 404);
}
