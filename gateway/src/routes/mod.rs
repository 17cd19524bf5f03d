//! The one place routes are listed.

mod auth;
mod health;
mod ws;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(crate::error::json_config())
        .app_data(crate::error::query_config())
        .app_data(crate::error::path_config())
        .service(health::healthz)
        .service(health::readyz)
        .service(auth::register)
        .service(auth::login)
        .service(ws::upgrade);
}
