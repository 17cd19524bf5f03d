//! A room's history (newest first, cursor-paginated) and posting a message
//! over REST, through exactly the same path as a WebSocket `message`.

use super::responses::{BodyRefused, RoomRefused};
use super::room_access::{RoomInPath, RoomParam, VisibleRoom};
use super::rooms::page_limit;
use crate::error::{ApiError, ErrorBody, RestErrorCode};
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use shared::ids::{MessageId, RoomId};
use shared::server_frame::{MessageData, UserPublic};
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct HistoryQuery {
    /// Cursor: only messages with a smaller id (the `next_before_id` of the previous page).
    before_id: Option<i64>,
    /// Page size, 1–100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u64>,
}

/// One page of a room's history, newest first.
#[derive(Serialize, ToSchema)]
pub struct HistoryPage {
    room_id: RoomId,
    messages: Vec<MessageData>,
    /// Pass as `before_id` for the next page; `null` on the last page.
    #[schema(required = true)]
    next_before_id: Option<MessageId>,
}

/// A room's history, newest first.
#[utoipa::path(
    operation_id = "list_messages",
    tag = "messages",
    security(("bearer" = [])),
    params(RoomParam, HistoryQuery),
    responses(
        (status = 200, description = "One page of messages", body = HistoryPage),
        (status = 400, description = "Malformed query", body = ErrorBody),
        RoomRefused,
        (status = 503, description = "A backend is unavailable", body = ErrorBody),
    )
)]
#[get("/api/rooms/{id}/messages")]
pub(super) async fn history(
    state: web::Data<AppState>,
    at: RoomInPath,
    query: super::input::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_limit(query.limit)?;
    let VisibleRoom { room, .. } = at.visible().await?;
    let (messages, _source) = state
        .history
        .page(room.id, query.before_id.map(MessageId), limit)
        .await?;
    let next_before_id = (messages.len() as u64 == limit)
        .then(|| messages.last().map(|m| m.id))
        .flatten();
    Ok(HttpResponse::Ok().json(HistoryPage {
        room_id: room.id,
        messages,
        next_before_id,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PostMessage {
    /// Trimmed; not empty; at most `limits.max_content_chars` (2000 by default);
    /// no control characters but newline and tab.
    #[schema(example = "Hello, World!", min_length = 1)]
    content: String,
    /// The sender's own id for the message, echoed back: 1–64 printable ASCII characters.
    #[schema(min_length = 1, max_length = 64, pattern = "^[!-~]{1,64}$")]
    client_msg_id: Option<String>,
}

/// Post a message as the caller (members only), as a WebSocket `message` would.
#[utoipa::path(
    operation_id = "post_message",
    tag = "messages",
    security(("bearer" = [])),
    params(RoomParam),
    request_body = PostMessage,
    responses(
        (status = 201, description = "The stored message", body = MessageData),
        (status = 200, description = "A retry (same client_msg_id within 10 minutes): the original message; nothing new was stored", body = MessageData),
        BodyRefused,
        RoomRefused,
        (status = 403, description = "Not a member of the room", body = ErrorBody),
        (status = 409, description = "`client_msg_id_reused`: the id names another of the caller's messages of the last 10 minutes (another room or other content)", body = ErrorBody),
        (status = 422, description = "The content or `client_msg_id` breaks a rule", body = ErrorBody),
        (status = 429, description = "`rate_limited`: the caller's sends (WebSocket and REST together) are over `limits.msg_rate` (`Retry-After`)", body = ErrorBody),
        (status = 503, description = "A backend is unavailable", body = ErrorBody),
    )
)]
#[post("/api/rooms/{id}/messages")]
pub(super) async fn post(
    state: web::Data<AppState>,
    at: RoomInPath,
    body: super::input::Json<PostMessage>,
) -> Result<HttpResponse, ApiError> {
    let VisibleRoom {
        user, room, role, ..
    } = at.visible().await?;
    if role.is_none() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            RestErrorCode::NotAMember,
            "join the room before posting to it",
        ));
    }
    crate::limits::keyed::check(&state.limits.sends, &user.id).map_err(ApiError::rate_limited)?;
    let author = UserPublic {
        id: user.id,
        username: user.username,
        nickname: user.nickname,
    };
    let message = state
        .node
        .post_message(
            &author,
            room.id,
            &body.content,
            body.client_msg_id.as_deref(),
        )
        .await
        .map_err(|e| {
            let status = match e.code() {
                shared::error_code::ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                shared::error_code::ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
                shared::error_code::ErrorCode::RoomNotFound => StatusCode::NOT_FOUND,
                shared::error_code::ErrorCode::ClientMsgIdReused => StatusCode::CONFLICT,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            ApiError::new(status, RestErrorCode::Frame(e.code()), e.message())
        })?;
    let status = if message.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(HttpResponse::build(status).json(message.message))
}
