//! Prometheus metrics of one node, served at `GET /metrics`.
//!
//! Names follow Prometheus conventions: a `chat_gateway_` prefix, base units
//! (seconds), `_total` counters, histograms for durations. Labels are small
//! closed sets (close reasons, frame types, routes, operations): never a user
//! or a room (cardinality).

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::OnceLock;
use std::time::Instant;

pub struct Metrics {
    registry: Registry,
    pub connections: IntGauge,
    pub connections_accepted: IntCounter,
    pub connections_closed: IntCounterVec,
    pub upgrades_refused: IntCounterVec,
    pub limited: IntCounterVec,
    pub rooms: IntGauge,
    pub presence_users: IntGauge,
    pub presence_store_connections: IntGauge,
    pub presence_store_users: IntGauge,
    pub frames_received: IntCounterVec,
    pub frames_sent: IntCounterVec,
    pub messages_published: IntCounter,
    pub messages_delivered: IntCounter,
    pub messages_dropped: IntCounter,
    pub broadcast_latency: Histogram,
    pub slow_consumers: IntCounter,
    pub bus_connected: IntGauge,
    pub bus_publish_errors: IntCounter,
    pub bus_reconnects: IntCounter,
    pub bus_subscribed_channels: IntGauge,
    pub bus_gaps_filled: IntCounter,
    pub bus_received: IntCounter,
    pub bus_receiver_lagged: IntCounter,
    pub bus_lag: Histogram,
    pub ws_received_bytes: IntCounter,
    pub ws_sent_bytes: IntCounter,
    pub ws_messages_compressed: IntCounter,
    pub ws_compressed_connections: IntCounter,
    pub outbound_queue_depth: Histogram,
    pub db_pool_connections: IntGaugeVec,
    pub db_pool_max: IntGauge,
    pub memory_limit: IntGauge,
    pub connection_seconds: Histogram,
    pub database_up: IntGauge,
    pub db_seconds: HistogramVec,
    pub db_statement_seconds: HistogramVec,
    pub db_message_batch: Histogram,
    pub redis_seconds: HistogramVec,
    pub http_requests: IntCounterVec,
    pub http_seconds: HistogramVec,
    pub draining: Gauge,
    /// Always 1; the labels say which build this node runs.
    pub build_info: IntGaugeVec,
}

/// Up to 10 s: a database or Redis call that queues behind an outage, or a
/// message waiting in a full group commit, must not all land in `+Inf`.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The crate's version and the commit it was built from (`build.rs`).
pub const BUILD_VERSION: &str = env!("CARGO_PKG_VERSION");
pub const BUILD_COMMIT: &str = env!("CHAT_GATEWAY_COMMIT");

