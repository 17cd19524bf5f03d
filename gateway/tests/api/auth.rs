use crate::helpers::{spawn_app, spawn_pair};
use crate::setup::assert_error;
use serde_json::{Value, json};

#[tokio::test]
async fn register_returns_201_with_user_and_a_working_token() {
    let app = spawn_app().await;
    let resp = app
        .post(
            "/api/auth/register",
            &json!({"username": "alice", "password": "password123", "nickname": "Alice A"}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["user"]["username"], "alice");
    assert_eq!(body["user"]["nickname"], "Alice A");
    assert!(body["user"]["id"].as_i64().unwrap() > 0);
    assert!(body["user"].get("password_hash").is_none());
    let token = body["token"].as_str().unwrap();
    let mut ws = app.ws(token, "").await;
    let online = ws.recv_type("online_users").await;
    assert_eq!(online["data"]["users"][0]["username"], "alice");
}

#[tokio::test]
async fn nickname_defaults_to_username() {
    let app = spawn_app().await;
    let resp = app.try_register("bob", "password123").await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["user"]["nickname"], "bob");
}

#[tokio::test]
async fn duplicate_username_is_409() {
    let app = spawn_app().await;
    app.register("carol").await;
    let resp = app.try_register("carol", "different123").await;
    assert_error(resp, 409, "conflict").await;
}

#[tokio::test]
async fn bad_register_input_is_rejected_with_a_json_error_naming_the_field() {
    let app = spawn_app().await;
    let cases = [
        (json!({"password": "password123"}), 400, "username"),
        (json!({"username": "dave"}), 400, "password"),
        (
            json!({"username": 5, "password": "password123"}),
            400,
            "invalid type",
        ),
        (
            json!({"username": "dave", "password": "password123", "admin": true}),
            400,
            "admin",
        ),
        (
            json!({"username": "da", "password": "password123"}),
            422,
            "username",
        ),
        (
            json!({"username": "dave smith", "password": "password123"}),
            422,
            "username",
        ),
        (
            json!({"username": "dave", "password": "short"}),
            422,
            "password",
        ),
        (
            json!({"username": "dave", "password": "password123", "nickname": "   "}),
            422,
            "nickname",
        ),
        (json!([1, 2]), 400, "invalid type"),
    ];
    for (body, status, needle) in cases {
        let resp = app.post("/api/auth/register", &body).await;
        assert_eq!(resp.status().as_u16(), status, "{body}");
        let err: Value = resp.json().await.unwrap();
        let message = err["error"]["message"].as_str().unwrap_or_default();
        assert!(err["error"]["code"].is_string(), "{body}: {err}");
        assert!(
            message.contains(needle),
            "{body}: message {message:?} should mention {needle:?}"
        );
    }
    let resp = app
        .http
        .post(app.url("/api/auth/register"))
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = app
        .http
        .post(app.url("/api/auth/register"))
        .body("x")
        .header("content-type", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
}

#[tokio::test]
async fn login_issues_a_token_and_refuses_wrong_credentials() {
    let app = spawn_app().await;
    let (id, _) = app.register("erin").await;
    let resp = app.login("erin", "password123").await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["user"]["id"], id);
    assert!(body["token"].as_str().unwrap().len() > 20);

    for (name, password) in [("erin", "wrong-password"), ("nobody", "password123")] {
        let resp = app.login(name, password).await;
        assert_eq!(resp.status(), 401, "{name}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
        assert!(!body.to_string().contains(password));
    }
}

#[tokio::test]
async fn login_with_a_nul_byte_in_the_username_is_401_not_500() {
    // PostgreSQL refuses NUL in text parameters: this was a 500 there.
    let app = spawn_app().await;
    app.register("frank").await;
    let resp = app.login("frank\0", "password123").await;
    assert_error(resp, 401, "unauthorized").await;
}

/// A deleted account: every token for it is refused, a token minted
/// elsewhere cannot recreate it, and its open connections (on every node)
/// leave their rooms and close with 4001.
#[tokio::test]
async fn a_deleted_account_is_refused_everywhere() {
    let (a, b) = &spawn_pair().await;
    let (id, token, mut on_b) = b.user_in_general("leaving").await;
    let (_, friend, mut watcher) = a.user_in_general("staying").await;
    on_b.send_json(serde_json::json!({"type": "message", "content": "my last words"}))
        .await;
    on_b.recv_type("message").await;
    watcher.recv_type("message").await;

    let (status, _) = a.delete_me(&token).await;
    assert_eq!(status, 204);
    let left = on_b.recv_type("left_room").await;
    assert_eq!(left["data"]["reason"], "account_deleted");
    assert_eq!(on_b.recv_close().await, Some(4001));
    let gone = watcher.recv_type("user_left").await;
    assert_eq!(gone["data"]["user_id"], id);

    for node in [a, b] {
        let (status, body) = node.me(&token).await;
        assert_eq!(status, 401);
        assert_eq!(body["error"]["code"], "unauthorized");
        assert_eq!(node.refused_ws(&token).await.0, 401);
    }
    // A token minted by another service for the same id does not bring it back.
    let minted = crate::helpers::mint(
        &serde_json::json!({"sub": id.to_string(), "exp": crate::helpers::now_secs() + 600}),
        crate::helpers::SECRET,
    );
    assert_eq!(a.refused_ws(&minted).await.0, 401);
    let login = a.login("leaving", "password123").await;
    assert_eq!(login.status(), 401);
    // The history keeps the message, under "Deleted user"; the name is free.
    let (_, history) = a.messages(&friend, 1, "").await;
    assert_eq!(history["messages"][0]["user"]["nickname"], "Deleted user");
    let (new_id, _) = a.register("leaving").await;
    assert_ne!(new_id, id);
}
