//! The REST error body `{"error":{"code","message"}}` and its status codes.
//! (The `/ws` handshake keeps protocol v1's flat `{"error":"..."}`; see `routes::ws`.)

use crate::domain::ValidationError;
use crate::store::StoreError;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, web};
use serde::Serialize;
use shared::error_code::ErrorCode;
use std::fmt;
use utoipa::ToSchema;

/// Every REST error: `{"error":{"code":"...","message":"..."}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable: one of [`RestErrorCode`]'s strings, e.g. `not_found`,
    /// `validation_failed`, `invalid_body`.
    #[schema(example = "not_found")]
    pub code: String,
    /// For people; names the field when a value or the body is at fault.
    pub message: String,
}

/// The `code` of a REST error body. Stable strings: clients switch on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestErrorCode {
    /// The body is not the JSON the endpoint takes (a field missing, of the
    /// wrong type, or unknown).
    InvalidBody,
    /// A query parameter is malformed.
    InvalidQuery,
    UnsupportedMediaType,
    PayloadTooLarge,
    /// A value breaks a rule (a username's characters, a role's name, ...).
    ValidationFailed,
    /// No valid token, or wrong credentials.
    Unauthorized,
    /// The caller's role does not allow it.
    Forbidden,
    /// The caller (or the target) is banned from the room.
    Banned,
    /// Only members may do this (post, leave, be given a role).
    NotAMember,
    /// The caller is already in the maximum number of rooms.
    TooManyRooms,
    /// No such room, user, message or endpoint (a private room looks like
    /// one that does not exist to non-members).
    NotFound,
    /// A unique name or membership is already taken.
    Conflict,
    /// A room's owner cannot leave it (delete it, or hand it over first).
    OwnerCannotLeave,
    /// A message is too old to be edited (`limits.edit_window_secs`).
    EditWindowPassed,
    /// A limit was hit; `Retry-After` says when to come back.
    RateLimited,
    /// The node is saturated right now; retry in a second.
    Busy,
    /// A backend (the database, Redis) is unavailable, or the change could
    /// not be told to the other nodes: retry.
    Unavailable,
    Internal,
    /// A message refused as the same send over WebSocket would be: the code
    /// of that `error` frame (`content_empty`, `client_msg_id_reused`, ...).
    Frame(ErrorCode),
}

impl RestErrorCode {
    pub fn as_str(self) -> &'static str {
        use RestErrorCode as C;
        match self {
            C::InvalidBody => "invalid_body",
            C::InvalidQuery => "invalid_query",
            C::UnsupportedMediaType => "unsupported_media_type",
            C::PayloadTooLarge => "payload_too_large",
            C::ValidationFailed => "validation_failed",
            C::Unauthorized => "unauthorized",
            C::Forbidden => "forbidden",
            C::Banned => "banned",
            C::NotAMember => "not_a_member",
            C::TooManyRooms => "too_many_rooms",
            C::NotFound => "not_found",
            C::Conflict => "conflict",
            C::OwnerCannotLeave => "owner_cannot_leave",
            C::EditWindowPassed => "edit_window_passed",
            C::RateLimited => "rate_limited",
            C::Busy => "busy",
            C::Unavailable => "unavailable",
            C::Internal => "internal",
            C::Frame(code) => code.as_str(),
        }
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: RestErrorCode,
    pub message: String,
    /// Seconds for a `Retry-After` header (a limit, a busy node).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: RestErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    /// 429 `rate_limited`, with `Retry-After` (whole seconds, at least 1).
    pub fn rate_limited(wait: std::time::Duration) -> Self {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        ApiError {
            retry_after: Some(secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                RestErrorCode::RateLimited,
                format!("too many requests, retry in {secs} s"),
            )
        }
    }
    /// 503 `busy`: the node is saturated right now; retry shortly.
    pub fn busy(message: impl Into<String>) -> Self {
        ApiError {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                RestErrorCode::Busy,
                message,
            )
        }
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            RestErrorCode::Unauthorized,
            message,
        )
    }
    /// 403 `forbidden`: the caller's role does not allow it.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, RestErrorCode::Forbidden, message)
    }
    /// 404 `not_found`: no such room, user, message or endpoint.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, RestErrorCode::NotFound, message)
    }
    /// 422 `validation_failed`: a value breaks a rule.
    pub fn validation_failed(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            RestErrorCode::ValidationFailed,
            message,
        )
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, RestErrorCode::Conflict, message)
    }
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            RestErrorCode::Unavailable,
            "a backend is unavailable, try again later",
        )
    }
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            RestErrorCode::Internal,
            "internal error",
        )
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code.as_str(),
            self.message
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after {
            response.insert_header((actix_web::http::header::RETRY_AFTER, secs.to_string()));
        }
        response.json(ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str().to_owned(),
                message: self.message.clone(),
            },
        })
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        Self::validation_failed(e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => Self::conflict("already exists"),
            StoreError::NotFound => Self::not_found("not found"),
            StoreError::Unavailable(why) => {
                tracing::warn!(error = %why, "database unavailable");
                Self::unavailable()
            }
            StoreError::Other(why) => {
                tracing::error!(error = %why, "database error");
                Self::internal()
            }
        }
    }
}

