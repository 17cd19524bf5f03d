//! `POST /api/dms`: the caller's direct-message room with another user.

use super::responses::{BodyRefused, DatabaseUnavailable, WriterRefused};
use super::rooms::RoomView;
use crate::domain::{DmPolicy, Role};
use crate::error::{ApiError, ErrorBody, RestErrorCode};
use crate::routes::caller::WritingUser;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, post, web};
use serde::Deserialize;
use shared::ids::UserId;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct OpenDm {
    /// The other user.
    #[schema(example = 42)]
    user_id: i64,
}

/// Open the direct-message room with a user.
///
/// One private room per pair of users, created the first time either asks
/// (two concurrent calls from both sides get the same room): `kind` `dm`,
/// the two users its only members, no owner (so nobody can add anyone),
/// named after the two usernames. It is in both users' `GET /api/rooms`.
/// A deleted user cannot be messaged, nor can two users one of whom banned
/// the other from a room, while that ban is in force; a user whose `dm_policy` is
/// `shared_rooms` only by people who share a room with them (other than
/// room 1) or already have a direct-message room with them.
#[utoipa::path(
    operation_id = "open_dm",
    tag = "rooms",
    security(("bearer" = [])),
    request_body = OpenDm,
    responses(
        (status = 200, description = "The pair's room, which existed", body = RoomView),
        (status = 201, description = "The pair's room, created now", body = RoomView),
        BodyRefused,
        WriterRefused,
        (status = 403, description = "`forbidden`: the user takes direct messages only from people they share a room with; `banned`: one of the two banned the other from a room, and that ban is in force", body = ErrorBody),
        (status = 404, description = "No such user (or a deleted one)", body = ErrorBody),
        (status = 422, description = "`user_id` is the caller", body = ErrorBody),
        DatabaseUnavailable,
    )
)]
#[post("/api/dms")]
pub(super) async fn open(
    state: web::Data<AppState>,
    WritingUser(user): WritingUser,
    body: super::input::Json<OpenDm>,
) -> Result<HttpResponse, ApiError> {
    let other = UserId(body.user_id);
    if other == user.id {
        return Err(ApiError::validation_failed(
            "a direct-message room needs another user",
        ));
    }
    let target = state
        .store
        .find_user(other)
        .await?
        .filter(|u| !u.deleted)
        .ok_or_else(|| ApiError::not_found(format!("user {other} not found")))?;
    if state
        .store
        .ban_between(user.id, other, crate::clock::now())
        .await?
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            RestErrorCode::Banned,
            format!("a ban stands between you and user {other}"),
        ));
    }
    if target.dm_policy == DmPolicy::SharedRooms
        && state.store.dm_between(user.id, other).await?.is_none()
        && !state.store.share_a_room(user.id, other).await?
    {
        return Err(ApiError::forbidden(format!(
            "user {other} takes direct messages only from people they share a room with"
        )));
    }
    let (room, created) = state
        .store
        .open_dm(&user, &target, crate::clock::now())
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(HttpResponse::build(status).json(RoomView::new(&room, Some(Role::Member))))
}
