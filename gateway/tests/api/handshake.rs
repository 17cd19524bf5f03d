//! The `/ws` upgrade: token, room and limit checks happen before any upgrade.

use crate::helpers::{SECRET, mint, now_secs, spawn_app, spawn_with};
use serde_json::{Value, json};

fn flat_error(body: &str) -> String {
    let v: Value =
        serde_json::from_str(body).unwrap_or_else(|_| panic!("JSON error body, got {body:?}"));
    v["error"]
        .as_str()
        .expect("v1 shape {\"error\": \"...\"}")
        .to_owned()
}

#[tokio::test]
async fn missing_or_bad_tokens_get_401_before_the_upgrade() {
    let app = spawn_app().await;
    let exp = now_secs() + 600;
    let alg_none = format!(
        "{}.{}.",
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0", // {"alg":"none","typ":"JWT"}
        "eyJzdWIiOiIxIiwiZXhwIjo5OTk5OTk5OTk5fQ"  // {"sub":"1","exp":9999999999}
    );
    let cases = [
        ("no token", String::new()),
        ("garbage", "token=garbage".into()),
        (
            "expired",
            format!(
                "token={}",
                mint(&json!({"sub": "1", "exp": now_secs() - 120}), SECRET)
            ),
        ),
        (
            "wrong signature",
            format!(
                "token={}",
                mint(
                    &json!({"sub": "1", "exp": exp}),
                    "some-other-secret-0123456789"
                )
            ),
        ),
        ("alg none", format!("token={alg_none}")),
        (
            "missing sub",
            format!("token={}", mint(&json!({"exp": exp}), SECRET)),
        ),
        (
            "missing exp",
            format!("token={}", mint(&json!({"sub": "1"}), SECRET)),
        ),
    ];
    for (name, query) in cases {
        let (status, body) = app
            .try_ws(&query)
            .await
            .err()
            .unwrap_or_else(|| panic!("{name}: upgraded"));
        assert_eq!(status, 401, "{name}");
        assert_eq!(flat_error(&body), "User not authenticated", "{name}");
    }
}

#[tokio::test]
async fn bearer_header_is_accepted() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = spawn_app().await;
    let (_, token) = app.register("hdr").await;
    let mut req = format!("ws://127.0.0.1:{}/ws", app.port)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    let (mut stream, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrade with bearer header");
    use futures_util::StreamExt;
    let frame = stream.next().await.unwrap().unwrap();
    assert!(frame.to_text().unwrap().contains("online_users"));
}

#[tokio::test]
async fn room_id_rules_default_invalid_and_unknown() {
    let app = spawn_app().await;
    let (_, token) = app.register("roomy").await;
    let mut c = app.ws(&token, "").await;
    assert_eq!(
        c.recv_type("online_users").await["room_id"],
        1,
        "room_id defaults to 1"
    );
    for bad in ["abc", "-1", "1.5", "99999999999999"] {
        let (status, body) = app
            .try_ws(&format!("token={token}&room_id={bad}"))
            .await
            .err()
            .unwrap();
        assert_eq!(status, 400, "{bad}");
        assert_eq!(flat_error(&body), "Invalid room ID");
    }
    let (status, body) = app
        .try_ws(&format!("token={token}&room_id=4242"))
        .await
        .err()
        .unwrap();
    assert_eq!(status, 404);
    assert_eq!(flat_error(&body), "Room not found");
}

#[tokio::test]
async fn a_token_minted_elsewhere_creates_the_user_from_its_claims() {
    let app = spawn_app().await;
    let token = mint(
        &json!({"sub": 9001, "exp": now_secs() + 600, "username": "ext_user", "nickname": "External"}),
        SECRET,
    );
    let mut c = app.ws(&token, "").await;
    let online = c.recv_type("online_users").await;
    assert_eq!(
        online["data"]["users"],
        json!([{"id": 9001, "username": "ext_user", "nickname": "External"}])
    );
    // Registration after that still gets a fresh id.
    let (id, _) = app.register("after_ext").await;
    assert_ne!(id, 9001);
}

#[tokio::test]
async fn the_connection_limit_refuses_upgrades_with_503() {
    let app = spawn_with(|s| s.limits.max_connections = 2).await;
    let (_, token) = app.register("limited").await;
    let a = app.ws_in_general(&token).await;
    let _b = app.ws_in_general(&token).await;
    let (status, body) = app.refused_ws(&token).await;
    assert_eq!(status, 503);
    assert!(flat_error(&body).contains("Too many connections"));
    // A slot frees up when a connection ends.
    a.close().await;
    app.ws_accepted_again(&token, 503, crate::helpers::WAIT)
        .await;
}

#[tokio::test]
async fn a_foreign_origin_is_refused_and_the_allow_list_is_honoured() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = spawn_with(|s| s.server.allowed_origins = vec!["https://chat.example".into()]).await;
    let (_, token) = app.register("origin").await;
    for (origin, ok) in [
        ("https://evil.example", false),
        ("https://chat.example", true),
    ] {
        let mut req = format!("ws://127.0.0.1:{}/ws?token={token}", app.port)
            .into_client_request()
            .unwrap();
        req.headers_mut().insert("Origin", origin.parse().unwrap());
        match tokio_tungstenite::connect_async(req).await {
            Ok(_) => assert!(ok, "{origin} should be refused"),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert!(!ok, "{origin} should be allowed");
                assert_eq!(resp.status(), 403);
            }
            Err(e) => panic!("{e}"),
        }
    }
    // Default (empty list): same origin only.
    let same = spawn_app().await;
    let (_, token) = same.register("origin2").await;
    for (origin, ok) in [
        (format!("http://127.0.0.1:{}", same.port), true),
        ("http://127.0.0.1:1".to_owned(), false),
    ] {
        let mut req = format!("ws://127.0.0.1:{}/ws?token={token}", same.port)
            .into_client_request()
            .unwrap();
        req.headers_mut().insert("Origin", origin.parse().unwrap());
        assert_eq!(
            tokio_tungstenite::connect_async(req).await.is_ok(),
            ok,
            "{origin}"
        );
    }
}

#[tokio::test]
async fn only_get_ws_upgrades_and_a_plain_get_is_refused_with_the_flat_shape() {
    use crate::helpers::connect;
    let app = spawn_app().await;
    let (_, token) = app.register("paths").await;
    // An upgrade to another path: refused, the connection closed.
    let (status, body) = connect(&format!(
        "ws://127.0.0.1:{}/api/rooms?token={token}",
        app.port
    ))
    .await
    .err()
    .expect("no upgrade outside /ws");
    assert_eq!(status, 404);
    assert_eq!(flat_error(&body), "WebSocket upgrades are served at /ws");
    // A plain GET /ws (no Upgrade header) runs the same checks, in order,
    // and is then refused as not a handshake.
    let url = format!("http://127.0.0.1:{}/ws", app.port);
    let resp = app.http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        flat_error(&resp.text().await.unwrap()),
        "User not authenticated"
    );
    let resp = app
        .http
        .get(format!("{url}?token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        flat_error(&resp.text().await.unwrap()),
        "Not a WebSocket handshake"
    );
    // Nothing was left claimed by the refused attempts: a real upgrade works.
    app.ws_in_general(&token).await;
}
