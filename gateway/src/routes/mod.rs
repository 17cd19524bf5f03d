//! The one place routes are listed.

mod auth;
mod bans;
mod caller;
mod direct_messages;
mod evictions;
mod health;
mod input;
mod members;
mod message_edits;
mod messages;
mod metrics;
mod openapi;
mod page;
mod read_markers;
mod responses;
mod room_access;
mod rooms;
mod users;
mod ws;

use actix_web::web;

/// The main port. `internal`: also `/healthz`, `/readyz` and `/metrics`,
/// which move to the admin port when `server.admin_port` is set, so that
/// no path spelling (`/%6detrics`) can reach them through a balancer.
pub fn configure(cfg: &mut web::ServiceConfig, internal: bool) {
    if internal {
        configure_internal(cfg);
    }
    cfg.default_service(actix_web::web::to(not_found))
        .app_data(crate::error::json_config())
        .app_data(crate::error::query_config())
        .app_data(crate::error::path_config())
        .service(auth::register)
        .service(auth::login)
        .service(users::me)
        .service(users::edit_me)
        .service(users::delete_me)
        .service(rooms::create)
        .service(rooms::list)
        .service(rooms::read)
        .service(rooms::edit)
        .service(rooms::remove)
        .service(rooms::online)
        .service(read_markers::mark_read)
        .service(direct_messages::open)
        .service(members::join)
        .service(members::leave)
        .service(members::list)
        .service(members::add)
        .service(members::set_role)
        .service(members::kick)
        .service(bans::create)
        .service(bans::lift)
        .service(bans::list)
        .service(messages::history)
        .service(messages::post)
        .service(message_edits::edit)
        .service(message_edits::remove)
        .service(ws::upgrade)
        .service(openapi::document)
        .service(page::index)
        .service(page::asset);
}

/// The admin port (`server.admin_port`): metrics and health only.
pub fn configure_admin(cfg: &mut web::ServiceConfig) {
    cfg.default_service(actix_web::web::to(not_found));
    configure_internal(cfg);
}

/// A node's internals: health, readiness, metrics.
fn configure_internal(cfg: &mut web::ServiceConfig) {
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(metrics::metrics);
}

/// Count every HTTP request by route pattern and status, and time it.
pub async fn http_metrics(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let start = std::time::Instant::now();
    let res = next.call(req).await;
    let status = match &res {
        Ok(r) => r.status().as_u16(),
        Err(e) => e.as_response_error().status_code().as_u16(),
    };
    let m = crate::metrics::metrics();
    m.http_requests
        .with_label_values(&[route.as_str(), &status.to_string()])
        .inc();
    m.http_seconds
        .with_label_values(&[route.as_str()])
        .observe(start.elapsed().as_secs_f64());
    res
}

/// Unknown paths (and known paths with another method) get the JSON error shape.
async fn not_found() -> Result<actix_web::HttpResponse, crate::error::ApiError> {
    Err(crate::error::ApiError::new(
        actix_web::http::StatusCode::NOT_FOUND,
        crate::error::RestErrorCode::NotFound,
        "no such endpoint",
    ))
}