/// JSON bodies: unknown fields, missing fields and wrong types become a 400
/// whose message names the field (serde's own words, without positions).
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(64 * 1024)
        .error_handler(|err, _req| {
            use actix_web::error::JsonPayloadError;
            let api = match &err {
                JsonPayloadError::ContentType => ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    RestErrorCode::UnsupportedMediaType,
                    "expected application/json",
                ),
                JsonPayloadError::Overflow { .. }
                | JsonPayloadError::OverflowKnownLength { .. } => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    RestErrorCode::PayloadTooLarge,
                    "request body too large",
                ),
                JsonPayloadError::Deserialize(e) => {
                    let text = e.to_string();
                    let text = text
                        .rfind(" at line ")
                        .map_or(text.clone(), |i| text[..i].to_owned());
                    ApiError::new(StatusCode::BAD_REQUEST, RestErrorCode::InvalidBody, text)
                }
                _ => ApiError::new(
                    StatusCode::BAD_REQUEST,
                    RestErrorCode::InvalidBody,
                    "could not read the request body",
                ),
            };
            api.into()
        })
}

/// Malformed query strings and paths get the same JSON shape.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            RestErrorCode::InvalidQuery,
            err.to_string(),
        )
        .into()
    })
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default()
        .error_handler(|err, _req| ApiError::not_found(err.to_string()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Clients switch on these strings: pinned, one per code.
    #[test]
    fn codes_are_stable_snake_case_strings() {
        use RestErrorCode as C;
        let codes = [
            (C::InvalidBody, "invalid_body"),
            (C::InvalidQuery, "invalid_query"),
            (C::UnsupportedMediaType, "unsupported_media_type"),
            (C::PayloadTooLarge, "payload_too_large"),
            (C::ValidationFailed, "validation_failed"),
            (C::Unauthorized, "unauthorized"),
            (C::Forbidden, "forbidden"),
            (C::Banned, "banned"),
            (C::NotAMember, "not_a_member"),
            (C::TooManyRooms, "too_many_rooms"),
            (C::NotFound, "not_found"),
            (C::Conflict, "conflict"),
            (C::OwnerCannotLeave, "owner_cannot_leave"),
            (C::RateLimited, "rate_limited"),
            (C::Busy, "busy"),
            (C::Unavailable, "unavailable"),
            (C::Internal, "internal"),
            (C::Frame(ErrorCode::ContentTooLong), "content_too_long"),
        ];
        for (code, text) in codes {
            assert_eq!(code.as_str(), text);
        }
        let body =
            ApiError::new(StatusCode::FORBIDDEN, C::Banned, "banned until noon").error_response();
        assert_eq!(body.status(), StatusCode::FORBIDDEN);
    }
}
