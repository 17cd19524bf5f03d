//! `PATCH` and `DELETE /api/rooms/{id}/messages/{message_id}`: editing and
//! deleting a message (see `node::message_edits`). Both count against the
//! caller's sends (`limits.msg_rate`, shared with WebSocket and REST
//! messages): each reaches every member of the room like a message.

use super::responses::{BodyRefused, DatabaseUnavailable, Unauthorized};
use super::room_access::{RoomInPath, RoomParam, VisibleRoom};
use crate::error::{ApiError, ErrorBody, RestErrorCode};
use crate::node::{ChangeError, SendError};
use crate::routes::caller::AuthenticatedUser;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, delete, patch, web};
use serde::Deserialize;
use shared::ids::MessageId;
use shared::server_frame::MessageData;
use std::time::Duration;
use utoipa::ToSchema;

/// `/api/rooms/{id}/messages/{message_id}`: the room as the caller sees it,
/// and the message's id.
type MessageInRoom = VisibleRoom<AuthenticatedUser, (i64, i64)>;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EditMessage {
    /// The new content, under the rules of a new message.
    #[schema(example = "Hello, World! (fixed)", min_length = 1)]
    content: String,
}

/// Edit one of the caller's messages.
///
/// The author only, within `limits.edit_window_secs` (24 h by default) of
/// sending it. The room's members get `message_edited`, with the edit's own
/// place in the room's sequence; the history shows the new content and
/// `edited_at`.
#[utoipa::path(
    operation_id = "edit_message",
    tag = "messages",
    security(("bearer" = [])),
    params(RoomParam, ("message_id" = i64, Path, description = "Message id")),
    request_body = EditMessage,
    responses(
        (status = 200, description = "The message as it now is", body = MessageData),
        BodyRefused,
        Unauthorized,
        (status = 403, description = "`not_a_member`, `forbidden` (not the author) or `edit_window_passed`", body = ErrorBody),
        (status = 404, description = "No such room or message, or the message is deleted", body = ErrorBody),
        (status = 422, description = "The content breaks a rule (`content_empty`, `content_too_long`, `invalid_content`)", body = ErrorBody),
        (status = 429, description = "`rate_limited`: the caller's sends are over `limits.msg_rate` (`Retry-After`)", body = ErrorBody),
        DatabaseUnavailable,
    )
)]
#[patch("/api/rooms/{id}/messages/{message_id}")]
pub(super) async fn edit(
    state: web::Data<AppState>,
    at: RoomInPath<AuthenticatedUser, (i64, i64)>,
    body: super::input::Json<EditMessage>,
) -> Result<HttpResponse, ApiError> {
    let at = at.visible().await?;
    member_sending(&state, &at)?;
    let window = Duration::from_secs(state.settings.limits.edit_window_secs);
    let message = state
        .node
        .edit_message(
            at.user.id,
            at.room.id,
            MessageId(at.path.1),
            &body.content,
            window,
        )
        .await
        .map_err(refused)?;
    Ok(HttpResponse::Ok().json(message))
}

/// Delete a message.
///
/// Its author may, and so may the room's owner and admins. The message stays
/// in the history as a tombstone (`deleted: true`, empty content); the
/// room's members get `message_deleted`. Deleting it again answers 204.
#[utoipa::path(
    operation_id = "delete_message",
    tag = "messages",
    security(("bearer" = [])),
    params(RoomParam, ("message_id" = i64, Path, description = "Message id")),
    responses(
        (status = 204, description = "Deleted"),
        Unauthorized,
        (status = 403, description = "`not_a_member`, or `forbidden`: neither the author nor the room's owner or an admin", body = ErrorBody),
        (status = 404, description = "No such room or message", body = ErrorBody),
        (status = 429, description = "`rate_limited`: the caller's sends are over `limits.msg_rate` (`Retry-After`)", body = ErrorBody),
        DatabaseUnavailable,
    )
)]
#[delete("/api/rooms/{id}/messages/{message_id}")]
pub(super) async fn remove(
    state: web::Data<AppState>,
    at: MessageInRoom,
) -> Result<HttpResponse, ApiError> {
    let moderator = member_sending(&state, &at)?;
    state
        .node
        .delete_message(at.user.id, moderator, at.room.id, MessageId(at.path.1))
        .await
        .map_err(refused)?;
    Ok(HttpResponse::NoContent().finish())
}

/// Whether the caller, a member within the send budget, moderates the room
/// (owner or admin).
fn member_sending(state: &AppState, at: &MessageInRoom) -> Result<bool, ApiError> {
    let Some(role) = at.role else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            RestErrorCode::NotAMember,
            "only the room's members may change its messages",
        ));
    };
    crate::limits::keyed::check(&state.limits.sends, &at.user.id)
        .map_err(ApiError::rate_limited)?;
    Ok(role.moderates())
}

fn refused(e: ChangeError) -> ApiError {
    let message = e.to_string();
    match e {
        ChangeError::NotFound => ApiError::not_found(message),
        ChangeError::NotAuthor | ChangeError::NotAllowed => ApiError::forbidden(message),
        ChangeError::EditWindowPassed(_) => ApiError::new(
            StatusCode::FORBIDDEN,
            RestErrorCode::EditWindowPassed,
            message,
        ),
        ChangeError::Body(body) => {
            let send = SendError::Body(body);
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                RestErrorCode::Frame(send.code()),
                send.message(),
            )
        }
        ChangeError::Unavailable(store) => store.into(),
    }
}
