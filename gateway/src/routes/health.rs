//! `GET /healthz`: the process is alive. `GET /readyz`: this node takes
//! traffic; 503 only while it stops (lame duck and drain), so a load
//! balancer moves new clients elsewhere.
//!
//! A backend outage does not make a node unready: Redis and the database
//! are shared by every node, so an outage of either would turn every node
//! unready at once and empty the whole Service, taking down what still
//! works (connections stay open, history reads without Redis, delivery on
//! one node without the database...). Such a node answers 200 with
//! `"status":"degraded"` and says which check failed; the outage shows in
//! `chat_gateway_bus_connected` and `chat_gateway_database_up`, and their
//! alerts (deploy/OPERATIONS.md, "Readiness").

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
    /// Every check passed.
    Ready,
    /// Serving, without a backend: what needs it answers `unavailable`.
    Degraded,
    /// Stopping: send new clients elsewhere.
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

/// The node takes traffic (200) unless it is stopping (503); `status` is
/// `degraded` while the database or the bus is away.
#[utoipa::path(
    operation_id = "readyz",
    tag = "health",
    responses(
        (status = 200, description = "Taking traffic: `ready`, or `degraded` with a backend away (`checks` says which)", body = Readiness),
        (status = 503, description = "Stopping (lame duck or drain)", body = Readiness),
    )
)]
#[get("/readyz")]
pub(super) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    // As last probed in the background: answered at once, even while a
    // backend hangs (see `state::BackendHealth`).
    let database = state.backends.database();
    let bus = state.backends.bus();
    let draining = state.stopping();
    let checks = ReadyChecks {
        database,
        bus,
        draining,
    };
    let status = match (draining, database && bus) {
        (true, _) => ReadyStatus::NotReady,
        (false, true) => ReadyStatus::Ready,
        (false, false) => ReadyStatus::Degraded,
    };
    let mut response = match status {
        ReadyStatus::NotReady => HttpResponse::ServiceUnavailable(),
        _ => HttpResponse::Ok(),
    };
    response.json(Readiness { status, checks })
}