fn name(n: &str) -> String {
    format!("chat_gateway_{n}")
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        macro_rules! reg {
            ($m:expr) => {{
                let m = $m.expect("valid metric");
                registry
                    .register(Box::new(m.clone()))
                    .expect("unique metric");
                m
            }};
        }
        let counter = |n: &str, help: &str| IntCounter::new(name(n), help);
        let counter_vec = |n: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name(n), help), labels)
        };
        let histogram = |n: &str, help: &str| {
            Histogram::with_opts(
                HistogramOpts::new(name(n), help).buckets(LATENCY_BUCKETS.to_vec()),
            )
        };
        let histogram_vec = |n: &str, help: &str, labels: &[&str]| {
            HistogramVec::new(
                HistogramOpts::new(name(n), help).buckets(LATENCY_BUCKETS.to_vec()),
                labels,
            )
        };
        let metrics = Metrics {
            connections: reg!(IntGauge::new(
                name("connections"),
                "Open WebSocket connections"
            )),
            connections_accepted: reg!(counter(
                "connections_accepted_total",
                "WebSocket connections accepted"
            )),
            connections_closed: reg!(counter_vec(
                "connections_closed_total",
                "WebSocket connections closed, by close reason",
                &["reason"]
            )),
            upgrades_refused: reg!(counter_vec(
                "upgrades_refused_total",
                "WebSocket upgrades refused, by reason",
                &["reason"]
            )),
            limited: reg!(counter_vec(
                "limited_total",
                "Things a per-client limit refused or slowed down, by limit (see deploy/OPERATIONS.md, Limits and abuse)",
                &["limit"]
            )),
            rooms: reg!(IntGauge::new(
                name("rooms"),
                "Rooms with at least one local member"
            )),
            presence_users: reg!(IntGauge::new(
                name("presence_users"),
                "Distinct users connected to this node"
            )),
            presence_store_connections: reg!(IntGauge::new(
                name("presence_store_connections"),
                "Connections on every node in the rooms this node serves, summed over those rooms, as last read from the presence store (cluster mode: Redis, every presence refresh)"
            )),
            presence_store_users: reg!(IntGauge::new(
                name("presence_store_users"),
                "Distinct users on every node in the rooms this node serves, summed over those rooms, as last read from the presence store (cluster mode: Redis, every presence refresh)"
            )),
            frames_received: reg!(counter_vec(
                "frames_received_total",
                "Client frames received, by type",
                &["type"]
            )),
            frames_sent: reg!(counter_vec(
                "frames_sent_total",
                "Frames enqueued to clients, by type",
                &["type"]
            )),
            messages_published: reg!(counter(
                "messages_published_total",
                "Chat messages stored and published by this node"
            )),
            messages_delivered: reg!(counter(
                "messages_delivered_total",
                "Chat messages enqueued to local members"
            )),
            messages_dropped: reg!(counter(
                "messages_dropped_total",
                "Chat messages not enqueued because a member's queue was full"
            )),
            broadcast_latency: reg!(histogram(
                "broadcast_latency_seconds",
                "From a message's creation to its enqueue on this node"
            )),
            slow_consumers: reg!(counter(
                "slow_consumer_disconnects_total",
                "Connections closed because their queue filled up"
            )),
            bus_connected: reg!(IntGauge::new(
                name("bus_connected"),
                "1 while the bus (Redis in cluster mode) is reachable"
            )),
            bus_publish_errors: reg!(counter(
                "bus_publish_errors_total",
                "Publications that failed"
            )),
            bus_reconnects: reg!(counter("bus_reconnects_total", "Reconnections to Redis")),
            bus_subscribed_channels: reg!(IntGauge::new(
                name("bus_subscribed_channels"),
                "Room channels this node is subscribed to"
            )),
            bus_gaps_filled: reg!(counter(
                "bus_gaps_filled_total",
                "Gaps in a room's seq filled from the history before delivery"
            )),
            bus_receiver_lagged: reg!(counter(
                "bus_receiver_lagged_total",
                "Times this node's bus receiver fell behind (events dropped before they were read); every connection then catches up from the history"
            )),
            bus_received: reg!(counter(
                "bus_events_received_total",
                "Room events received from the bus (this node's own publications included)"
            )),
            bus_lag: reg!(histogram(
                "bus_lag_seconds",
                "From a room event's publish on its node to its receipt here, by the clocks of both (Redis pub/sub lag)"
            )),
            ws_received_bytes: reg!(counter(
                "ws_received_bytes_total",
                "Bytes read from WebSocket connections (frames as sent, headers included)"
            )),
            ws_sent_bytes: reg!(counter(
                "ws_sent_bytes_total",
                "Bytes written to WebSocket connections"
            )),
            ws_messages_compressed: reg!(counter(
                "ws_messages_compressed_total",
                "Outgoing messages deflated (permessage-deflate): once per broadcast, however many members negotiated compression"
            )),
            ws_compressed_connections: reg!(counter(
                "ws_compressed_connections_total",
                "WebSocket connections that negotiated permessage-deflate"
            )),
            outbound_queue_depth: reg!(Histogram::with_opts(
                HistogramOpts::new(
                    name("outbound_queue_depth"),
                    "Items a connection's writer found queued each time it woke (a queue near limits.outbound_queue is a slow consumer in the making)"
                )
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0])
            )),
            db_pool_connections: reg!(IntGaugeVec::new(
                Opts::new(
                    name("db_pool_connections"),
                    "Connections of the database pool, in_use or idle (sampled every 2 s)"
                ),
                &["state"]
            )),
            db_pool_max: reg!(IntGauge::new(
                name("db_pool_max_connections"),
                "The database pool's size limit (database.max_connections)"
            )),
            memory_limit: reg!(IntGauge::new(
                name("memory_limit_bytes"),
                "The memory limit of the node's cgroup (container), 0 when it has none"
            )),
            connection_seconds: reg!(Histogram::with_opts(
                HistogramOpts::new(
                    name("connection_duration_seconds"),
                    "How long WebSocket connections lasted, from the upgrade to the close"
                )
                .buckets(vec![
                    1.0,
                    10.0,
                    60.0,
                    300.0,
                    900.0,
                    3600.0,
                    4.0 * 3600.0,
                    24.0 * 3600.0
                ])
            )),
            database_up: reg!(IntGauge::new(
                name("database_up"),
                "1 while the database answers a ping (checked every 2 s)"
            )),
            db_seconds: reg!(histogram_vec(
                "db_operation_seconds",
                "Database operation latency",
                &["op"]
            )),
            db_statement_seconds: reg!(histogram_vec(
                "db_statement_seconds",
                "Every SQL statement's latency, by kind (select, insert, update, delete, other) and the table it names first",
                &["kind", "table"]
            )),
            db_message_batch: reg!(Histogram::with_opts(
                HistogramOpts::new(
                    name("db_message_batch_size"),
                    "Messages stored per transaction (group commit)"
                )
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0])
            )),
            redis_seconds: reg!(histogram_vec(
                "redis_operation_seconds",
                "Redis operation latency",
                &["op"]
            )),
            http_requests: reg!(counter_vec(
                "http_requests_total",
                "HTTP requests, by route and status",
                &["route", "status"]
            )),
            http_seconds: reg!(histogram_vec(
                "http_request_duration_seconds",
                "HTTP request latency, by route",
                &["route"]
            )),
            draining: reg!(Gauge::new(name("draining"), "1 while the node is draining")),
            build_info: reg!(IntGaugeVec::new(
                Opts::new(
                    name("build_info"),
                    "1, labelled with the version and the commit this node was built from"
                ),
                &["version", "commit"]
            )),
            registry,
        };
        metrics
            .build_info
            .with_label_values(&[BUILD_VERSION, BUILD_COMMIT])
            .set(1);
        #[cfg(target_os = "linux")]
        let _ = metrics.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
        metrics
    }

    /// Create these series at 0, so that a rate or an alert on them has a
    /// series before the first event (labels owned by higher layers are
    /// passed in by `startup`).
    pub fn init_labels(&self, refusal_reasons: &[&str], limits: &[&str]) {
        for code in shared::close_codes::ALL {
            self.connections_closed
                .with_label_values(&[close_reason(code.code)]);
        }
        for reason in refusal_reasons {
            self.upgrades_refused.with_label_values(&[reason]);
        }
        for limit in limits {
            self.limited.with_label_values(&[limit]);
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding");
        String::from_utf8(buf).expect("metrics are UTF-8")
    }
}

