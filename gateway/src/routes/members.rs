//! Membership: join and leave a room, list, add, re-role and remove members.
//! Removing someone (or leaving) takes their connections out of the room on
//! every node at once, through the bus (`left_room` with the reason).

use super::evictions::evict;
use super::responses::{
    BodyRefused, DatabaseUnavailable, RoomRefused, RoomWriterRefused, WriterRefused,
};
use super::room_access::{RoomInPath, RoomParam, VisibleRoom};
use super::rooms::RoomView;
use crate::domain::Role;
use crate::error::{ApiError, ErrorBody, RestErrorCode};
use crate::routes::caller::WritingUser;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, delete, get, patch, post, web};
use serde::{Deserialize, Serialize};
use shared::ids::{RoomId, UserId};
use shared::server_frame::{LeaveReason, UserPublic};
use utoipa::ToSchema;

/// A room's members.
#[derive(Serialize, ToSchema)]
pub struct MemberList {
    room_id: RoomId,
    members: Vec<Member>,
}

#[derive(Serialize, ToSchema)]
pub struct Member {
    user: UserPublic,
    #[schema(value_type = Role)]
    role: String,
    /// RFC 3339, UTC, millisecond precision.
    #[schema(example = "2026-11-26T18:00:00.123Z")]
    joined_at: String,
}

/// A role that can be given to a member (a room has one `owner`, its creator).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // documents `AddMember::role` and `SetRole::role`
pub enum AssignableRole {
    Admin,
    Member,
}

/// One user's membership of a room.
#[derive(Serialize, ToSchema)]
pub struct Membership {
    room_id: RoomId,
    user_id: UserId,
    #[schema(value_type = Role)]
    role: String,
}

/// Join a public room (idempotent).
#[utoipa::path(
    operation_id = "join_room",
    tag = "members",
    security(("bearer" = [])),
    params(RoomParam),
    responses(
        (status = 200, description = "The room, with the caller's role", body = RoomView),
        RoomWriterRefused,
        (status = 403, description = "`banned`: the caller is banned from the room (the message says until when)", body = ErrorBody),
        DatabaseUnavailable,
    )
)]
#[post("/api/rooms/{id}/join")]
pub(super) async fn join(
    state: web::Data<AppState>,
    VisibleRoom {
        user, room, role, ..
    }: VisibleRoom<WritingUser>,
) -> Result<HttpResponse, ApiError> {
    let role = match role {
        Some(role) => role,
        // Visible but not a member: a public room (private ones answered 404).
        None => {
            if let Some(ban) = state
                .store
                .active_ban(room.id, user.id, crate::clock::now())
                .await?
            {
                let admit = crate::admission::AdmitError::Banned {
                    until: ban.expires_at,
                };
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    RestErrorCode::Banned,
                    admit.to_string(),
                ));
            }
            state
                .store
                .add_member(room.id, user.id, Role::Member.as_str(), crate::clock::now())
                .await?;
            Role::Member
        }
    };
    Ok(HttpResponse::Ok().json(RoomView::new(&room, Some(role))))
}

/// Leave a room; the caller's connections leave it too (`left_room` `left`).
#[utoipa::path(
    operation_id = "leave_room",
    tag = "members",
    security(("bearer" = [])),
    params(RoomParam),
    responses(
        (status = 204, description = "Left"),
        RoomWriterRefused,
        (status = 409, description = "Not a member, or the owner (who cannot leave)", body = ErrorBody),
        (status = 503, description = "The database is unavailable; or the caller left but other nodes could not be told", body = ErrorBody),
    )
)]
#[post("/api/rooms/{id}/leave")]
pub(super) async fn leave(
    state: web::Data<AppState>,
    VisibleRoom {
        user, room, role, ..
    }: VisibleRoom<WritingUser>,
) -> Result<HttpResponse, ApiError> {
    match role {
        None => Err(ApiError::new(
            StatusCode::CONFLICT,
            RestErrorCode::NotAMember,
            "you are not a member of this room",
        )),
        Some(Role::Owner) => Err(ApiError::new(
            StatusCode::CONFLICT,
            RestErrorCode::OwnerCannotLeave,
            "the owner cannot leave; delete the room instead",
        )),
        Some(_) => {
            state.store.remove_member(room.id, user.id).await?;
            evict(&state, room.id, user.id, LeaveReason::Left).await?;
            Ok(HttpResponse::NoContent().finish())
        }
    }
}

