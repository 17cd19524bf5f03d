//! Membership: join and leave a room, list, add, re-role and remove members.
//! Removing someone (or leaving) takes their connections out of the room on
//! every node at once, through the bus (`left_room` with the reason).

use super::rooms::{RoomView, forbidden, visible_room};
use crate::auth::extractor::AuthenticatedUser;
use crate::domain::Role;
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, delete, get, patch, post, web};
use serde::Deserialize;
use serde_json::json;
use shared::bus_envelope::BusEvent;
use shared::ids::{RoomId, UserId};
use shared::server_frame::LeaveReason;

async fn evict(state: &AppState, room: RoomId, user: UserId, reason: LeaveReason) {
    if let Err(e) = state
        .node
        .publish(
            room,
            BusEvent::Evict {
                user_id: user,
                reason,
            },
        )
        .await
    {
        tracing::warn!(room = %room, user_id = %user, error = %e, "membership removed but connections could not be told");
    }
}

#[post("/api/rooms/{id}/join")]
pub(super) async fn join(
    state: web::Data<AppState>,
    AuthenticatedUser(user): AuthenticatedUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let (room, role) = visible_room(&state, &user, RoomId(*id)).await?;
    let role = match role {
        Some(role) => role,
        // Visible but not a member: a public room (private ones answered 404).
        None => {
            state
                .store
                .add_member(room.id, user.id, Role::Member.as_str(), crate::clock::now())
                .await?;
            Role::Member
        }
    };
    Ok(HttpResponse::Ok().json(RoomView::new(&room, Some(role))))
}

#[post("/api/rooms/{id}/leave")]
pub(super) async fn leave(
    state: web::Data<AppState>,
    AuthenticatedUser(user): AuthenticatedUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let (room, role) = visible_room(&state, &user, RoomId(*id)).await?;
    match role {
        None => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_a_member",
            "you are not a member of this room",
        )),
        Some(Role::Owner) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "owner_cannot_leave",
            "the owner cannot leave; delete the room instead",
        )),
        Some(_) => {
            state.store.remove_member(room.id, user.id).await?;
            evict(&state, room.id, user.id, LeaveReason::Left).await;
            Ok(HttpResponse::NoContent().finish())
        }
    }
}

#[get("/api/rooms/{id}/members")]
pub(super) async fn list(
    state: web::Data<AppState>,
    AuthenticatedUser(user): AuthenticatedUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let (room, _) = visible_room(&state, &user, RoomId(*id)).await?;
    let members: Vec<_> = state
        .store
        .members(room.id)
        .await?
        .into_iter()
        .map(|m| {
            json!({"user": {"id": m.user_id, "username": m.username, "nickname": m.nickname},
                   "role": m.role, "joined_at": crate::clock::rfc3339(m.joined_at)})
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"room_id": room.id, "members": members})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AddMember {
    user_id: i64,
    role: Option<String>,
}

#[post("/api/rooms/{id}/members")]
pub(super) async fn add(
    state: web::Data<AppState>,
    AuthenticatedUser(user): AuthenticatedUser,
    id: web::Path<i64>,
    body: web::Json<AddMember>,
) -> Result<HttpResponse, ApiError> {
    let (room, role) = visible_room(&state, &user, RoomId(*id)).await?;
    let Some(role) = role.filter(|r| r.moderates()) else {
        return Err(forbidden(
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
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "role: a room has one owner",
        ));
    }
    if new_role == Role::Admin && role != Role::Owner {
        return Err(forbidden("only the owner may appoint admins"));
    }
    let target = UserId(body.user_id);
    if state.store.find_user(target).await?.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("user {} not found", body.user_id),
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
    Ok(HttpResponse::build(status)
        .json(json!({"room_id": room.id, "user_id": target, "role": current})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SetRole {
    role: String,
}

#[patch("/api/rooms/{id}/members/{user_id}")]
pub(super) async fn set_role(
    state: web::Data<AppState>,
    AuthenticatedUser(user): AuthenticatedUser,
    path: web::Path<(i64, i64)>,
    body: web::Json<SetRole>,
) -> Result<HttpResponse, ApiError> {
    let (room_id, target) = path.into_inner();
    let (room, role) = visible_room(&state, &user, RoomId(room_id)).await?;
    if role != Some(Role::Owner) {
        return Err(forbidden("only the room's owner may change roles"));
    }
    let new_role = Role::parse(&body.role)?;
    if new_role == Role::Owner || UserId(target) == user.id {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "role: the owner's role cannot change",
        ));
    }
    state
        .store
        .set_member_role(room.id, UserId(target), new_role.as_str())
        .await
        .map_err(|e| match e {
            crate::store::StoreError::NotFound => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "not a member of this room",
            ),
            other => other.into(),
        })?;
    Ok(HttpResponse::Ok().json(json!({"room_id": room.id, "user_id": target, "role": new_role})))
}

#[delete("/api/rooms/{id}/members/{user_id}")]
pub(super) async fn kick(
    state: web::Data<AppState>,
    AuthenticatedUser(user): AuthenticatedUser,
    path: web::Path<(i64, i64)>,
) -> Result<HttpResponse, ApiError> {
    let (room_id, target) = path.into_inner();
    let target = UserId(target);
    let (room, role) = visible_room(&state, &user, RoomId(room_id)).await?;
    let Some(role) = role.filter(|r| r.moderates()) else {
        return Err(forbidden(
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
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "not a member of this room",
            ));
        }
        Some(Role::Owner) => return Err(forbidden("the owner cannot be removed")),
        Some(Role::Admin) if role != Role::Owner => {
            return Err(forbidden("only the owner may remove an admin"));
        }
        Some(_) => {}
    }
    state.store.remove_member(room.id, target).await?;
    evict(&state, room.id, target, LeaveReason::Kicked).await;
    Ok(HttpResponse::NoContent().finish())
}
