//! May this `GET /ws?room_id=N&token=JWT` become a WebSocket? Draining,
//! Origin, per-IP rate, token, room id, handshake headers, the node's and the
//! user's connection caps, the room: checked in that order, each refusal in
//! protocol v1's flat shape `{"error":"..."}` with its status.
//!
//! One function for both ways a request arrives: a real upgrade (the
//! `ws::upgrade` service) and a plain GET (the documented route, which can
//! only be refused).

use crate::admission::AdmitError;
use crate::limits::connections::Slot;
use crate::state::AppState;
use actix_http::RequestHead;
use actix_http::StatusCode as S;
use actix_http::header::{self, HeaderMap};
use serde::Serialize;
use shared::ids::{ConnKey, RoomId};
use shared::server_frame::UserPublic;
use utoipa::ToSchema;

/// A refused `/ws` handshake, in protocol v1's flat shape: `{"error":"..."}`.
#[derive(Serialize, ToSchema)]
pub struct WsRefusal<'a> {
    #[schema(example = "User not authenticated")]
    pub error: &'a str,
}

/// Why a handshake was refused: the status it answers with and its
/// `reason` label of `chat_gateway_upgrades_refused_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// No token, or a bad one; or the account was deleted.
    Unauthorized,
    /// A bad `room_id` or `since_seq`, or not a WebSocket handshake.
    BadRequest,
    /// No such room (or a private room the user is not in), or not `/ws`.
    NotFound,
    /// `GET` is the only method.
    Method,
    /// `Origin` is not on the allow list.
    Origin,
    Banned,
    /// The node holds `limits.max_connections` already.
    Capacity,
    /// Too many upgrade attempts from this address.
    RateLimited,
    /// The user holds `limits.max_connections_per_user` already.
    UserCapacity,
    /// The node is stopping.
    Draining,
    /// A backend (the database, Redis) did not answer.
    Unavailable,
    Internal,
}

impl Refused {
    pub const ALL: [Refused; 12] = [
        Refused::Unauthorized,
        Refused::BadRequest,
        Refused::NotFound,
        Refused::Method,
        Refused::Origin,
        Refused::Banned,
        Refused::Capacity,
        Refused::RateLimited,
        Refused::UserCapacity,
        Refused::Draining,
        Refused::Unavailable,
        Refused::Internal,
    ];

    pub fn status(self) -> S {
        match self {
            Refused::Unauthorized => S::UNAUTHORIZED,
            Refused::BadRequest => S::BAD_REQUEST,
            Refused::NotFound => S::NOT_FOUND,
            Refused::Method => S::METHOD_NOT_ALLOWED,
            Refused::Origin | Refused::Banned => S::FORBIDDEN,
            Refused::RateLimited | Refused::UserCapacity => S::TOO_MANY_REQUESTS,
            Refused::Capacity | Refused::Draining | Refused::Unavailable => S::SERVICE_UNAVAILABLE,
            Refused::Internal => S::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Refused::Unauthorized => "unauthorized",
            Refused::BadRequest => "bad_request",
            Refused::NotFound => "not_found",
            Refused::Method => "method",
            Refused::Origin => "origin",
            Refused::Banned => "banned",
            Refused::Capacity => "capacity",
            Refused::RateLimited => "rate_limited",
            Refused::UserCapacity => "user_capacity",
            Refused::Draining => "draining",
            Refused::Unavailable => "unavailable",
            Refused::Internal => "internal",
        }
    }
}

/// A refused handshake: why, and the `error` text the client gets.
#[derive(Debug)]
pub struct Refusal {
    pub why: Refused,
    pub status: S,
    pub message: &'static str,
}

