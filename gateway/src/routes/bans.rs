//! Room bans: an owner or admin keeps a user out of a room, for a time or
//! for good. Banning removes the membership and takes the user's
//! connections out of the room on every node (`left_room` `banned`), as a
//! kick does; until the ban ends the user's joins (REST and `join_room`)
//! and connects to the room are refused (403 / `banned`). An admin cannot
//! ban the owner or another admin; nobody bans themselves.

use super::evictions::evict;
use super::responses::{BodyRefused, DatabaseUnavailable, RoomRefused, WriterRefused};
use super::room_access::{RoomInPath, RoomParam, VisibleRoom};
use crate::domain::Role;
use crate::error::{ApiError, ErrorBody};
use crate::routes::caller::WritingUser;
use crate::state::AppState;
use crate::store::BanRecord;
use actix_web::{HttpResponse, delete, get, post, web};
use serde::{Deserialize, Serialize};
use shared::ids::{RoomId, UserId};
use shared::server_frame::{LeaveReason, UserPublic};
use utoipa::ToSchema;

/// The longest ban with a duration (ten years); without one, a ban is for good.
const MAX_DURATION_SECS: u64 = 10 * 365 * 24 * 3600;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct BanBody {
    /// Who to ban.
    user_id: UserId,
    /// How long, 1 s to ten years; left out: for good.
    #[schema(minimum = 1, maximum = 315360000)]
    duration_secs: Option<u64>,
}

/// A ban in force.
#[derive(Serialize, ToSchema)]
pub struct Ban {
    room_id: RoomId,
    user: UserPublic,
    /// Who banned (absent once that account is gone).
    banned_by: Option<UserId>,
    /// RFC 3339, UTC.
    created_at: String,
    /// When it ends (RFC 3339, UTC); absent: for good.
    expires_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct BanList {
    room_id: RoomId,
    bans: Vec<Ban>,
}

async fn view(state: &AppState, ban: BanRecord) -> Result<Ban, ApiError> {
    let user = state
        .store
        .find_user(ban.user_id)
        .await?
        .map(|u| UserPublic {
            id: u.id,
            username: u.username,
            nickname: u.nickname,
        })
        .unwrap_or(UserPublic {
            id: ban.user_id,
            username: String::new(),
            nickname: String::new(),
        });
    Ok(Ban {
        room_id: ban.room_id,
        user,
        banned_by: ban.banned_by,
        created_at: crate::clock::rfc3339(ban.created_at),
        expires_at: ban.expires_at.map(crate::clock::rfc3339),
    })
}

/// The caller's role if it may manage bans in the room.
fn moderator(role: Option<Role>) -> Result<Role, ApiError> {
    role.filter(|r| r.moderates())
        .ok_or_else(|| ApiError::forbidden("only the room's owner or an admin may manage bans"))
}

/// Ban a user from the room (owner or admin).
///
/// The user's direct-message room with the caller closes for them too:
/// they leave it, and neither may open it again while the ban stands.
#[utoipa::path(
    operation_id = "ban_user",
    tag = "members",
    security(("bearer" = [])),
    params(RoomParam),
    request_body = BanBody,
    responses(
        (status = 201, description = "Banned: no longer a member, connections out of the room on every node", body = Ban),
        BodyRefused,
        WriterRefused,
        (status = 403, description = "Not the owner or an admin; or the target is the owner, an admin (for an admin), or the caller", body = ErrorBody),
        (status = 404, description = "No such room or user, or a private room the caller is not in", body = ErrorBody),
        (status = 422, description = "`duration_secs` out of range", body = ErrorBody),
        (status = 503, description = "The database is unavailable; or banned but other nodes could not be told (retry)", body = ErrorBody),
    )
)]
#[post("/api/rooms/{id}/bans")]
pub(super) async fn create(
    state: web::Data<AppState>,
    at: RoomInPath<WritingUser>,
    body: super::input::Json<BanBody>,
) -> Result<HttpResponse, ApiError> {
    let VisibleRoom {
        user, room, role, ..
    } = at.visible().await?;
    let (room, role) = (room.id, moderator(role)?);
    let target = body.user_id;
    if target == user.id {
        return Err(ApiError::forbidden("you cannot ban yourself"));
    }
    let duration = match body.duration_secs {
        None => None,
        Some(secs) if (1..=MAX_DURATION_SECS).contains(&secs) => {
            Some(chrono::TimeDelta::seconds(secs as i64))
        }
        Some(_) => {
            return Err(ApiError::validation_failed(
                "duration_secs: must be 1 to 315360000 (ten years); leave it out for a ban for good",
            ));
        }
    };
    match state
        .store
        .member_role(room, target)
        .await?
        .and_then(|r| Role::parse(&r).ok())
    {
        Some(Role::Owner) => return Err(ApiError::forbidden("the owner cannot be banned")),
        Some(Role::Admin) if role != Role::Owner => {
            return Err(ApiError::forbidden("only the owner may ban an admin"));
        }
        _ => {}
    }
    let now = crate::clock::now();
    let record = state
        .store
        .ban(room, target, user.id, duration.map(|d| now + d), now)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::NotFound => ApiError::not_found("no such user"),
            other => other.into(),
        })?;
    tracing::info!(room = %room, user_id = %target, by = %user.id, "banned");
    evict(&state, room, target, LeaveReason::Banned).await?;
    // Their direct messages close too: the banned user leaves the pair's
    // room, and neither may open it again while the ban stands (`open_dm`).
    if let Some(dm) = state.store.dm_between(user.id, target).await? {
        state.store.remove_member(dm.id, target).await?;
        evict(&state, dm.id, target, LeaveReason::Banned).await?;
    }
    Ok(HttpResponse::Created().json(view(&state, record).await?))
}

