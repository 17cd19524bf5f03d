//! `GET /ws`, as the API document shows it. A real handshake (a request with
//! `Upgrade: websocket`) never reaches actix-web: actix-http hands it to
//! [`crate::ws::upgrade`]. What arrives here is a plain GET, which runs the
//! same checks and is refused (at the latest as "Not a WebSocket handshake").

use crate::state::AppState;
use crate::ws::handshake::{self, WsRefusal};
use actix_web::{HttpRequest, HttpResponse, get, web};

/// The WebSocket endpoint (protocol v1).
///
/// Authenticates, checks the Origin, the connection limit and the room, then
/// upgrades. Frames are described in the protocol crate's README.
#[utoipa::path(
    operation_id = "websocket",
    tag = "websocket",
    params(
        ("room_id" = Option<u64>, Query, description = "The first room to enter (default 1)", maximum = 4294967295.0),
        ("token" = Option<String>, Query, description = "The JWT, for clients that cannot set `Authorization` (browsers)"),
        ("since_seq" = Option<i64>, Query, minimum = 0, description = "Resume the first room after this `seq`"),
    ),
    security((), ("bearer" = [])),
    responses(
        (status = 101, description = "Switching protocols: the WebSocket is open"),
        (status = 400, description = "Invalid `room_id` or `since_seq`, or not a WebSocket handshake", body = WsRefusal),
        (status = 401, description = "No or bad token", body = WsRefusal),
        (status = 403, description = "Origin not allowed, or a private room the caller is not in", body = WsRefusal),
        (status = 404, description = "No such room", body = WsRefusal),
        (status = 429, description = "Too many connection attempts, or too many connections for this user", body = WsRefusal),
        (status = 503, description = "Stopping, too many connections, or the database is unavailable", body = WsRefusal),
    )
)]
#[get("/ws")]
pub(super) async fn upgrade(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let refusal = match handshake::check(&state, req.head()).await {
        Err(refusal) => refusal,
        // Cannot happen: the handshake check needs `Upgrade: websocket`,
        // which routes the request to the upgrade service instead.
        Ok(admitted) => {
            state
                .node
                .user_conns
                .release(admitted.user.id, &admitted.key)
                .await;
            handshake::Refusal::new(handshake::Refused::BadRequest, "Not a WebSocket handshake")
        }
    };
    HttpResponse::build(refusal.status).json(WsRefusal {
        error: refusal.message,
    })
}
