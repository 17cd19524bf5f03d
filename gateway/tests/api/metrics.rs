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

/// `chat_gateway_messages_delivered_total`, once it is not 0 (the worker
/// that delivers counts it, a moment after the client got the frame).
async fn delivered(app: &crate::helpers::TestApp) -> f64 {
    let within = std::time::Duration::from_secs(5);
    crate::eventually::eventually(within, "a delivery counted", || async {
        let n = value(
            &app.metrics().await,
            "chat_gateway_messages_delivered_total",
        );
        if n >= 1.0 { Ok(n) } else { Err(format!("{n}")) }
    })
    .await
}

/// A new user, connected to room 1, who sent a message and got it back.
async fn chat(app: &crate::helpers::TestApp, name: &str) -> crate::helpers::WsClient {
    let (_, t) = app.register(name).await;
    let mut c = app.ws_in_general(&t).await;
    c.send_json(json!({"type": "message", "content": format!("from {name}")}))
        .await;
    c.recv_type("message").await;
    c
}

#[tokio::test]
async fn metrics_count_connections_messages_and_requests() {
    let app = spawn_app().await;
    let mut c = chat(&app, "metered").await;
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
    // Counted by the worker's fan-out task, which may run after the
    // sender's own answer went out.
    assert!(delivered(&app).await >= 1.0);
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
    assert!(value(&text, "chat_gateway_bus_events_received_total") >= 1.0);
    // Upgrades count like requests: route "/ws", 101 or the refusal's status.
    assert!(
        value(
            &text,
            r#"chat_gateway_http_requests_total{route="/ws",status="101"}"#
        ) >= 1.0
    );
    assert!(
        value(
            &text,
            r#"chat_gateway_http_requests_total{route="/ws",status="401"}"#
        ) >= 1.0
    );
    assert!(value(&text, "chat_gateway_ws_received_bytes_total") > 0.0);
    assert!(value(&text, "chat_gateway_ws_sent_bytes_total") > 0.0);
    assert!(value(&text, "chat_gateway_outbound_queue_depth_count") >= 1.0);
    assert!(value(&text, "chat_gateway_bus_lag_seconds_count") >= 1.0);
    assert!(value(&text, "chat_gateway_db_pool_max_connections") >= 1.0);
    // Every SQL statement is timed, by kind and table.
    assert!(
        value(
            &text,
            r#"chat_gateway_db_statement_seconds_count{kind="insert",table="messages"}"#
        ) >= 1.0
    );
    assert!(
        value(
            &text,
            r#"chat_gateway_db_statement_seconds_count{kind="select",table="users"}"#
        ) >= 1.0
    );
    assert_eq!(value(&text, "chat_gateway_database_up"), 1.0);

    // A closed connection's lifetime is recorded.
    c.close().await;
    let within = std::time::Duration::from_secs(5);
    crate::eventually::eventually(within, "a connection lifetime recorded", || async {
        let text = app.metrics().await;
        match value(&text, "chat_gateway_connection_duration_seconds_count") {
            n if n >= 1.0 => Ok(()),
            _ => Err(text),
        }
    })
    .await;
}

#[tokio::test]
async fn the_admin_port_serves_metrics_and_health_only() {
    let app = crate::helpers::spawn_with(|s| s.server.admin_port = Some(0)).await;
    let admin = app.admin_port.expect("admin port bound");
    assert_ne!(admin, app.port);
    let get = |path: &str| {
        let url = format!("http://127.0.0.1:{admin}{path}");
        let http = app.http.clone();
        async move { http.get(url).send().await.unwrap() }
    };
    let metrics = get("/metrics").await;
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics
            .text()
            .await
            .unwrap()
            .contains("chat_gateway_connections_accepted_total")
    );
    assert_eq!(get("/healthz").await.status(), 200);
    assert_eq!(get("/readyz").await.status(), 200);
    let api = get("/api/rooms").await;
    assert_eq!(api.status(), 404, "the API stays on the main port");
    let body: serde_json::Value = api.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    // The main port no longer serves them, however the path is spelled.
    for path in ["/metrics", "/%6detrics", "/healthz", "/readyz", "/%72eadyz"] {
        let main = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(main.status(), 404, "{path} on the main port");
    }
    let api = app.http.get(app.url("/api/rooms")).send().await.unwrap();
    assert_eq!(api.status(), 401, "the API is still there");
}

