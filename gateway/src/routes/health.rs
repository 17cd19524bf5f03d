//! `GET /healthz`: the process is alive. `GET /readyz`: it can serve
//! (database reachable, bus connected, not draining); 503 otherwise, so a
//! load balancer stops sending it new clients.

use crate::state::AppState;
use actix_web::{HttpResponse, get, web};
use serde_json::json;

#[get("/healthz")]
pub(super) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

#[get("/readyz")]
pub(super) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let database = state.store.ping().await.is_ok();
    let bus = state.node.bus_ready().await;
    let draining = state.draining();
    let body = json!({"database": database, "bus": bus, "draining": draining});
    if database && bus && !draining {
        HttpResponse::Ok().json(json!({"status": "ready", "checks": body}))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({"status": "not_ready", "checks": body}))
    }
}
