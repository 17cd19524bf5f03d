//! `GET /healthz`: the process is alive. `GET /readyz`: it can serve
//! (database reachable, bus connected, not draining); 503 otherwise, so a
//! load balancer stops sending it new clients.

use crate::state::AppState;
use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

/// `{"status":"ok"}`
#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    status: &'static str,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadyStatus {
    Ready,
    NotReady,
}

/// What `/readyz` checked.
#[derive(Serialize, ToSchema)]
pub struct ReadyChecks {
    /// The database answered a ping.
    database: bool,
    /// The bus (Redis in cluster mode) is connected.
    bus: bool,
    /// The node is stopping: from the stop signal on, the lame-duck phase
    /// (`server.lame_duck_secs`, upgrades still taken) included.
    draining: bool,
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    status: ReadyStatus,
    checks: ReadyChecks,
}

/// The process is alive.
#[utoipa::path(
    operation_id = "healthz",
    tag = "health",
    responses((status = 200, description = "Always, while the process runs", body = Health))
)]
#[get("/healthz")]
pub(super) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// The node can serve: database reachable, bus connected, not stopping.
#[utoipa::path(
    operation_id = "readyz",
    tag = "health",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready; `checks` says why", body = Readiness),
    )
)]
#[get("/readyz")]
pub(super) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    // Bounded: a load balancer's probe must not hang on a database that is down.
    let database = matches!(
        tokio::time::timeout(std::time::Duration::from_secs(1), state.store.ping()).await,
        Ok(Ok(()))
    );
    let bus = state.node.bus_ready().await;
    let draining = state.stopping();
    let checks = ReadyChecks {
        database,
        bus,
        draining,
    };
    if database && bus && !draining {
        HttpResponse::Ok().json(Readiness {
            status: ReadyStatus::Ready,
            checks,
        })
    } else {
        HttpResponse::ServiceUnavailable().json(Readiness {
            status: ReadyStatus::NotReady,
            checks,
        })
    }
}
