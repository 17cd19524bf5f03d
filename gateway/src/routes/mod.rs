//! The one place routes are listed.

mod auth;
mod health;
mod members;
mod messages;
mod rooms;
mod users;
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
        .service(users::me)
        .service(users::edit_me)
        .service(rooms::create)
        .service(rooms::list)
        .service(rooms::read)
        .service(rooms::edit)
        .service(rooms::remove)
        .service(rooms::online)
        .service(members::join)
        .service(members::leave)
        .service(members::list)
        .service(members::add)
        .service(members::set_role)
        .service(members::kick)
        .service(messages::history)
        .service(messages::post)
        .service(ws::upgrade);
}
