//! Direct messages: `POST /api/dms` opens the one private room of a pair of
//! users, race-free from both sides and on any node; nobody else gets in;
//! `dm_policy` and deleted accounts decide who may open one.

use crate::helpers::{spawn_app, spawn_pair};
use serde_json::json;

#[tokio::test]
async fn both_sides_at_once_on_two_nodes_get_one_room_that_nobody_else_enters() {
    let (a, b) = &spawn_pair().await;
    let [(alice_id, alice), (bob_id, bob), (eve_id, eve)] =
        a.register_all(["alice", "bob", "eve"]).await;
    let ((s1, r1), (s2, r2)) = tokio::join!(a.open_dm(&alice, bob_id), b.open_dm(&bob, alice_id));
    let mut statuses = [s1, s2];
    statuses.sort();
    assert_eq!(statuses, [200, 201], "{r1} {r2}");
    assert_eq!(r1["id"], r2["id"]);
    assert_eq!(
        (r1["kind"].as_str(), r1["is_private"].as_bool()),
        (Some("dm"), Some(true))
    );
    assert_eq!(r1["name"], "alice, bob");
    assert_eq!(r1["owner_id"], json!(null));
    let room = r1["id"].as_i64().unwrap();
    let (status, again) = a.open_dm(&alice, bob_id).await;
    assert_eq!(
        (status, again["id"].as_i64()),
        (200, Some(room)),
        "idempotent"
    );

    for (node, token) in [(a, &alice), (b, &bob)] {
        let (_, page) = node.rooms(token, "").await;
        let listed = page["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == room)
            .cloned();
        assert_eq!(
            listed.map(|r| r["kind"].clone()),
            Some(json!("dm")),
            "{page}"
        );
    }
    let mut on_a = a.ws_in(&alice, room).await;
    let mut on_b = b.ws_in(&bob, room).await;
    on_a.say("just us").await;
    assert_eq!(
        on_b.recv_type("message").await["data"]["content"],
        "just us"
    );

    // Nobody else: not listed, not joinable, not addable, not even by its members.
    let (_, page) = a.rooms(&eve, "").await;
    assert!(
        page["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["id"] != room),
        "{page}"
    );
    assert_eq!(a.join_room(&eve, room).await.0, 404);
    let (status, body) = a.add_member(&alice, room, eve_id).await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test]
async fn dm_policy_deleted_users_and_oneself_decide_who_may_open_one() {
    let app = &spawn_app().await;
    let (carol_id, carol) = app.register("carol").await;
    let (dave_id, dave) = app.register("dave").await;
    let (_, me) = app.me(&carol).await;
    assert_eq!(me["dm_policy"], "anyone");
    let (status, me) = app
        .update_me(&carol, json!({"dm_policy": "shared_rooms"}))
        .await;
    assert_eq!(
        (status, me["dm_policy"].as_str(), me["nickname"].as_str()),
        (200, Some("shared_rooms"), Some("carol"))
    );
    assert_eq!(
        app.update_me(&carol, json!({"dm_policy": "nobody"}))
            .await
            .0,
        400
    );
    // Every field may be left out, but the body is still an object.
    let (status, body) = app.update_me(&carol, json!([null, null])).await;
    assert_eq!(status, 400, "{body}");

    // Both are in room 1, the lobby: that is not a shared room.
    let (status, body) = app.open_dm(&dave, carol_id).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    let club = app.create_room(&carol, "club", false).await;
    assert_eq!(app.join_room(&dave, club).await.0 / 100, 2);
    let (status, dm) = app.open_dm(&dave, carol_id).await;
    assert_eq!(status, 201, "{dm}");
    // Once they have one, it stays theirs after the shared room goes.
    assert_eq!(app.leave_room(&dave, club).await.0, 204);
    let (status, again) = app.open_dm(&dave, carol_id).await;
    assert_eq!((status, again["id"].clone()), (200, dm["id"].clone()));

    assert_eq!(app.open_dm(&dave, dave_id).await.0, 422);
    assert_eq!(app.open_dm(&dave, 999_999).await.0, 404);
    let (gone_id, gone) = app.register("gone").await;
    assert_eq!(app.delete_me(&gone).await.0, 204);
    let (status, body) = app.open_dm(&dave, gone_id).await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn a_ban_between_two_users_closes_their_dm_room_while_it_stands() {
    let app = &spawn_app().await;
    let (owner_id, owner) = app.register("owner").await;
    let (troll_id, troll) = app.register("troll").await;
    let (_, bystander) = app.register("bystander").await;
    let club = app.create_room(&owner, "club", false).await;
    assert_eq!(app.join_room(&troll, club).await.0 / 100, 2);
    let (_, dm) = app.open_dm(&troll, owner_id).await;
    let dm = dm["id"].as_i64().unwrap();
    let mut in_dm = app.ws_in(&troll, dm).await;
    let (status, ban) = app.ban(&owner, club, json!({"user_id": troll_id})).await;
    assert_eq!(status, 201, "{ban}");
    // The troll is out of their DM room too, and it is no longer theirs.
    let left = in_dm.recv_type("left_room").await;
    assert_eq!(
        (left["room_id"].as_i64(), left["data"]["reason"].as_str()),
        (Some(dm), Some("banned"))
    );
    let listed = |page: serde_json::Value| {
        page["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == dm)
    };
    assert!(!listed(app.rooms(&troll, "").await.1));
    assert!(
        listed(app.rooms(&owner, "").await.1),
        "the owner keeps the history"
    );
    for (token, other) in [(&troll, owner_id), (&owner, troll_id)] {
        let (status, body) = app.open_dm(token, other).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("banned")),
            "{body}"
        );
    }
    // Only between those two: anyone else may still write to the troll.
    assert_eq!(app.open_dm(&bystander, troll_id).await.0, 201);
    // Lifted: they may, in the room they had.
    assert_eq!(app.unban(&owner, club, troll_id).await.0 / 100, 2);
    let (status, again) = app.open_dm(&troll, owner_id).await;
    assert_eq!((status, again["id"].as_i64()), (200, Some(dm)));
}
