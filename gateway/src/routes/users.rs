//! The caller's own profile.

use super::responses::{BodyRefused, DatabaseUnavailable, Unauthorized, WriterRefused};
use crate::domain::{DmPolicy, Nickname};
use crate::error::{ApiError, ErrorBody, RestErrorCode};
use crate::routes::caller::{AuthenticatedUser, WritingUser};
use crate::state::AppState;
use crate::store::UserRecord;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, delete, get, patch, web};
use serde::{Deserialize, Serialize};
use shared::bus_envelope::BusEvent;
use shared::ids::UserId;
use shared::server_frame::LeaveReason;
use utoipa::ToSchema;

/// The caller's own profile.
#[derive(Serialize, ToSchema)]
pub struct Me {
    id: UserId,
    username: String,
    nickname: String,
    /// RFC 3339, UTC, millisecond precision.
    #[schema(example = "2026-11-26T18:00:00.123Z")]
    created_at: String,
    /// Who may open a direct-message room with the caller.
    dm_policy: DmPolicy,
}

fn me_json(u: &UserRecord) -> Me {
    Me {
        id: u.id,
        username: u.username.clone(),
        nickname: u.nickname.clone(),
        created_at: crate::clock::rfc3339(u.created_at),
        dm_policy: u.dm_policy,
    }
}

/// The caller's profile.
#[utoipa::path(
    operation_id = "get_me",
    tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's profile", body = Me),
        Unauthorized,
        DatabaseUnavailable,
    )
)]
#[get("/api/users/me")]
pub(super) async fn me(AuthenticatedUser(user): AuthenticatedUser) -> HttpResponse {
    HttpResponse::Ok().json(me_json(&user))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EditMe {
    /// 1–64 characters, no control characters (trimmed); absent: unchanged.
    #[schema(example = "Alice", min_length = 1)]
    nickname: Option<String>,
    /// Who may open a direct-message room with the caller; absent: unchanged.
    dm_policy: Option<DmPolicy>,
}

/// Change the caller's nickname or direct-message policy.
#[utoipa::path(
    operation_id = "edit_me",
    tag = "users",
    security(("bearer" = [])),
    request_body = EditMe,
    responses(
        (status = 200, description = "The updated profile", body = Me),
        BodyRefused,
        WriterRefused,
        (status = 422, description = "A value breaks a rule", body = ErrorBody),
        DatabaseUnavailable,
    )
)]
#[patch("/api/users/me")]
pub(super) async fn edit_me(
    state: web::Data<AppState>,
    WritingUser(user): WritingUser,
    body: super::input::Json<EditMe>,
) -> Result<HttpResponse, ApiError> {
    let nickname = body.nickname.as_deref().map(Nickname::parse).transpose()?;
    if let Some(policy) = body.dm_policy {
        state.store.set_dm_policy(user.id, policy).await?;
    }
    let updated = match nickname {
        Some(nickname) => state.store.set_nickname(user.id, nickname.as_str()).await?,
        None => UserRecord {
            dm_policy: body.dm_policy.unwrap_or(user.dm_policy),
            ..user.clone()
        },
    };
    // New connections on every node show the new profile (those open keep
    // the nickname they started with).
    if let Err(e) = state.node.user_changed(user.id).await {
        tracing::warn!(user_id = %user.id, error = %e, "profile changed but other nodes could not be told: they show the old one for up to 30 s");
    }
    Ok(HttpResponse::Ok().json(me_json(&updated)))
}

/// Delete the caller's account: its tokens stop working (401) and its open
/// connections, on every node, leave their rooms (`left_room`
/// `account_deleted`) and close with 4001. Its messages stay in the rooms'
/// histories under "Deleted user"; the username is free again.
#[utoipa::path(
    operation_id = "delete_me",
    tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        WriterRefused,
        (status = 503, description = "The database is unavailable (nothing deleted); or deleted, but other nodes could not be told", body = ErrorBody),
    )
)]
#[delete("/api/users/me")]
pub(super) async fn delete_me(
    state: web::Data<AppState>,
    WritingUser(user): WritingUser,
) -> Result<HttpResponse, ApiError> {
    let rooms = state
        .store
        .delete_user(user.id, crate::clock::now())
        .await?;
    tracing::info!(user_id = %user.id, rooms = rooms.len(), "account deleted");
    let reason = LeaveReason::AccountDeleted;
    // No node may admit the account from memory any more (see `user_cache`).
    let told = state.node.user_changed(user.id).await;
    // This node's connections first: they leave even when the bus is down.
    for room in &rooms {
        state.node.evict_user(*room, user.id, reason);
    }
    for room in rooms {
        let evict = BusEvent::Evict {
            user_id: user.id,
            reason,
        };
        if let Err(e) = state.node.publish(room, evict).await {
            tracing::warn!(room = %room, user_id = %user.id, error = %e, "account deleted but other nodes could not be told");
            // The token is dead now, so this cannot be retried: say so.
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                RestErrorCode::Unavailable,
                "the account is deleted, but other nodes could not be told: connections there may stay open",
            ));
        }
    }
    if let Err(e) = told {
        tracing::warn!(user_id = %user.id, error = %e, "account deleted but other nodes could not be told");
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            RestErrorCode::Unavailable,
            "the account is deleted, but other nodes could not be told: they may admit it for up to 30 s",
        ));
    }
    Ok(HttpResponse::NoContent().finish())
}
