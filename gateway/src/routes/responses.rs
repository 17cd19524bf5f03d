//! The error responses many routes share, once each for the OpenAPI
//! document (`#[utoipa::path(responses(...))]` takes these types beside its
//! own tuples). Each is the one REST error body with its status.
//!
//! The single ones are derived; the groups ([`BodyRefused`],
//! [`WriterRefused`], [`RoomRefused`], [`RoomWriterRefused`]) are the
//! refusals of one extractor, made of the single ones, so that a route
//! names what it takes rather than each status.

use crate::error::ErrorBody;
use std::collections::BTreeMap;
use utoipa::IntoResponses;
use utoipa::openapi::{RefOr, Response};

#[derive(IntoResponses)]
#[response(
    status = 400,
    description = "Malformed body (the message names the field)"
)]
pub struct MalformedBody(#[allow(dead_code)] ErrorBody);

#[derive(IntoResponses)]
#[response(status = 401, description = "No or bad token")]
pub struct Unauthorized(#[allow(dead_code)] ErrorBody);

#[derive(IntoResponses)]
#[response(
    status = 404,
    description = "No such room, or a private room the caller is not in"
)]
pub struct RoomNotFound(#[allow(dead_code)] ErrorBody);

#[derive(IntoResponses)]
#[response(status = 413, description = "Body over 64 KiB")]
pub struct BodyTooLarge(#[allow(dead_code)] ErrorBody);

#[derive(IntoResponses)]
#[response(status = 415, description = "Not `application/json`")]
pub struct NotJson(#[allow(dead_code)] ErrorBody);

#[derive(IntoResponses)]
#[response(
    status = 429,
    description = "`rate_limited`: the caller's REST writes are over `limits.rest_write_rate` (`Retry-After`)"
)]
pub struct WritesRateLimited(#[allow(dead_code)] ErrorBody);

#[derive(IntoResponses)]
#[response(status = 503, description = "The database is unavailable")]
pub struct DatabaseUnavailable(#[allow(dead_code)] ErrorBody);

/// A JSON body's refusals (`input::Json`): 400, 413, 415.
pub struct BodyRefused;

/// A [`WritingUser`](super::caller::WritingUser)'s refusals: 401, 429.
pub struct WriterRefused;

/// A [`VisibleRoom`](super::room_access::VisibleRoom)'s refusals: 401, 404.
pub struct RoomRefused;

/// A `VisibleRoom<WritingUser>`'s refusals: 401, 404, 429.
pub struct RoomWriterRefused;

type ResponseMap = BTreeMap<String, RefOr<Response>>;

fn all<const N: usize>(parts: [ResponseMap; N]) -> ResponseMap {
    parts.into_iter().flatten().collect()
}

impl IntoResponses for BodyRefused {
    fn responses() -> ResponseMap {
        all([
            MalformedBody::responses(),
            BodyTooLarge::responses(),
            NotJson::responses(),
        ])
    }
}

impl IntoResponses for WriterRefused {
    fn responses() -> ResponseMap {
        all([Unauthorized::responses(), WritesRateLimited::responses()])
    }
}

impl IntoResponses for RoomRefused {
    fn responses() -> ResponseMap {
        all([Unauthorized::responses(), RoomNotFound::responses()])
    }
}

impl IntoResponses for RoomWriterRefused {
    fn responses() -> ResponseMap {
        all([WriterRefused::responses(), RoomNotFound::responses()])
    }
}

/// What refuses a registration or a login from its address or for want of
/// a password-hashing slot (`routes::auth`).
#[derive(IntoResponses)]
#[allow(dead_code)] // documents the responses only
pub enum AuthThrottled {
    #[response(
        status = 429,
        description = "`rate_limited`: too many registrations and logins from this address (`Retry-After`)"
    )]
    RateLimited(ErrorBody),
    #[response(
        status = 503,
        description = "The database is unavailable, or every password-hashing slot is busy (`busy`, `Retry-After`)"
    )]
    Unavailable(ErrorBody),
}