/// The process's metrics (one node per process in production; tests that run
/// several nodes in one process see their sums).
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// Time an operation into a latency histogram.
pub async fn timed<T>(histogram: &HistogramVec, op: &str, fut: impl Future<Output = T>) -> T {
    let start = Instant::now();
    let out = fut.await;
    histogram
        .with_label_values(&[op])
        .observe(start.elapsed().as_secs_f64());
    out
}

/// The metric label of a close code.
pub fn close_reason(code: u16) -> &'static str {
    match code {
        1000 => "normal",
        1002 => "protocol_error",
        1007 => "invalid_payload",
        1008 => "policy_violation",
        1009 => "message_too_big",
        1011 => "internal_error",
        1012 => "service_restart",
        1013 => "try_again_later",
        4000 => "heartbeat_timeout",
        4001 => "account_deleted",
        4008 => "slow_consumer",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_close_code_has_a_label_and_names_are_prefixed() {
        for c in shared::close_codes::ALL {
            assert_ne!(close_reason(c.code), "other", "{c:?}");
        }
        metrics()
            .connections_closed
            .with_label_values(&["normal"])
            .inc();
        let text = metrics().render();
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let metric = line.split_whitespace().nth(2).unwrap();
            assert!(
                metric.starts_with("chat_gateway_") || metric.starts_with("process_"),
                "{metric}"
            );
        }
        assert!(text.contains("chat_gateway_connections_closed_total{reason=\"normal\"}"));
    }

    #[test]
    fn the_build_is_labelled_and_latencies_reach_ten_seconds() {
        let text = metrics().render();
        let line = format!(
            "chat_gateway_build_info{{commit=\"{BUILD_COMMIT}\",version=\"{BUILD_VERSION}\"}} 1"
        );
        assert!(text.contains(&line), "{line} missing");
        assert_ne!(BUILD_COMMIT, "", "an empty commit label");
        metrics()
            .db_seconds
            .with_label_values(&["test_op"])
            .observe(7.0);
        let text = metrics().render();
        assert!(
            text.contains("chat_gateway_db_operation_seconds_bucket{op=\"test_op\",le=\"10\"} 1"),
            "no 10 s bucket"
        );
        assert!(
            text.contains("chat_gateway_db_operation_seconds_bucket{op=\"test_op\",le=\"5\"} 0")
        );
    }
}
