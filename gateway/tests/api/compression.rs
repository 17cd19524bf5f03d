//! permessage-deflate (RFC 7692) through `/ws`, with the raw client of
//! `tests/common/raw_ws.rs`: negotiated when offered and on, refused when off or when
//! the offer is unacceptable; a broadcast compressed once for every member
//! that negotiated it, and plain for the others; short frames plain;
//! compressed client messages inflated; a deflate bomb closed with 1009
//! while the room stays served.

use crate::helpers::{WsClient, spawn_app, spawn_with};
use crate::raw_ws::{ACCEPTED, BROWSER_OFFER, RawClient, deflate};
use serde_json::json;
use std::time::Duration;

fn compressed_total(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("chat_gateway_ws_messages_compressed_total "))
        .expect("the metric")
        .trim()
        .parse()
        .unwrap()
}

fn long_content() -> String {
    "Compression pays for the words a chat repeats. "
        .repeat(12)
        .trim_end()
        .to_owned()
}

#[tokio::test]
async fn a_broadcast_is_compressed_once_for_every_member_that_negotiated_it() {
    let app = spawn_app().await;
    let (_, _, mut sender) = app.user_in_general("alice").await;
    let mut compressing = Vec::new();
    for name in ["bob", "carol", "dave"] {
        let (_, token) = app.register(name).await;
        let mut c = RawClient::open(app.port, &token, Some(BROWSER_OFFER)).await;
        assert_eq!(c.extensions.as_deref(), Some(ACCEPTED));
        c.json_of_type("online_users").await;
        compressing.push(c);
    }
    let (_, erin) = app.register("erin").await;
    let mut plain = RawClient::open(app.port, &erin, None).await;
    assert_eq!(plain.extensions, None, "not offered, not answered");
    plain.json_of_type("online_users").await;
    // Everyone's presence frames are out (each client saw erin arrive).
    for c in &mut compressing {
        while c.json_of_type("user_joined").await.0["data"]["user"]["username"] != "erin" {}
    }
    while sender.recv_type("user_joined").await["data"]["user"]["username"] != "erin" {}

    let before = compressed_total(&app.metrics().await);
    let echo = sender.say(&long_content()).await;
    let (as_sent, compressed) = plain.json_of_type("message").await;
    assert!(!compressed, "a client that did not negotiate gets it plain");
    assert_eq!(as_sent, echo);
    for c in &mut compressing {
        let (got, compressed) = c.json_of_type("message").await;
        assert!(compressed, "RSV1 set on a long frame");
        assert_eq!(got, as_sent, "inflates to the frame the others got");
    }
    let after = compressed_total(&app.metrics().await);
    assert_eq!(after - before, 1, "compressed once for three members");
    // Short frames go plain, also to those who negotiated.
    sender
        .send_json(json!({"type": "message", "content": "hi"}))
        .await;
    for c in &mut compressing {
        let (got, compressed) = c.json_of_type("message").await;
        assert_eq!(got["data"]["content"], "hi");
        assert!(!compressed, "under the threshold: plain");
    }
    assert!(
        app.metrics()
            .await
            .contains("chat_gateway_ws_compressed_connections_total 3")
    );
}

#[tokio::test]
async fn compression_is_refused_when_off_or_when_the_offer_is_unacceptable() {
    let off = spawn_with(|s| s.ws.compression = false).await;
    let (_, alice) = off.register("alice").await;
    let mut c = RawClient::open(off.port, &alice, Some(BROWSER_OFFER)).await;
    assert_eq!(c.extensions, None, "CHAT__WS__COMPRESSION=false");
    c.json_of_type("online_users").await;
    let mut sender = off.ws_in_general(&alice).await;
    sender.say(&long_content()).await;
    let (m, compressed) = c.json_of_type("message").await;
    assert!(!compressed);
    assert_eq!(m["data"]["content"], long_content());

    let app = spawn_app().await;
    let (_, bob) = app.register("bob").await;
    // An unknown parameter, or a window zlib cannot make: declined.
    for offer in [
        "permessage-deflate; foo=1",
        "permessage-deflate; server_max_window_bits=8",
        "x-webkit-deflate-frame",
    ] {
        let c = RawClient::open(app.port, &bob, Some(offer)).await;
        assert_eq!(c.extensions, None, "{offer}");
    }
    // A smaller window is honoured: what it gets inflates in that window.
    let mut small = RawClient::open(
        app.port,
        &bob,
        Some("permessage-deflate; server_max_window_bits=9, permessage-deflate"),
    )
    .await;
    assert_eq!(
        small.extensions.as_deref(),
        Some(format!("{ACCEPTED}; server_max_window_bits=9").as_str())
    );
    small.json_of_type("online_users").await;
    let mut sender = app.ws_in_general(&bob).await;
    sender.say(&long_content()).await;
    let (m, compressed) = small.json_of_type("message").await;
    assert!(compressed);
    assert_eq!(m["data"]["content"], long_content());
}

#[tokio::test]
async fn compressed_client_messages_are_inflated_and_a_deflate_bomb_gets_1009() {
    let app = spawn_app().await;
    let (_, alice) = app.register("alice").await;
    let (_, mallory) = app.register("mallory").await;
    let mut alice_ws: WsClient = app.ws_in_general(&alice).await;
    let mut c = RawClient::open(app.port, &mallory, Some(BROWSER_OFFER)).await;
    c.json_of_type("online_users").await;

    let message = json!({"type": "message", "content": long_content()}).to_string();
    c.send(&deflate(message.as_bytes()), true).await;
    let (echo, _) = c.json_of_type("message").await;
    assert_eq!(echo["data"]["content"], long_content());
    assert_eq!(
        alice_ws.recv_type("message").await["data"]["content"],
        long_content()
    );

    // A megabyte of spaces is ~1 KiB compressed: inflation stops at the
    // frame limit (4096 bytes, counted inflated) and the client is closed.
    let bomb = deflate(&vec![b' '; 1 << 20]);
    assert!(bomb.len() < 4096, "{} bytes on the wire", bomb.len());
    c.send(&bomb, true).await;
    assert_eq!(c.close_code().await, 1009);
    // The room is still served.
    let started = std::time::Instant::now();
    assert_eq!(
        alice_ws.say("still here").await["data"]["content"],
        "still here"
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    // RSV1 without compression negotiated: a protocol error.
    let mut plain = RawClient::open(app.port, &mallory, None).await;
    plain.json_of_type("online_users").await;
    plain.send(&deflate(message.as_bytes()), true).await;
    assert_eq!(plain.close_code().await, 1002);
}