impl Refusal {
    /// Counted in `chat_gateway_upgrades_refused_total` under `why`'s label.
    pub fn new(why: Refused, message: &'static str) -> Self {
        crate::metrics::metrics()
            .upgrades_refused
            .with_label_values(&[why.label()])
            .inc();
        Refusal {
            why,
            status: why.status(),
            message,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        serde_json::to_string(&WsRefusal {
            error: self.message,
        })
        .expect("a struct of one string serialises")
    }
}

/// An accepted handshake: everything the session needs. The per-user claim
/// is taken; whoever drops this without running a session must release it.
pub struct Admitted {
    pub user: UserPublic,
    pub key: ConnKey,
    pub slot: Slot,
    pub first_room: RoomId,
    /// Deliver the first room after this seq: `since_seq`, else the room's newest.
    pub after_seq: i64,
    /// The client's address (behind a trusted proxy, from `X-Forwarded-For`).
    pub client: Option<std::net::IpAddr>,
}

/// Check a handshake. `head.peer_addr` is the TCP peer (the client, or a proxy).
pub async fn check(state: &AppState, head: &RequestHead) -> Result<Admitted, Refusal> {
    if state.draining() {
        return Err(Refusal::new(Refused::Draining, "Server is shutting down"));
    }
    if !origin_allowed(&head.headers, &state.settings.server.allowed_origins) {
        return Err(Refusal::new(Refused::Origin, "Origin not allowed"));
    }
    let client = head.peer_addr.map(|peer| {
        state
            .limits
            .trusted_proxies
            .client(peer.ip(), &head.headers)
    });
    if let Some(client) = client
        && crate::limits::keyed::check(&state.limits.connect, &client).is_err()
    {
        return Err(Refusal::new(
            Refused::RateLimited,
            "Too many connection attempts",
        ));
    }
    let query = query_pairs(head.uri.query().unwrap_or(""));
    let token = crate::auth::bearer_in(&head.headers).or_else(|| query_param(&query, "token"));
    let Some(verified) = token.and_then(|t| state.tokens.verify(t).ok()) else {
        return Err(Refusal::new(
            Refused::Unauthorized,
            "User not authenticated",
        ));
    };
    let first_room = match query_param(&query, "room_id") {
        None | Some("") => RoomId(1),
        Some(raw) => match raw.parse::<u32>() {
            Ok(id) => RoomId(id.into()),
            Err(_) => return Err(Refusal::new(Refused::BadRequest, "Invalid room ID")),
        },
    };
    let since = match query_param(&query, "since_seq") {
        None | Some("") => None,
        Some(raw) => match raw.parse::<i64>() {
            Ok(seq) if seq >= 0 => Some(seq),
            _ => return Err(Refusal::new(Refused::BadRequest, "Invalid since_seq")),
        },
    };
    if actix_http::ws::verify_handshake(head).is_err() {
        return Err(Refusal::new(
            Refused::BadRequest,
            "Not a WebSocket handshake",
        ));
    }
    let Some(slot) = state.limiter.try_acquire() else {
        return Err(Refusal::new(Refused::Capacity, "Too many connections"));
    };
    let user = match state.node.resolve_user(&verified).await {
        Ok(user) => user,
        Err(crate::auth::ResolveError::Deleted) => {
            return Err(Refusal::new(Refused::Unauthorized, "Account deleted"));
        }
        Err(crate::auth::ResolveError::Store(crate::store::StoreError::Unavailable(_))) => {
            return Err(Refusal::new(Refused::Unavailable, "Database unavailable"));
        }
        Err(e) => {
            tracing::error!(error = %e, "could not load the user");
            return Err(Refusal::new(Refused::Internal, "Internal error"));
        }
    };
    let last_seq = state
        .node
        .admit(user.id, first_room)
        .await
        .map_err(|e| match e {
            AdmitError::NotFound => Refusal::new(Refused::NotFound, "Room not found"),
            AdmitError::Banned { .. } => Refusal::new(Refused::Banned, "Banned from this room"),
            AdmitError::Unavailable => Refusal::new(Refused::Unavailable, "Database unavailable"),
            AdmitError::Internal => Refusal::new(Refused::Internal, "Internal error"),
        })?;

    // Last: a claim must be given back on every later exit.
    let key = ConnKey {
        node: state.node.id().clone(),
        conn: state.node.next_conn_id(),
    };
    let max = state.settings.limits.max_connections_per_user;
    match state.node.user_conns.claim(user.id, &key, max).await {
        Ok(true) => {}
        Ok(false) => {
            return Err(Refusal::new(
                Refused::UserCapacity,
                "Too many connections for this user",
            ));
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot check the per-user connection cap");
            return Err(Refusal::new(Refused::Unavailable, "Service unavailable"));
        }
    }
    Ok(Admitted {
        user,
        key,
        slot,
        first_room,
        after_seq: since.unwrap_or(last_seq),
        client,
    })
}

/// The query parameters as pairs: protocol v1 answers a bad `room_id` with its
/// own message (not a generic query error), and unknown parameters are ignored.
fn query_pairs(query: &str) -> Vec<(String, String)> {
    actix_web::web::Query::<Vec<(String, String)>>::from_query(query)
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
fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
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
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|host| host.eq_ignore_ascii_case(origin_host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_reasons_have_one_label_each_and_their_status() {
        let labels: std::collections::HashSet<_> = Refused::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(labels.len(), Refused::ALL.len(), "one label per reason");
        for (why, status) in [
            (Refused::Method, 405),
            (Refused::Origin, 403),
            (Refused::Capacity, 503),
            (Refused::UserCapacity, 429),
            (Refused::Internal, 500),
        ] {
            let refusal = Refusal::new(why, "x");
            assert_eq!((refusal.why, refusal.status.as_u16()), (why, status));
        }
    }

    #[test]
    fn query_params() {
        let q = query_pairs("room_id=5&token=a%2Eb&x");
        assert_eq!(query_param(&q, "token"), Some("a.b"));
        assert_eq!(query_param(&q, "room_id"), Some("5"));
        assert_eq!(query_param(&q, "nope"), None);
        assert!(query_pairs("").is_empty());
    }

    #[test]
    fn origins() {
        let mut h = HeaderMap::new();
        assert!(origin_allowed(&h, &[]), "no Origin: not a browser");
        h.insert(header::HOST, "chat.example:8080".parse().unwrap());
        h.insert(header::ORIGIN, "https://chat.example:8080".parse().unwrap());
        assert!(origin_allowed(&h, &[]), "same origin");
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(!origin_allowed(&h, &[]));
        assert!(origin_allowed(&h, &["https://evil.example".into()]));
        assert!(!origin_allowed(&h, &["https://other.example".into()]));
        assert!(origin_allowed(&h, &["*".into()]));
    }
}
