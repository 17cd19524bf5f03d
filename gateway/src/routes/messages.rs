//! A room's history (newest first, cursor-paginated) and posting a message
//! over REST, through exactly the same path as a WebSocket `message`.

use super::rooms::{page_limit, visible_room};
use crate::auth::extractor::AuthenticatedUser;
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use serde::Deserialize;
use serde_json::json;
use shared::ids::{MessageId, RoomId};
use shared::server_frame::UserPublic;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HistoryQuery {
    /// Cursor: only messages with a smaller id (the `next_before_id` of the previous page).
    before_id: Option<i64>,
    limit: Option<u64>,
}

#[get("/api/rooms/{id}/messages")]
pub(super) async fn history(
    state: web::Data<AppState>,
    AuthenticatedUser(user): AuthenticatedUser,
    id: web::Path<i64>,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_limit(query.limit)?;
    let (room, _) = visible_room(&state, &user, RoomId(*id)).await?;
    let (messages, _source) = state
        .history
        .page(room.id, query.before_id.map(MessageId), limit)
        .await?;
    let next_before_id = (messages.len() as u64 == limit)
        .then(|| messages.last().map(|m| m.id))
        .flatten();
    Ok(HttpResponse::Ok()
        .json(json!({"room_id": room.id, "messages": messages, "next_before_id": next_before_id})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PostMessage {
    content: String,
    client_msg_id: Option<String>,
}

#[post("/api/rooms/{id}/messages")]
pub(super) async fn post(
    state: web::Data<AppState>,
    AuthenticatedUser(user): AuthenticatedUser,
    id: web::Path<i64>,
    body: web::Json<PostMessage>,
) -> Result<HttpResponse, ApiError> {
    let (room, role) = visible_room(&state, &user, RoomId(*id)).await?;
    if role.is_none() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_a_member",
            "join the room before posting to it",
        ));
    }
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
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            ApiError::new(status, e.code().as_str(), e.message())
        })?;
    Ok(HttpResponse::Created().json(message))
}
