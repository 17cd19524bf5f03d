//! `GET /metrics`: the node's Prometheus metrics in the text format.

use actix_web::{HttpResponse, get};

/// The node's Prometheus metrics, in the text exposition format.
#[utoipa::path(
    operation_id = "metrics",
    tag = "meta",
    responses((status = 200, description = "Prometheus text format", body = String,
        content_type = "text/plain; version=0.0.4; charset=utf-8"))
)]
#[get("/metrics")]
pub(super) async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::metrics::metrics().render())
}
