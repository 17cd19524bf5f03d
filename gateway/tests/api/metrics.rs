//! `GET /metrics` reflects what the node did.

use crate::helpers::spawn_app;
use serde_json::json;

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

#[tokio::test]
async fn metrics_count_connections_messages_and_requests() {
    let app = spawn_app().await;
    let (_, t) = app.register("metered").await;
    let mut c = app.ws_in_general(&t).await;
    c.send_json(json!({"type": "message", "content": "count me"}))
        .await;
    c.recv_type("message").await;
    c.send_text("garbage").await;
    c.recv_type("error").await;
    let _ = app.try_ws("token=bad").await;

    let resp = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = resp.text().await.unwrap();
    assert_eq!(value(&text, "chat_gateway_connections"), 1.0);
    assert_eq!(value(&text, "chat_gateway_rooms"), 1.0);
    assert!(value(&text, "chat_gateway_connections_accepted_total") >= 1.0);
    assert!(value(&text, "chat_gateway_messages_published_total") >= 1.0);
    assert!(value(&text, "chat_gateway_messages_delivered_total") >= 1.0);
    assert!(
        value(
            &text,
            r#"chat_gateway_frames_received_total{type="message"}"#
        ) >= 1.0
    );
    assert!(
        value(
            &text,
            r#"chat_gateway_frames_received_total{type="invalid"}"#
        ) >= 1.0
    );
    assert!(
        value(
            &text,
            r#"chat_gateway_frames_sent_total{type="online_users"}"#
        ) >= 1.0
    );
    assert!(
        value(
            &text,
            r#"chat_gateway_upgrades_refused_total{reason="unauthorized"}"#
        ) >= 1.0
    );
    assert!(
        value(
            &text,
            r#"chat_gateway_http_requests_total{route="/api/auth/register",status="201"}"#
        ) >= 1.0
    );
    assert!(value(&text, "chat_gateway_broadcast_latency_seconds_count") >= 1.0);
    assert!(text.contains(r#"chat_gateway_db_operation_seconds_bucket{op="insert_message""#));
    assert!(!text.contains("metered"), "no per-user labels");
}
