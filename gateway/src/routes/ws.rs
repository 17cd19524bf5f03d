//! `GET /ws?room_id=N&token=JWT`: authenticate, check Origin and limits, check
//! the room, upgrade, and hand the socket to a session task. Errors before the
//! upgrade keep the seed's flat shape `{"error":"..."}`.

use crate::admission::{AdmitError, admit};
use crate::auth::extractor::bearer_token;
use crate::state::AppState;
use crate::ws::conn::ConnHandle;
use crate::ws::session::{self, SessionParts};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, web};
use serde::Serialize;
use shared::ids::{ConnKey, RoomId};
use shared::server_frame::UserPublic;
use utoipa::ToSchema;

/// A refused `/ws` handshake, in the seed's flat shape: `{"error":"..."}`.
#[derive(Serialize, ToSchema)]
pub struct WsRefusal<'a> {
    #[schema(example = "User not authenticated")]
    error: &'a str,
}

fn refuse(status: actix_web::http::StatusCode, message: &str) -> HttpResponse {
    let reason = match (status.as_u16(), message) {
        (401, _) => "unauthorized",
        (400, _) => "bad_request",
        (404, _) => "not_found",
        (403, "Origin not allowed") => "origin",
        (403, _) => "forbidden",
        (503, "Too many connections") => "capacity",
        (429, "Too many connection attempts") => "rate_limited",
        (429, _) => "user_capacity",
        (503, "Server is shutting down") => "draining",
        _ => "unavailable",
    };
    crate::metrics::metrics()
        .upgrades_refused
        .with_label_values(&[reason])
        .inc();
    HttpResponse::build(status).json(WsRefusal { error: message })
}

/// The query parameters as pairs: the seed answers a bad `room_id` with its
/// own message (not a generic query error), and unknown parameters are ignored.
fn query_pairs(query: &str) -> Vec<(String, String)> {
    web::Query::<Vec<(String, String)>>::from_query(query)
        .map(|q| q.into_inner())
        .unwrap_or_default()
}

fn query_param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Browsers always send Origin on a WebSocket handshake; other clients may not.
fn origin_allowed(req: &HttpRequest, allowed: &[String]) -> bool {
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
    else {
        return true;
    };
    if allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    if !allowed.is_empty() {
        return false;
    }
    // Same origin: the Origin's host[:port] equals the Host header.
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(origin);
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|host| host.eq_ignore_ascii_case(origin_host))
}

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
pub(super) async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    use actix_web::http::StatusCode as S;
    if state.draining() {
        return Ok(refuse(S::SERVICE_UNAVAILABLE, "Server is shutting down"));
    }
    if !origin_allowed(&req, &state.settings.server.allowed_origins) {
        return Ok(refuse(S::FORBIDDEN, "Origin not allowed"));
    }
    if let Some(limiter) = &state.connect_rate
        && let Some(peer) = req.peer_addr()
        && limiter.check_key(&peer.ip()).is_err()
    {
        return Ok(refuse(S::TOO_MANY_REQUESTS, "Too many connection attempts"));
    }
    let query = query_pairs(req.query_string());
    let token = bearer_token(&req).or_else(|| query_param(&query, "token"));
    let Some(claims) = token.and_then(|t| state.tokens.verify(t).ok()) else {
        return Ok(refuse(S::UNAUTHORIZED, "User not authenticated"));
    };
    let room = match query_param(&query, "room_id") {
        None => RoomId(1),
        Some("") => RoomId(1),
        Some(raw) => match raw.parse::<u32>() {
            Ok(id) => RoomId(id.into()),
            Err(_) => return Ok(refuse(S::BAD_REQUEST, "Invalid room ID")),
        },
    };
    let since = match query_param(&query, "since_seq") {
        None | Some("") => None,
        Some(raw) => match raw.parse::<i64>() {
            Ok(seq) if seq >= 0 => Some(seq),
            _ => return Ok(refuse(S::BAD_REQUEST, "Invalid since_seq")),
        },
    };
    let Some(slot) = state.limiter.try_acquire() else {
        return Ok(refuse(S::SERVICE_UNAVAILABLE, "Too many connections"));
    };
    let user = match crate::auth::resolve_user(&state.store, &claims).await {
        Ok(user) => user,
        Err(crate::auth::ResolveError::Deleted) => {
            return Ok(refuse(S::UNAUTHORIZED, "Account deleted"));
        }
        Err(crate::auth::ResolveError::Store(crate::store::StoreError::Unavailable(_))) => {
            return Ok(refuse(S::SERVICE_UNAVAILABLE, "Database unavailable"));
        }
        Err(e) => {
            tracing::error!(error = %e, "could not load the user");
            return Ok(refuse(S::INTERNAL_SERVER_ERROR, "Internal error"));
        }
    };
    let last_seq = match admit(&state.store, user.id, room).await {
        Ok(last_seq) => last_seq,
        Err(AdmitError::NotFound) => return Ok(refuse(S::NOT_FOUND, "Room not found")),
        Err(AdmitError::Forbidden) => return Ok(refuse(S::FORBIDDEN, "Not a member of this room")),
        Err(AdmitError::Unavailable) => {
            return Ok(refuse(S::SERVICE_UNAVAILABLE, "Database unavailable"));
        }
        Err(AdmitError::Internal) => return Ok(refuse(S::INTERNAL_SERVER_ERROR, "Internal error")),
    };

    // Last: a claim must be given back on every later exit.
    let key = ConnKey {
        node: state.node.id().clone(),
        conn: state.node.next_conn_id(),
    };
    let max = state.settings.limits.max_connections_per_user;
    match state.node.user_conns.claim(user.id, &key, max).await {
        Ok(true) => {}
        Ok(false) => {
            return Ok(refuse(
                S::TOO_MANY_REQUESTS,
                "Too many connections for this user",
            ));
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot check the per-user connection cap");
            return Ok(refuse(S::SERVICE_UNAVAILABLE, "Service unavailable"));
        }
    }
    let (response, socket, stream) = match actix_ws::handle(&req, body) {
        Ok(parts) => parts,
        Err(e) => {
            state.node.user_conns.release(user.id, &key).await;
            return Err(e);
        }
    };
    let public = UserPublic {
        id: user.id,
        username: user.username,
        nickname: user.nickname,
    };
    let (conn, queue) = ConnHandle::new(key, public, state.settings.limits.outbound_queue);
    let parts = SessionParts {
        state: state.clone(),
        conn,
        queue,
        socket,
        stream,
        first_room: room,
        after_seq: since.unwrap_or(last_seq),
        slot,
    };
    actix_web::rt::spawn(session::run(parts));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params() {
        let q = query_pairs("room_id=5&token=a%2Eb&x");
        assert_eq!(query_param(&q, "token"), Some("a.b"));
        assert_eq!(query_param(&q, "room_id"), Some("5"));
        assert_eq!(query_param(&q, "nope"), None);
        assert!(query_pairs("").is_empty());
    }
}
