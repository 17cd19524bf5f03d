use crate::helpers::spawn_app;
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
    let resp = app
        .post(
            "/api/auth/register",
            &json!({"username": "bob", "password": "password123"}),
        )
        .await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["user"]["nickname"], "bob");
}

#[tokio::test]
async fn duplicate_username_is_409() {
    let app = spawn_app().await;
    app.register("carol").await;
    let resp = app
        .post(
            "/api/auth/register",
            &json!({"username": "carol", "password": "different123"}),
        )
        .await;
    assert_eq!(resp.status(), 409);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "conflict");
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
    let resp = app
        .post(
            "/api/auth/login",
            &json!({"username": "erin", "password": "password123"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["user"]["id"], id);
    assert!(body["token"].as_str().unwrap().len() > 20);

    for (name, password) in [("erin", "wrong-password"), ("nobody", "password123")] {
        let resp = app
            .post(
                "/api/auth/login",
                &json!({"username": name, "password": password}),
            )
            .await;
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
    let resp = app
        .post(
            "/api/auth/login",
            &json!({"username": "frank\0", "password": "password123"}),
        )
        .await;
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
}
