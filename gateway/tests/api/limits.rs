//! Abuse limits: frame floods, connections per user, upgrade attempts per IP.

use crate::helpers::{spawn_pair_with, spawn_with};
use crate::setup::user_at_frame_rate;
use serde_json::json;

#[tokio::test]
async fn a_flooding_client_is_told_then_disconnected_with_1008() {
    let (_app, mut c) = user_at_frame_rate(5, 5, "flooder").await;
    for _ in 0..40 {
        c.send_json(json!({"type": "ping"})).await;
    }
    let mut pongs = 0;
    let mut limited = 0;
    let code = loop {
        use futures_util::StreamExt;
        match tokio::time::timeout(crate::helpers::WAIT, c.stream.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                match v["type"].as_str() {
                    Some("pong") => pongs += 1,
                    Some("error") => {
                        assert_eq!(v["data"]["code"], "rate_limited");
                        limited += 1;
                    }
                    _ => {}
                }
            }
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(f))) => {
                break f.map(|f| u16::from(f.code));
            }
            Some(Ok(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(code, Some(1008));
    assert!((5..=7).contains(&pongs), "the burst was served: {pongs}");
    assert_eq!(
        limited, 5,
        "each refused frame answered until the strikes ran out"
    );
}

#[tokio::test]
async fn a_refused_message_is_answered_by_name() {
    let (_app, mut c) = user_at_frame_rate(1, 2, "hasty").await;
    for n in 1..=3 {
        c.send_json(json!({"type": "message", "room_id": 1, "content": format!("m{n}"), "client_msg_id": format!("c-{n}")}))
            .await;
    }
    let mut answered = Vec::new();
    while answered.len() < 3 {
        let v = c.recv_json().await;
        match v["type"].as_str() {
            Some("message") => {
                answered.push(v["data"]["client_msg_id"].as_str().unwrap().to_owned())
            }
            Some("error") => {
                assert_eq!(v["data"]["code"], "rate_limited", "{v}");
                assert_eq!(v["room_id"], 1, "{v}");
                answered.push(format!("limited {}", v["data"]["ref"].as_str().unwrap()));
            }
            _ => {}
        }
    }
    answered.sort();
    assert_eq!(answered, ["c-1", "c-2", "limited c-3"]);
}

#[tokio::test]
async fn a_sender_within_the_rate_is_never_limited() {
    let (_app, mut c) = user_at_frame_rate(50, 10, "polite").await;
    for _ in 0..20 {
        c.send_json(json!({"type": "ping"})).await;
        assert_eq!(c.recv_json().await, json!({"type": "pong"}));
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn connections_per_user_are_capped_with_429() {
    let app = spawn_with(|s| s.limits.max_connections_per_user = 2).await;
    let (_, t) = app.register("greedy").await;
    let (_, other) = app.register("other").await;
    let _a = app.ws_in_general(&t).await;
    let _b = app.ws_in_general(&t).await;
    let (status, body) = app.refused_ws(&t).await;
    assert_eq!(status, 429, "third refused: {body}");
    let _c = app.ws_in_general(&other).await;
}

/// In cluster mode the cap counts the user's connections on every node
/// (through Redis); a closed connection gives its place back.
#[tokio::test]
async fn the_per_user_cap_spans_nodes_and_frees_on_close() {
    let (a, b) = &spawn_pair_with(|s| s.limits.max_connections_per_user = 2).await;
    let (_, t) = a.register("spread").await;
    let _first = a.ws_in_general(&t).await;
    let second = b.ws_in_general(&t).await;
    for node in [a, b] {
        let (status, body) = node.refused_ws(&t).await;
        assert_eq!(status, 429, "a third connection on any node: {body}");
    }
    second.close().await;
    // The freed place is given back.
    a.ws_accepted_again(&t, 429, std::time::Duration::from_secs(5))
        .await;
}

#[tokio::test]
async fn upgrade_attempts_per_ip_are_rate_limited() {
    let app = spawn_with(|s| s.limits.connect_rate_per_ip = 2).await;
    let (_, t) = app.register("hammer").await;
    let mut refused = 0;
    for _ in 0..12 {
        if let Err((status, _)) = app.try_ws(&format!("token={t}")).await {
            assert_eq!(status, 429);
            refused += 1;
        }
    }
    assert!(refused >= 6, "burst of 4, then refusals: {refused} refused");
}

#[tokio::test]
async fn a_connection_beyond_its_room_limit_gets_too_many_rooms() {
    let app = spawn_with(|s| s.limits.max_rooms_per_connection = 1).await;
    let (_, t) = app.register("roomy").await;
    let second = app.insert_public_room("second").await;
    let mut c = app.ws_in_general(&t).await;

    // In room 1 already: a second room is refused by name, for that room.
    c.send_json(json!({"type": "join_room", "room_id": second}))
        .await;
    let err = c.recv_json().await;
    assert_eq!(
        (
            err["type"].as_str(),
            err["room_id"].as_i64(),
            err["data"]["code"].as_str()
        ),
        (Some("error"), Some(second), Some("too_many_rooms")),
        "{err}"
    );
    assert!(err["data"]["message"].is_string(), "{err}");

    // Re-entering the room it is in is not a new room; the connection is
    // still in room 1 only and works.
    c.send_json(json!({"type": "join_room", "room_id": 1}))
        .await;
    assert_eq!(c.recv_type("online_users").await["room_id"], 1);
    let m = c.say("still here").await;
    assert_eq!(
        (m["room_id"].as_i64(), m["data"]["content"].as_str()),
        (Some(1), Some("still here"))
    );
    c.send_json(json!({"type": "message", "room_id": second, "content": "no"}))
        .await;
    assert_eq!(c.recv_type("error").await["data"]["code"], "not_in_room");
}