/// Lift a ban (owner or admin).
#[utoipa::path(
    operation_id = "lift_ban",
    tag = "members",
    security(("bearer" = [])),
    params(RoomParam, ("user_id" = i64, Path, description = "The banned user's id")),
    responses(
        (status = 204, description = "Lifted: the user may join again"),
        WriterRefused,
        (status = 403, description = "Not the owner or an admin", body = ErrorBody),
        (status = 404, description = "No such room, no ban in force, or a private room the caller is not in", body = ErrorBody),
        DatabaseUnavailable,
    )
)]
#[delete("/api/rooms/{id}/bans/{user_id}")]
pub(super) async fn lift(
    state: web::Data<AppState>,
    VisibleRoom {
        room,
        role,
        path: (_, target),
        ..
    }: VisibleRoom<WritingUser, (i64, i64)>,
) -> Result<HttpResponse, ApiError> {
    moderator(role)?;
    if state
        .store
        .lift_ban(room.id, UserId(target), crate::clock::now())
        .await?
    {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::not_found("no ban in force for this user"))
    }
}

/// The bans in force (owner or admin), newest first.
#[utoipa::path(
    operation_id = "list_bans",
    tag = "members",
    security(("bearer" = [])),
    params(RoomParam),
    responses(
        (status = 200, description = "The bans in force", body = BanList),
        RoomRefused,
        (status = 403, description = "Not the owner or an admin", body = ErrorBody),
        DatabaseUnavailable,
    )
)]
#[get("/api/rooms/{id}/bans")]
pub(super) async fn list(
    state: web::Data<AppState>,
    VisibleRoom { room, role, .. }: VisibleRoom,
) -> Result<HttpResponse, ApiError> {
    moderator(role)?;
    let mut bans = Vec::new();
    for ban in state.store.bans(room.id, crate::clock::now()).await? {
        bans.push(view(&state, ban).await?);
    }
    Ok(HttpResponse::Ok().json(BanList {
        room_id: room.id,
        bans,
    }))
}
