//! The error responses many routes share, once each for the OpenAPI
//! document (`#[utoipa::path(responses(...))]` takes these types beside its
//! own tuples). Each is the one REST error body with its status.

use crate::error::ErrorBody;
use utoipa::IntoResponses;

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
