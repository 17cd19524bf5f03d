//! Identities that cannot be squatted or spoofed: a deleted account's name
//! is freed in a form no one can register first; claims of tokens minted
//! elsewhere go through the registration rules; external issuers get users
//! of their own, never local ids; logins take as long for unknown users;
//! names cannot hide behind case, direction controls or invisible
//! characters.

use crate::helpers::{SECRET, mint, now_secs, spawn_app, spawn_pair, spawn_with};
use serde_json::{Value, json};
use std::time::Duration;

/// Before: deletion renamed the account `deleted_{id}`, a valid username;
/// registering that name first made the owner's deletion answer 409 forever.
#[tokio::test]
async fn a_deletion_cannot_be_blocked_by_registering_its_freed_name_first() {
    let app = spawn_app().await;
    let (id, victim) = app.register("victim").await;
    app.register(&format!("deleted_{id}")).await;
    let (status, body) = app.delete_me(&victim).await;
    assert_eq!(status, 204, "{body}");
    let (again, _) = app.register("victim").await;
    assert_ne!(again, id, "the name is free again");
}

/// Before: a token minted elsewhere created its user with the claims as
/// they came: the username `<b>Admin</b> `, nicknames with ESC, BEL, NUL
/// and U+202E.
#[tokio::test]
async fn claims_of_tokens_minted_elsewhere_follow_the_registration_rules() {
    let app = spawn_app().await;
    let exp = now_secs() + 60;
    for (id, username, nickname, want) in [
        (
            501,
            "<b>Admin</b> ",
            "\u{1b}[31mBoss\u{7}\u{0}\u{202E}",
            ("user501", "[31mBoss"),
        ),
        (502, " carol\u{0} ", "\u{200B}", ("carol", "carol")),
        (503, "CAROL", "C", ("user503", "C")),
    ] {
        let token = mint(
            &json!({"sub": id.to_string(), "exp": exp, "username": username, "nickname": nickname}),
            SECRET,
        );
        let (status, body) = app.me(&token).await;
        assert_eq!(status, 200, "{body}");
        let got = body.get("user").unwrap_or(&body);
        assert_eq!(
            (
                got["username"].as_str().unwrap(),
                got["nickname"].as_str().unwrap()
            ),
            want,
            "claims {username:?} / {nickname:?}"
        );
    }
}

/// Before: a token with `sub` 9223372036854775807 created that user, moved
/// the id sequence to its end, and every registration after it failed (500).
#[tokio::test]
async fn a_huge_sub_never_breaks_registration() {
    let app = spawn_app().await;
    let exp = now_secs() + 60;
    for sub in [
        json!(9223372036854775807i64),
        json!("9223372036854775807"),
        json!("2147483648"),
    ] {
        let token = mint(&json!({"sub": sub, "exp": exp}), SECRET);
        let (status, _) = app.me(&token).await;
        assert_eq!(status, 401, "sub {sub} is out of the local range");
    }
    let top = mint(&json!({"sub": "2147483647", "exp": exp}), SECRET);
    assert_eq!(app.me(&top).await.0, 200);
    let (id, _) = app.register("after_the_top").await;
    assert!(id > 0);
}

/// Tokens of an issuer listed in `auth.external_issuers` name the
/// provider's users: `(iss, sub)` maps to a local user with an id of its
/// own. Our tokens carry our `iss`; other issuers are refused; `aud` is
/// checked when set.
#[tokio::test]
async fn external_issuers_get_users_of_their_own_and_audiences_are_checked() {
    let app = spawn_with(|s| {
        s.auth.external_issuers = vec!["https://idp.example".into()];
        s.auth.audience = Some("chat".into());
    })
    .await;
    let exp = now_secs() + 60;
    let external = |sub: &str, name: &str| {
        mint(
            &json!({"iss": "https://idp.example", "aud": "chat", "sub": sub, "exp": exp, "username": name}),
            SECRET,
        )
    };
    let (s1, a) = app.me(&external("9223372036854775807", "eve")).await;
    assert_eq!(s1, 200, "{a}");
    let a = a.get("user").cloned().unwrap_or(a);
    assert_eq!(a["username"], "eve");
    let local_id = a["id"].as_i64().unwrap();
    assert!(local_id < 1000, "an id from the local sequence: {local_id}");
    let (_, again) = app.me(&external("9223372036854775807", "x")).await;
    assert_eq!(
        again.get("user").unwrap_or(&again)["id"],
        local_id,
        "the same user next time"
    );
    let (_, other) = app.me(&external("google|7", "eve")).await;
    let other = other.get("user").cloned().unwrap_or(other);
    assert_ne!(other["id"], local_id);
    assert_ne!(other["username"], "eve", "the name was taken: a fallback");
    // Another issuer, and tokens without the audience, are refused.
    let evil = mint(
        &json!({"iss": "https://evil.example", "aud": "chat", "sub": "1", "exp": exp}),
        SECRET,
    );
    assert_eq!(app.me(&evil).await.0, 401);
    let no_aud = mint(&json!({"sub": "1", "exp": exp}), SECRET);
    assert_eq!(app.me(&no_aud).await.0, 401);
    // The gateway's own tokens carry its iss and the audience, and work.
    let (_, token) = app.register("frank").await;
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&base64_url(payload)).unwrap();
    assert_eq!(
        (claims["iss"].as_str(), claims["aud"].as_str()),
        (Some("chat-gateway"), Some("chat"))
    );
    assert_eq!(app.me(&token).await.0, 200);
    // The WebSocket takes the same tokens.
    app.ws(&external("9223372036854775807", "eve"), "").await;
}

