//! The main listener's server: actix-web serves HTTP (the REST API, health,
//! metrics, the page), and a request carrying `Upgrade: websocket` is handed,
//! with its TCP stream, to [`crate::ws::upgrade`]. This is what
//! `actix_web::HttpServer` builds, plus that upgrade hook, which it does not offer,
//! and a deadline on every request head ([`head_deadline`]), which it does not keep.

use crate::limits::head_deadline;
use crate::routes;
use crate::state::AppState;
use actix_service::{IntoServiceFactory, ServiceFactoryExt};
use actix_web::dev::{AppConfig, Server};
use actix_web::{App, web};
use std::net::TcpListener;
use std::time::Duration;

/// HttpServer's defaults, kept: idle keep-alive, time to send a request head,
/// time for the client to close after the response.
const KEEP_ALIVE: Duration = Duration::from_secs(5);
const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

pub fn main_server(
    state: web::Data<AppState>,
    listener: TcpListener,
    workers: usize,
    shutdown_timeout_secs: u64,
) -> std::io::Result<Server> {
    let addr = listener.local_addr()?;
    let internal = state.settings.server.admin_port.is_none();
    let builder = actix_server::Server::build();
    // Rung when the server stops: idle keep-alive connections close at once
    // instead of holding the stop up until their timeout.
    let stopping = builder.graceful_shutdown_signal();
    let server = builder
        .workers(workers)
        .disable_signals()
        .shutdown_timeout(shutdown_timeout_secs)
        .listen("gateway", listener, move || {
            let app_state = state.clone();
            let app = App::new()
                .app_data(app_state.clone())
                .wrap(actix_web::middleware::from_fn(routes::http_metrics))
                .configure(|cfg| routes::configure(cfg, internal))
                .into_factory();
            let app = actix_service::map_config(
                actix_service::ServiceFactoryExt::map_err(app, |e: actix_web::Error| {
                    e.error_response()
                }),
                // Only URL generation reads it (the gateway does none).
                |_| AppConfig::default(),
            );
            let stopping = stopping.clone();
            let http = actix_http::HttpService::build()
                .graceful_shutdown_signal(move || {
                    let stopping = stopping.clone();
                    async move { stopping.notified().await }
                })
                .keep_alive(KEEP_ALIVE)
                .client_request_timeout(CLIENT_REQUEST_TIMEOUT)
                .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
                .local_addr(addr)
                .upgrade(crate::ws::upgrade::service(app_state))
                .finish(app);
            // What `.tcp()` does, with every request head timed.
            actix_service::fn_service(|io: tokio::net::TcpStream| {
                let peer = io.peer_addr().ok();
                std::future::ready(Ok((
                    head_deadline::HeadDeadline::new(io),
                    actix_http::Protocol::Http1,
                    peer,
                )))
            })
            .and_then(http)
        })?
        .run();
    Ok(server)
}
