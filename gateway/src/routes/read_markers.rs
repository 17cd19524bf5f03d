//! `PUT /api/rooms/{id}/read`: move the caller's read marker, as the
//! WebSocket `read` frame does (see `node::read_marks`).

use super::responses::{BodyRefused, DatabaseUnavailable, RoomWriterRefused};
use super::room_access::{RoomInPath, RoomParam, VisibleRoom};
use crate::error::{ApiError, ErrorBody, RestErrorCode};
use crate::node::MarkReadError;
use crate::routes::caller::WritingUser;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, put, web};
use serde::{Deserialize, Serialize};
use shared::ids::RoomId;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MarkRead {
    /// The newest `seq` the user has read (≥ 0); capped at the room's newest.
    #[schema(example = 42, minimum = 0)]
    seq: i64,
}

/// The caller's read marker in a room.
#[derive(Serialize, ToSchema)]
pub(super) struct ReadMarker {
    room_id: RoomId,
    /// The stored marker: it only moves forward, so it may be past the
    /// `seq` asked for (another device read further).
    last_read_seq: i64,
}

fn not_a_member() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        RestErrorCode::NotAMember,
        "join the room before marking it read",
    )
}

/// Mark a room read up to `seq` (members only).
///
/// The marker only moves forward and never past the room's newest message.
/// When it moves, the caller's connections in the room, on every node, get
/// a `read` frame.
#[utoipa::path(
    operation_id = "mark_room_read",
    tag = "rooms",
    security(("bearer" = [])),
    params(RoomParam),
    request_body = MarkRead,
    responses(
        (status = 200, description = "The marker as stored", body = ReadMarker),
        BodyRefused,
        RoomWriterRefused,
        (status = 403, description = "`not_a_member`: the caller is not a member of the room", body = ErrorBody),
        (status = 422, description = "`seq` is negative", body = ErrorBody),
        DatabaseUnavailable,
    )
)]
#[put("/api/rooms/{id}/read")]
pub(super) async fn mark_read(
    state: web::Data<AppState>,
    at: RoomInPath<WritingUser>,
    body: super::input::Json<MarkRead>,
) -> Result<HttpResponse, ApiError> {
    if body.seq < 0 {
        return Err(ApiError::validation_failed("seq must be >= 0"));
    }
    let VisibleRoom {
        user, room, role, ..
    } = at.visible().await?;
    if role.is_none() {
        return Err(not_a_member());
    }
    let mark = state
        .node
        .mark_read(user.id, room.id, body.seq, None)
        .await
        .map_err(|e| match e {
            MarkReadError::NotMember(_) => not_a_member(),
            MarkReadError::Unavailable(e) => e.into(),
        })?;
    Ok(HttpResponse::Ok().json(ReadMarker {
        room_id: room.id,
        last_read_seq: mark.seq,
    }))
}