fn base64_url(s: &str) -> Vec<u8> {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes() {
        let v = T.iter().position(|t| *t == c).unwrap() as u32;
        bits = bits << 6 | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    out
}

/// Before: a login took ~25 ms for an existing user and ~0.5 ms for an
/// unknown one, telling which usernames exist. Both now verify a hash.
/// Timed on the node itself (its request-duration histogram), so that the
/// test's own round trips do not hide the difference.
#[tokio::test]
async fn a_login_takes_as_long_whether_or_not_the_user_exists() {
    let app = spawn_app().await;
    app.register("known").await;
    async fn server_seconds(app: &crate::helpers::TestApp) -> (f64, f64) {
        let text = app.metrics().await;
        let read = |suffix: &str| {
            text.lines()
                .find(|l| {
                    l.starts_with(&format!(
                        "chat_gateway_http_request_duration_seconds_{suffix}"
                    )) && l.contains("route=\"/api/auth/login\"")
                })
                .and_then(|l| l.rsplit(' ').next()?.parse().ok())
                .unwrap_or(0.0)
        };
        (read("sum"), read("count"))
    }
    /// How long one failed login as `username` took on the node.
    async fn one(app: &crate::helpers::TestApp, username: &str) -> Duration {
        let (sum0, n0) = server_seconds(app).await;
        let login = app.login(username, "wrong-password").await;
        assert_eq!(login.status(), 401);
        let (sum1, n1) = server_seconds(app).await;
        assert_eq!(n1 - n0, 1.0, "one login counted");
        Duration::from_secs_f64(sum1 - sum0)
    }
    // Interleaved, so that a busy machine slows both kinds alike.
    let (mut known, mut unknown) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..6 {
        known += one(&app, "known").await;
        unknown += one(&app, "nobody-here").await;
    }
    println!("6 logins on the node: known user {known:?}, unknown user {unknown:?}");
    // Without the decoy hash the unknown user answered ~50 times faster
    // (0.5 ms against 25 ms); a factor of 4 leaves room for a noisy machine.
    assert!(
        unknown * 4 >= known,
        "unknown {unknown:?} vs known {known:?}"
    );
}

/// Before: `Alice_x` and `alice_x` were two accounts, and nicknames, room
/// names could hold direction controls or be nothing but a zero-width space.
#[tokio::test]
async fn names_cannot_hide_behind_case_direction_controls_or_invisible_characters() {
    let app = spawn_app().await;
    app.register("Alice_x").await;
    let taken = app.try_register("alice_X", "password123").await;
    assert_eq!(taken.status(), 409, "the same name but for case");
    let login = app.login("ALICE_X", "password123").await;
    assert_eq!(login.status(), 200, "a login in any case");
    let fullwidth = app.login("ＡＬＩＣＥ_ｘ", "password123").await;
    assert_eq!(fullwidth.status(), 200, "and in any width (NFKC)");
    let token: Value = login.json().await.unwrap();
    let token = token["token"].as_str().unwrap().to_owned();

    for (nickname, why) in [
        ("Bob\u{202E}", "direction control"),
        ("\u{200B}", "invisible"),
        ("\u{2066}x\u{2069}", "isolate"),
    ] {
        let r = app
            .post(
                "/api/auth/register",
                &json!({"username": "bobby", "password": "password123", "nickname": nickname}),
            )
            .await;
        assert_eq!(r.status(), 422, "{why}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("nickname"),
            "{body}"
        );
        let (status, body) = app.update_me(&token, json!({"nickname": nickname})).await;
        assert_eq!(status, 422, "{why}: {body}");
    }
    let (status, body) = app
        .create_room_raw(&token, json!({"name": "general\u{202E}"}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("name"),
        "{body}"
    );
    // Message content keeps them (mixed scripts need them; the page isolates each message).
    app.join_room(&token, 1).await;
    let (status, m) = app
        .post_message(&token, 1, json!({"content": "abc \u{202E}def"}))
        .await;
    assert_eq!(status, 201, "{m}");
    assert_eq!(m["content"], "abc \u{202E}def");
}

/// The node remembers the users it admitted (no SQL read on their next
/// upgrade), and forgets one whose nickname changes: the next connection
/// shows the new nickname, on every node (on another node once the bus
/// brought it the change).
#[tokio::test]
async fn a_new_nickname_shows_on_the_next_connection() {
    let (a, b) = &spawn_pair().await;
    let (id, token) = a.register("renamed").await;
    let (_, _, mut watcher) = a.user_in_general("onlooker").await;
    let first = b.ws_in_general(&token).await;
    let joined = watcher.recv_type("user_joined").await;
    assert_eq!(joined["data"]["user"]["nickname"], "renamed");
    first.close().await;
    watcher.recv_type("user_left").await;

    let (status, body) = a
        .update_me(&token, json!({"nickname": "Renamed Again"}))
        .await;
    assert_eq!(status, 200, "{body}");
    // Node `a` forgets the user at once; another node when the bus brings
    // it the change, a moment after the PATCH answered: until then it may
    // still show the old nickname, never after.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let second = b.ws_in_general(&token).await;
        let joined = watcher.recv_type("user_joined").await;
        let seen = (
            joined["data"]["user"]["id"].as_i64(),
            joined["data"]["user"]["nickname"].as_str(),
        );
        if seen == (Some(id), Some("Renamed Again")) {
            return;
        }
        assert!(
            seen == (Some(id), Some("renamed")) && std::time::Instant::now() < deadline,
            "the new nickname never showed: {joined}"
        );
        second.close().await;
        watcher.recv_type("user_left").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