/// The room's members with their role and when they joined.
#[utoipa::path(
    operation_id = "list_members",
    tag = "members",
    security(("bearer" = [])),
    params(RoomParam),
    responses(
        (status = 200, description = "The members", body = MemberList),
        RoomRefused,
        DatabaseUnavailable,
    )
)]
#[get("/api/rooms/{id}/members")]
pub(super) async fn list(
    state: web::Data<AppState>,
    VisibleRoom { room, .. }: VisibleRoom,
) -> Result<HttpResponse, ApiError> {
    let members: Vec<_> = state
        .store
        .members(room.id)
        .await?
        .into_iter()
        .map(|m| Member {
            user: UserPublic {
                id: m.user_id,
                username: m.username,
                nickname: m.nickname,
            },
            role: m.role,
            joined_at: crate::clock::rfc3339(m.joined_at),
        })
        .collect();
    Ok(HttpResponse::Ok().json(MemberList {
        room_id: room.id,
        members,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AddMember {
    user_id: i64,
    /// `member` (default) or `admin` (only the owner appoints admins).
    #[schema(value_type = Option<AssignableRole>)]
    role: Option<String>,
}

/// Add a user to the room (owner or admin); the only way into a private room.
#[utoipa::path(
    operation_id = "add_member",
    tag = "members",
    security(("bearer" = [])),
    params(RoomParam),
    request_body = AddMember,
    responses(
        (status = 201, description = "Added", body = Membership),
        (status = 200, description = "Already a member (the role is unchanged)", body = Membership),
        BodyRefused,
        WriterRefused,
        (status = 403, description = "Not the owner or an admin; or an admin appointing an admin; or the user is banned from the room (`banned`)", body = ErrorBody),
        (status = 404, description = "No such room or user, or a private room the caller is not in", body = ErrorBody),
        (status = 422, description = "Not an assignable role", body = ErrorBody),
        DatabaseUnavailable,
    )
)]
#[post("/api/rooms/{id}/members")]
pub(super) async fn add(
    state: web::Data<AppState>,
    at: RoomInPath<WritingUser>,
    body: super::input::Json<AddMember>,
) -> Result<HttpResponse, ApiError> {
    let VisibleRoom { room, role, .. } = at.visible().await?;
    let Some(role) = role.filter(|r| r.moderates()) else {
        return Err(ApiError::forbidden(
            "only the room's owner or an admin may add members",
        ));
    };
    let new_role = body
        .role
        .as_deref()
        .map(Role::parse)
        .transpose()?
        .unwrap_or(Role::Member);
    if new_role == Role::Owner {
        return Err(ApiError::validation_failed("role: a room has one owner"));
    }
    if new_role == Role::Admin && role != Role::Owner {
        return Err(ApiError::forbidden("only the owner may appoint admins"));
    }
    let target = UserId(body.user_id);
    if state.store.find_user(target).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "user {} not found",
            body.user_id
        )));
    }
    if state
        .store
        .active_ban(room.id, target, crate::clock::now())
        .await?
        .is_some()
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            RestErrorCode::Banned,
            "this user is banned from the room; lift the ban first",
        ));
    }
    let inserted = state
        .store
        .add_member(room.id, target, new_role.as_str(), crate::clock::now())
        .await?;
    let current = state
        .store
        .member_role(room.id, target)
        .await?
        .unwrap_or_else(|| new_role.as_str().into());
    let status = if inserted {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(HttpResponse::build(status).json(Membership {
        room_id: room.id,
        user_id: target,
        role: current,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SetRole {
    #[schema(value_type = AssignableRole)]
    role: String,
}

/// Set a member's role (owner only): `admin` or `member`.
#[utoipa::path(
    operation_id = "set_member_role",
    tag = "members",
    security(("bearer" = [])),
    params(RoomParam, ("user_id" = i64, Path, description = "The member's user id")),
    request_body = SetRole,
    responses(
        (status = 200, description = "The new role", body = Membership),
        BodyRefused,
        WriterRefused,
        (status = 403, description = "Not the owner", body = ErrorBody),
        (status = 404, description = "No such room or member, or a private room the caller is not in", body = ErrorBody),
        (status = 422, description = "Not an assignable role, or the owner's own role", body = ErrorBody),
        DatabaseUnavailable,
    )
)]
#[patch("/api/rooms/{id}/members/{user_id}")]
pub(super) async fn set_role(
    state: web::Data<AppState>,
    at: RoomInPath<WritingUser, (i64, i64)>,
    body: super::input::Json<SetRole>,
) -> Result<HttpResponse, ApiError> {
    let VisibleRoom {
        user,
        room,
        role,
        path: (_, target),
        ..
    } = at.visible().await?;
    if role != Some(Role::Owner) {
        return Err(ApiError::forbidden(
            "only the room's owner may change roles",
        ));
    }
    let new_role = Role::parse(&body.role)?;
    if new_role == Role::Owner || UserId(target) == user.id {
        return Err(ApiError::validation_failed(
            "role: the owner's role cannot change",
        ));
    }
    state
        .store
        .set_member_role(room.id, UserId(target), new_role.as_str())
        .await
        .map_err(|e| match e {
            crate::store::StoreError::NotFound => ApiError::not_found("not a member of this room"),
            other => other.into(),
        })?;
    Ok(HttpResponse::Ok().json(Membership {
        room_id: room.id,
        user_id: UserId(target),
        role: new_role.as_str().to_owned(),
    }))
}

/// Remove a member (owner or admin).
///
/// Only the owner removes admins; nobody removes the owner. The user's
/// connections leave the room on every node with `left_room` `kicked`.
#[utoipa::path(
    operation_id = "remove_member",
    tag = "members",
    security(("bearer" = [])),
    params(RoomParam, ("user_id" = i64, Path, description = "The member's user id")),
    responses(
        (status = 204, description = "Removed"),
        WriterRefused,
        (status = 403, description = "Not allowed to remove this member", body = ErrorBody),
        (status = 404, description = "No such room or member, or a private room the caller is not in (a non-member's connections are still told to leave, so retrying a kick that answered 503 is safe)", body = ErrorBody),
        (status = 503, description = "The database is unavailable; or the member was removed but other nodes could not be told (retry)", body = ErrorBody),
    )
)]
#[delete("/api/rooms/{id}/members/{user_id}")]
pub(super) async fn kick(
    state: web::Data<AppState>,
    VisibleRoom {
        room,
        role,
        path: (_, target),
        ..
    }: VisibleRoom<WritingUser, (i64, i64)>,
) -> Result<HttpResponse, ApiError> {
    let target = UserId(target);
    let Some(role) = role.filter(|r| r.moderates()) else {
        return Err(ApiError::forbidden(
            "only the room's owner or an admin may remove members",
        ));
    };
    let target_role = state
        .store
        .member_role(room.id, target)
        .await?
        .and_then(|r| Role::parse(&r).ok());
    match target_role {
        None => {
            // Perhaps a retry of a kick answered 503: the row is gone but
            // other nodes may still hold the user's connections, so tell
            // them again. A non-member has no connection in the room, so
            // this never removes anyone who belongs there (bar one joining
            // this very instant, who may join again).
            evict(&state, room.id, target, LeaveReason::Kicked).await?;
            return Err(ApiError::not_found("not a member of this room"));
        }
        Some(Role::Owner) => return Err(ApiError::forbidden("the owner cannot be removed")),
        Some(Role::Admin) if role != Role::Owner => {
            return Err(ApiError::forbidden("only the owner may remove an admin"));
        }
        Some(_) => {}
    }
    state.store.remove_member(room.id, target).await?;
    evict(&state, room.id, target, LeaveReason::Kicked).await?;
    Ok(HttpResponse::NoContent().finish())
}