#[tokio::test]
async fn presence_as_read_from_the_store_is_exported_in_cluster_mode() {
    let app = crate::helpers::spawn_with(|s| s.presence.ttl_secs = 3).await;
    let (_, a) = app.register("present1").await;
    let (_, b) = app.register("present2").await;
    let _c1 = app.ws_in_general(&a).await;
    let _c2 = app.ws_in_general(&a).await;
    let _c3 = app.ws_in_general(&b).await;
    if app.settings.redis.url.is_none() {
        // One node: there is no shared store to read (the cluster-mode
        // presence keeper feeds these); the series exist and stay at 0,
        // while the node's own presence counts the users.
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let text = app.metrics().await;
        assert_eq!(value(&text, "chat_gateway_presence_store_connections"), 0.0);
        assert_eq!(value(&text, "chat_gateway_presence_store_users"), 0.0);
        assert_eq!(value(&text, "chat_gateway_presence_users"), 2.0);
        return;
    }
    // The keeper runs every TTL/3 = 1 s.
    let within = std::time::Duration::from_secs(10);
    crate::eventually::eventually(
        within,
        "presence gauges of 3 connections, 2 users",
        || async {
            let text = app.metrics().await;
            let conns = value(&text, "chat_gateway_presence_store_connections");
            let users = value(&text, "chat_gateway_presence_store_users");
            match (conns, users) {
                (3.0, 2.0) => Ok(()),
                _ => Err(format!("{conns} connections, {users} users")),
            }
        },
    )
    .await;
}

/// Labelled series exist at 0 from the start, so that a rate or
/// an alert has a series before the first event: every close reason, every
/// upgrade refusal reason and every limit.
#[tokio::test]
async fn labelled_series_exist_before_their_first_event() {
    let app = spawn_app().await;
    let text = app.metrics().await;
    for series in [
        r#"chat_gateway_connections_closed_total{reason="slow_consumer"}"#,
        r#"chat_gateway_connections_closed_total{reason="service_restart"}"#,
        r#"chat_gateway_upgrades_refused_total{reason="capacity"}"#,
        r#"chat_gateway_upgrades_refused_total{reason="draining"}"#,
        r#"chat_gateway_limited_total{limit="read_budget"}"#,
        r#"chat_gateway_limited_total{limit="request_head"}"#,
    ] {
        assert_eq!(value(&text, series), 0.0, "{series}");
    }
}

/// The shipped alerts and dashboard against a live `/metrics`, both ways:
/// every `chat_gateway_*` name they use is exposed (a histogram's
/// `_bucket`/`_sum`/`_count` by its family), and every family the gateway
/// exposes has a panel. The names come from the running gateway, so a
/// renamed or new metric cannot drift from a hand-kept list.
#[tokio::test]
async fn the_shipped_alerts_and_dashboard_match_a_live_metrics_page() {
    let app = spawn_app().await;
    // Traffic, so that the labelled families have a series to show.
    let _c = chat(&app, "charted").await;
    let live = app.metrics().await;
    let families: std::collections::HashMap<&str, &str> = live
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE chat_gateway_"))
        .filter_map(|l| l.split_once(' '))
        .collect();
    // Only a node with Redis times Redis operations.
    let absent_here: &[&str] = if app.settings.redis.url.is_none() {
        &["redis_operation_seconds"]
    } else {
        &[]
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap();
    let dashboard = read("deploy/grafana/dashboards/chat-gateway.json");
    let used_in = |text: &str| -> Vec<String> {
        let mut names: Vec<String> = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter_map(|w| w.strip_prefix("chat_gateway_"))
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect();
        names.sort();
        names.dedup();
        names
    };
    for file in [
        "deploy/prometheus/alerts.yml",
        "deploy/grafana/dashboards/chat-gateway.json",
    ] {
        let text = if file.ends_with(".json") {
            dashboard.clone()
        } else {
            read(file)
        };
        for name in used_in(&text) {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s).filter(|base| {
                        families.get(base) == Some(&"histogram") || absent_here.contains(base)
                    })
                })
                .unwrap_or(&name);
            assert!(
                families.contains_key(family) || absent_here.contains(&family),
                "{file} uses chat_gateway_{name}, which /metrics does not expose"
            );
        }
    }
    let shown = used_in(&dashboard);
    for family in families.keys() {
        assert!(
            shown
                .iter()
                .any(|n| n == family || n.strip_suffix("_bucket") == Some(family)),
            "chat_gateway_{family} is on no panel of the dashboard"
        );
    }
    assert!(families.len() >= 20, "{} families: {live}", families.len());
}
